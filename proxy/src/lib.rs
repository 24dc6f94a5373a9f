//! `aside-proxy`: the Aside binary's library — a pingora reverse proxy that
//! implements cache-aside over the two-tier `aside-store`, with policies from
//! `aside-policies`, plus the admin REST API.
//!
//! Architecture: `cli` parses flags and loads the config (`settings`);
//! `server` opens the store, binds every listener (`listeners`: port 0, the
//! ready file) and runs one pingora server with its services:
//! the proxy (`proxy`, whose cache hooks answer pingora-cache's questions with
//! the route policy, over the `cache_storage` adapter; fresh hits are answered
//! from a `hit_template` kept with each decoded entry), the admin API (`admin`, whose
//! runtime also runs the dashboard's `stats` sampler and start-up warming), the
//! SIGHUP reloader and, with `[cluster]`, the purge fan-out. ARCHITECTURE.md at
//! the repository root draws the whole picture. Everything lives in the library so tests build the
//! same services as the binary.

pub mod admin;
pub mod cache_status;
pub mod cache_storage;
pub mod cli;
pub mod client;
pub mod conn_guard;
pub mod decision;
pub mod demo_origin;
mod fields;
mod hit_template;
pub mod key_memo;
pub mod listeners;
pub mod metrics;
pub mod protect;
pub mod proxy;
pub mod reload;
pub mod server;
pub mod settings;
pub mod stats;
mod structured_field;
pub mod upstream;
mod vary;
