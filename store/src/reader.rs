//! The reader pool: a few threads owned by the store that run the cold tier's
//! blocking redb reads.
//!
//! Why not `block_in_place` or `spawn_blocking`: both let tokio start a new
//! blocking thread whenever every existing one is busy, so a burst of concurrent
//! cold lookups (a miss storm on pingora's 1-worker runtime) grew the process to
//! 500+ threads and hundreds of MiB of stacks and malloc arenas. Here the number
//! of threads is fixed (`READER_THREADS`) and the queue is bounded
//! (`READER_QUEUE`): a caller that finds it full waits asynchronously for space,
//! so concurrency turns into queueing, never into threads. Each caller awaits a
//! oneshot, which works from any runtime (several pingora runtimes share one
//! store) and from no runtime at all.

use std::sync::Arc;
use std::thread::JoinHandle;

use redb::Database;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::{Error, Result};

/// Reader threads. redb reads from the OS page cache are CPU work, and the
/// proxy runs on few cores; a handful is enough to overlap the occasional disk
/// read without letting reads crowd out the workers.
pub(crate) const READER_THREADS: usize = 3;

/// Reads queued for the pool before callers wait for space.
const READER_QUEUE: usize = 1024;

/// One read: runs on a reader thread with the database; answers its caller itself.
pub(crate) type Job = Box<dyn FnOnce(&Database) + Send>;

pub(crate) struct ReaderPool {
    /// Queue to the threads (multi-consumer: an idle thread takes the next job
    /// without a hand-off through a lock). `None` after shutdown.
    tx: Option<crossbeam_channel::Sender<(Job, OwnedSemaphorePermit)>>,
    /// Queue slots: the bound that callers wait on asynchronously (the channel
    /// itself is unbounded, a blocking send would block a tokio worker).
    slots: Arc<Semaphore>,
    /// Joined on shutdown: each thread holds the database, which must be closed
    /// (file lock released) when the last `Store` handle goes away.
    threads: Vec<JoinHandle<()>>,
}

impl ReaderPool {
    /// Starts the threads.
    ///
    /// # Errors
    /// The OS refused to start a thread (the message for `Error::Open`).
    pub(crate) fn start(db: &Arc<Database>) -> std::result::Result<ReaderPool, String> {
        let (tx, rx) = crossbeam_channel::unbounded::<(Job, OwnedSemaphorePermit)>();
        let mut pool = ReaderPool {
            tx: Some(tx),
            slots: Arc::new(Semaphore::new(READER_QUEUE)),
            threads: Vec::with_capacity(READER_THREADS),
        };
        for i in 0..READER_THREADS {
            let rx = rx.clone();
            let db = db.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("aside-store-read-{i}"))
                .spawn(move || {
                    for (job, slot) in rx {
                        // A panic inside redb (corrupt file) must not cost the pool
                        // a thread: the job's reply is dropped, its caller gets an
                        // error.
                        let run = std::panic::AssertUnwindSafe(|| job(&db));
                        if std::panic::catch_unwind(run).is_err() {
                            tracing::error!("a cold-tier read panicked");
                        }
                        drop(slot);
                    }
                });
            match spawned {
                Ok(h) => pool.threads.push(h),
                Err(e) => return Err(format!("cannot start a reader thread: {e}")),
            }
        }
        Ok(pool)
    }

    /// Queues a job, waiting (asynchronously) while the queue is full.
    ///
    /// # Errors
    /// `Error::Closed` after shutdown.
    pub(crate) async fn submit(&self, job: Job) -> Result<()> {
        let slot = self
            .slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Error::Closed)?;
        let tx = self.tx.as_ref().ok_or(Error::Closed)?;
        tx.send((job, slot)).map_err(|_| Error::Closed)
    }

    /// Closes the queue and waits for the threads (after the queued jobs ran).
    pub(crate) fn shutdown(&mut self) {
        self.slots.close();
        self.tx = None;
        for t in self.threads.drain(..) {
            if t.join().is_err() {
                tracing::error!("store reader thread panicked");
            }
        }
    }
}

impl Drop for ReaderPool {
    fn drop(&mut self) {
        self.shutdown();
    }
}
