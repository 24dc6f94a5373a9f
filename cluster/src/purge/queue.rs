//! The on-disk queue of purges taken while Redis was unreachable: one JSON event
//! per line, appended (and synced) as purges come, rewritten atomically (a temp
//! file renamed over it) once some have been published. Bounded: past [`MAX_QUEUED`] events the
//! queue collapses into one "soft-purge everything", which covers them all.

use std::io::Write as _;
use std::path::PathBuf;

use super::event::PurgeEvent;

/// Most events kept; a longer outage costs the other nodes a full soft purge.
pub const MAX_QUEUED: usize = 10_000;

pub struct DiskQueue {
    path: PathBuf,
    events: Vec<PurgeEvent>,
}

impl DiskQueue {
    /// Loads what a previous run left (lines that do not parse are dropped, logged).
    pub fn open(path: PathBuf) -> DiskQueue {
        let mut events = Vec::new();
        if let Ok(text) = std::fs::read_to_string(&path) {
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                match serde_json::from_str(line) {
                    Ok(ev) => events.push(ev),
                    Err(e) => {
                        tracing::warn!(target: "aside::cluster", path = %path.display(), error = %e, "unreadable queued purge dropped")
                    }
                }
            }
            if !events.is_empty() {
                tracing::info!(target: "aside::cluster", queued = events.len(), "purges queued by a previous run will be published");
            }
        }
        DiskQueue { path, events }
    }

    pub fn len(&self) -> usize {
        self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    pub fn get(&self, i: usize) -> Option<&PurgeEvent> {
        self.events.get(i)
    }

    pub fn push(&mut self, event: PurgeEvent) {
        if self.events.len() >= MAX_QUEUED {
            tracing::warn!(target: "aside::cluster", max = MAX_QUEUED, "purge queue full: the other nodes will soft-purge everything instead");
            self.events = vec![PurgeEvent::everything_soft(&event.origin)];
            self.rewrite();
            return;
        }
        let line = serde_json::to_string(&event).unwrap_or_default();
        self.events.push(event);
        let appended = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .and_then(|mut f| {
                f.write_all(line.as_bytes())?;
                f.write_all(b"\n")?;
                f.sync_data()
            });
        if let Err(e) = appended {
            tracing::warn!(target: "aside::cluster", path = %self.path.display(), error = %e, "cannot write the purge queue; kept in memory only");
        }
    }

    pub fn remove_front(&mut self, n: usize) {
        self.events.drain(..n.min(self.events.len()));
        self.rewrite();
    }

    /// Replaces the file with the events in memory (removes it when empty).
    fn rewrite(&self) {
        if self.events.is_empty() {
            let _ = std::fs::remove_file(&self.path);
            return;
        }
        let mut text = String::new();
        for ev in &self.events {
            text.push_str(&serde_json::to_string(ev).unwrap_or_default());
            text.push('\n');
        }
        if let Err(e) = write_atomically(&self.path, text.as_bytes()) {
            tracing::warn!(target: "aside::cluster", path = %self.path.display(), error = %e, "cannot rewrite the purge queue");
        }
    }
}

/// Writes a temp file beside `path`, syncs it and renames it over `path`.
pub fn write_atomically(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_data()?;
    }
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn survives_reopen_and_collapses_when_full() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.jsonl");
        let mut q = DiskQueue::open(path.clone());
        q.push(PurgeEvent::everything_soft("a"));
        q.push(PurgeEvent::everything_soft("b"));
        assert_eq!(DiskQueue::open(path.clone()).len(), 2);
        q.remove_front(1);
        let q2 = DiskQueue::open(path.clone());
        assert_eq!(q2.len(), 1);
        assert_eq!(q2.get(0).unwrap().origin, "b");
        q.remove_front(1);
        assert!(!path.exists());
        for _ in 0..=MAX_QUEUED {
            q.push(PurgeEvent::everything_soft("c"));
        }
        assert_eq!(q.len(), 1);
        assert!(q.get(0).unwrap().everything);
    }
}
