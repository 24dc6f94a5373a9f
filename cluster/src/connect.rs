//! Connecting to Redis: the settings the binary builds from `[cluster]`, and
//! the reconnecting connection manager both the KV backend and the shared
//! tier use.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

/// How to reach Redis. Built by the binary from the `[cluster]` config section.
#[derive(Clone)]
pub struct RedisSettings {
    /// `redis://`, `rediss://` (TLS, verified), `redis+unix://`, `valkey://`, ...
    pub url: String,
    /// ACL user; overrides the URL's.
    pub username: Option<String>,
    /// Password; overrides the URL's.
    pub password: Option<String>,
    /// Prefix of every key (must not contain `{` or `}`).
    pub key_prefix: String,
    /// Longest wait to (re)connect.
    pub connect_timeout: Duration,
    /// Longest wait for one answer; past it the call is `Unavailable`.
    pub command_timeout: Duration,
}

impl std::fmt::Debug for RedisSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSettings")
            .field("key_prefix", &self.key_prefix)
            .field("connect_timeout", &self.connect_timeout)
            .field("command_timeout", &self.command_timeout)
            .finish_non_exhaustive()
    }
}

/// Errors of building a connection (a malformed URL); everything later is an
/// `aside_store::Error::Unavailable`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    #[error("invalid Redis address: {0}")]
    Url(String),
}

/// A client for `settings` (RESP3, the settings' user and password).
///
/// # Errors
/// [`ConnectError::Url`] for an address redis-rs does not accept.
pub fn client(settings: &RedisSettings) -> std::result::Result<redis::Client, ConnectError> {
    use redis::IntoConnectionInfo;
    let mut info = settings
        .url
        .as_str()
        .into_connection_info()
        .map_err(|e| ConnectError::Url(e.to_string()))?;
    let mut redis_info = info
        .redis_settings()
        .clone()
        .set_protocol(redis::ProtocolVersion::RESP3);
    if let Some(user) = &settings.username {
        redis_info = redis_info.set_username(user);
    }
    if let Some(password) = &settings.password {
        redis_info = redis_info.set_password(password);
    }
    info = info.set_redis_settings(redis_info);
    let client = redis::Client::open(info).map_err(|e| ConnectError::Url(e.to_string()))?;
    Ok(client)
}

/// A client whose connection is made on first use and re-made in the background
/// after a drop (redis-rs `ConnectionManager`); commands are never re-sent, so a
/// write that failed is reported, not silently applied twice.
///
/// # Errors
/// [`ConnectError::Url`] for an address redis-rs does not accept.
pub fn connection(
    settings: &RedisSettings,
) -> std::result::Result<ConnectionManager, ConnectError> {
    let client = client(settings)?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(settings.connect_timeout))
        .set_response_timeout(Some(settings.command_timeout))
        .set_number_of_retries(2)
        .set_max_delay(Duration::from_secs(1));
    ConnectionManager::new_lazy_with_config(client, config)
        .map_err(|e| ConnectError::Url(e.to_string()))
}
