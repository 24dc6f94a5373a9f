//! Value types of the purge fan-out: the event carried in the stream, stream IDs,
//! and what a publish gave. Imports nothing else of the crate.

use aside_store::{CacheSelector, PurgeMode};
use serde::{Deserialize, Serialize};

/// One purge as other nodes replay it: the selector and the mode, as applied on
/// the node that took it (`origin`, so that node skips its own event).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurgeEvent {
    /// Node id of the node that took the purge.
    pub origin: String,
    /// Normalized URLs (all Vary variants of each).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prefixes: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Entry keys, hex.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hashes: Vec<String>,
    #[serde(default)]
    pub everything: bool,
    /// Mark stale instead of removing.
    #[serde(default)]
    pub soft: bool,
}

impl PurgeEvent {
    /// The event of a purge applied locally by `origin`.
    pub fn new(origin: &str, selector: &CacheSelector, mode: PurgeMode) -> PurgeEvent {
        PurgeEvent {
            origin: origin.to_owned(),
            urls: selector.urls.clone(),
            prefixes: selector.prefixes.clone(),
            hosts: selector.hosts.clone(),
            tags: selector.tags.clone(),
            hashes: selector
                .hashes
                .iter()
                .map(|h| h.iter().map(|b| format!("{b:02x}")).collect())
                .collect(),
            everything: selector.everything,
            soft: mode == PurgeMode::Soft,
        }
    }

    /// "Soft-purge everything": what stands for events that could not be kept.
    pub fn everything_soft(origin: &str) -> PurgeEvent {
        PurgeEvent {
            everything: true,
            soft: true,
            ..PurgeEvent::new(origin, &CacheSelector::default(), PurgeMode::Soft)
        }
    }

    /// The selector and mode to apply; hashes that are not 32 hex digits are dropped.
    pub fn selector(&self) -> (CacheSelector, PurgeMode) {
        let hashes = self.hashes.iter().filter_map(|h| parse_hash(h)).collect();
        let selector = CacheSelector {
            urls: self.urls.clone(),
            prefixes: self.prefixes.clone(),
            hosts: self.hosts.clone(),
            tags: self.tags.clone(),
            hashes,
            everything: self.everything,
        };
        let mode = if self.soft {
            PurgeMode::Soft
        } else {
            PurgeMode::Hard
        };
        (selector, mode)
    }
}

fn parse_hash(hex: &str) -> Option<[u8; 16]> {
    if hex.len() != 32 || !hex.is_ascii() {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// A stream entry ID `<ms>-<n>`, compared as numbers (as strings, "9-0" > "10-0").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct StreamId {
    pub ms: u64,
    pub n: u64,
}

impl StreamId {
    /// Parses `<ms>-<n>`.
    pub fn parse(text: &str) -> Option<StreamId> {
        let (ms, n) = text.trim().split_once('-')?;
        Some(StreamId {
            ms: ms.parse().ok()?,
            n: n.parse().ok()?,
        })
    }
}

impl std::fmt::Display for StreamId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.ms, self.n)
    }
}

/// Where a node stands in the stream: the last entry it applied and that entry's
/// sequence number (gapless, so a jump reveals trimmed entries).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cursor {
    pub id: StreamId,
    pub seq: u64,
}

impl Cursor {
    /// `"<id> <seq>"`, the cursor file's text.
    pub fn to_text(self) -> String {
        format!("{} {}\n", self.id, self.seq)
    }

    pub fn parse(text: &str) -> Option<Cursor> {
        let mut parts = text.split_whitespace();
        let id = StreamId::parse(parts.next()?)?;
        let seq = parts.next()?.parse().ok()?;
        Some(Cursor { id, seq })
    }
}

/// What became of a published purge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Published {
    /// Standalone node: nothing to publish.
    Standalone,
    /// In the stream under this ID.
    Sent(StreamId),
    /// Redis is unreachable: kept in the on-disk queue, published when it is back.
    Queued,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_compare_as_numbers() {
        let a = StreamId::parse("9-0").unwrap();
        let b = StreamId::parse("10-0").unwrap();
        assert!(a < b);
        assert!(StreamId::parse("10-1").unwrap() > b);
        assert_eq!(b.to_string(), "10-0");
        assert_eq!(StreamId::parse("x-1"), None);
    }

    #[test]
    fn cursor_and_event_round_trip() {
        let c = Cursor {
            id: StreamId { ms: 5, n: 2 },
            seq: 9,
        };
        assert_eq!(Cursor::parse(&c.to_text()), Some(c));
        let selector = CacheSelector {
            urls: vec!["http://a/x".into()],
            hashes: vec![[0xab; 16]],
            ..CacheSelector::default()
        };
        let ev = PurgeEvent::new("n1", &selector, PurgeMode::Soft);
        let back: PurgeEvent = serde_json::from_str(&serde_json::to_string(&ev).unwrap()).unwrap();
        let (sel, mode) = back.selector();
        assert_eq!(sel.urls, selector.urls);
        assert_eq!(sel.hashes, selector.hashes);
        assert_eq!(mode, PurgeMode::Soft);
    }
}
