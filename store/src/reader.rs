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

use parking_lot::Mutex;
use redb::Database;
use tokio::sync::mpsc;

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
    /// Queue to the threads; replaced by a closed sender on shutdown.
    tx: mpsc::Sender<Job>,
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
        let (tx, rx) = mpsc::channel::<Job>(READER_QUEUE);
        // One receiver shared by the threads: whoever holds the lock waits for the
        // next job and releases the lock as soon as it has one.
        let rx = Arc::new(Mutex::new(rx));
        let mut threads = Vec::with_capacity(READER_THREADS);
        for i in 0..READER_THREADS {
            let rx = rx.clone();
            let db = db.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("aside-store-read-{i}"))
                .spawn(move || loop {
                    let job = rx.lock().blocking_recv();
                    let Some(job) = job else { break };
                    // A panic inside redb (corrupt file) must not cost the pool a
                    // thread: the job's reply is dropped, its caller gets an error.
                    let run = std::panic::AssertUnwindSafe(|| job(&db));
                    if std::panic::catch_unwind(run).is_err() {
                        tracing::error!("a cold-tier read panicked");
                    }
                });
            match spawned {
                Ok(h) => threads.push(h),
                Err(e) => {
                    drop(tx);
                    for t in threads {
                        let _ = t.join();
                    }
                    return Err(format!("cannot start a reader thread: {e}"));
                }
            }
        }
        Ok(ReaderPool { tx, threads })
    }

    /// Queues a job, waiting (asynchronously) while the queue is full.
    ///
    /// # Errors
    /// `Error::Closed` after shutdown.
    pub(crate) async fn submit(&self, job: Job) -> Result<()> {
        self.tx.send(job).await.map_err(|_| Error::Closed)
    }

    /// Closes the queue and waits for the threads (after the queued jobs ran).
    pub(crate) fn shutdown(&mut self) {
        let (closed, _) = mpsc::channel(1);
        drop(std::mem::replace(&mut self.tx, closed));
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
