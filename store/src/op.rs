//! The writer's protocol: the requests callers send to the writer thread (`Op`),
//! with the KV mutations they carry already validated (`Prepared`), and how each
//! is answered: on its oneshot `Reply`, held back as a `Done` until the commit of
//! its batch succeeds or fails.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use tokio::sync::{oneshot, OwnedSemaphorePermit};

use crate::cold::Hash;
use crate::{
    AtomicResult, CacheEntry, CacheSelector, Check, Error, JsonText, KvItem, PurgeMode, Result,
    SetCondition,
};

pub(crate) type Reply<T> = oneshot::Sender<Result<T>>;

/// A KV mutation already validated and serialized by the caller.
#[derive(Debug)]
pub(crate) enum Prepared {
    Set {
        key: String,
        value: JsonText,
        ttl: Option<Duration>,
    },
    Delete {
        key: String,
    },
    Increment {
        key: String,
        delta: JsonText,
        ttl: Option<Duration>,
    },
}

/// One request to the writer, with the channel its answer goes back on.
pub(crate) enum Op {
    Set {
        key: String,
        value: JsonText,
        ttl: Option<Duration>,
        condition: SetCondition,
        reply: Reply<KvItem>,
    },
    Delete {
        key: String,
        reply: Reply<bool>,
    },
    Atomic {
        checks: Vec<Check>,
        mutations: Vec<Prepared>,
        reply: Reply<AtomicResult>,
    },
    /// Not answered: the caller returned once this was queued (see `pending`).
    CacheFill {
        entry: Arc<CacheEntry>,
        /// The entry's share of the queued-fill byte budget, released once the
        /// fill is committed (or failed) and out of `pending`.
        budget: Option<OwnedSemaphorePermit>,
    },
    CacheUpdateMeta {
        hash: Hash,
        meta_internal: Bytes,
        meta_header: Bytes,
        fresh_until: SystemTime,
        stale_until: SystemTime,
        reply: Reply<bool>,
    },
    CacheDelete {
        hash: Hash,
        /// Delete only while the entry's body is still there (a body found
        /// damaged must not take a refilled entry with it).
        only_at: Option<crate::bodies::BodyLoc>,
        reply: Reply<bool>,
    },
    CacheExpire {
        hash: Hash,
        reply: Reply<bool>,
    },
    CachePurge {
        selector: CacheSelector,
        mode: PurgeMode,
        reply: Reply<u64>,
    },
    Flush {
        reply: Reply<()>,
    },
    /// Answered once every earlier request is committed (non-durably): lets a cold
    /// read see the fills queued before it.
    Barrier {
        reply: Reply<()>,
    },
    Gc {
        reply: Reply<u64>,
    },
}

impl Op {
    /// Whether the caller expects the change to survive a crash once answered.
    /// Whether a batch of it may wait for more (`writer::FILL_LINGER`): a
    /// small cache fill, whose commit nobody waits for. A large body would
    /// only wait in memory: writing it costs far more than the commit.
    pub(crate) fn lingers(&self) -> bool {
        const LINGER_MAX_BODY: usize = 16 * 1024;
        matches!(self, Op::CacheFill { entry, .. } if entry.body.len() <= LINGER_MAX_BODY)
    }

    pub(crate) fn durable(&self) -> bool {
        !matches!(
            self,
            Op::CacheFill { .. } | Op::CacheUpdateMeta { .. } | Op::Gc { .. } | Op::Barrier { .. }
        )
    }

    pub(crate) fn fail(self, msg: &str) {
        let e = || commit_error(msg);
        match self {
            Op::Set { reply, .. } => drop(reply.send(Err(e()))),
            Op::Delete { reply, .. }
            | Op::CacheUpdateMeta { reply, .. }
            | Op::CacheDelete { reply, .. }
            | Op::CacheExpire { reply, .. } => drop(reply.send(Err(e()))),
            Op::Atomic { reply, .. } => drop(reply.send(Err(e()))),
            Op::Flush { reply } | Op::Barrier { reply } => drop(reply.send(Err(e()))),
            // Already answered; the caller sees a miss on its next lookup.
            Op::CacheFill { .. } => {}
            Op::CachePurge { reply, .. } | Op::Gc { reply } => drop(reply.send(Err(e()))),
        }
    }
}

fn commit_error(msg: &str) -> Error {
    Error::Io {
        context: "committing a write batch".into(),
        source: msg.to_string().into(),
    }
}

/// An answer held back until the commit succeeds (or fails).
pub(crate) type Done = Box<dyn FnOnce(Option<&str>) + Send>;

pub(crate) fn done<T: Send + 'static>(reply: Reply<T>, result: Result<T>) -> Done {
    Box::new(move |failed| {
        let r = match failed {
            Some(msg) => Err(commit_error(msg)),
            None => result,
        };
        // The caller may have gone away (cancelled future): nothing to do.
        let _ = reply.send(r);
    })
}
