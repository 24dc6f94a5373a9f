//! The cache catalog: listing and selecting cached responses through the url,
//! host and tag indexes, so that no listing or purge scans the whole store
//! (except "everything", which by definition visits every entry).
//!
//! Functions are generic over redb's `ReadableTable`, so the same code serves
//! read transactions (listing, dry runs) and the writer's transaction (purges).

use std::collections::BTreeSet;
use std::ops::Bound;

use redb::ReadableTable;

use crate::cold::{cache_stale_until, decode_cache, Ctx, Hash};
use crate::{CacheEntry, CacheFilter, CacheSelector, Result};

/// The four cache tables, borrowed from whichever transaction is at hand.
pub(crate) struct CacheTables<'a, C, U, H, T> {
    pub(crate) cache: &'a C,
    pub(crate) url: &'a U,
    pub(crate) host: &'a H,
    pub(crate) tag: &'a T,
}

/// One listed entry, body not loaded.
pub(crate) struct Listed {
    pub(crate) entry: CacheEntry,
    pub(crate) size: u64,
}

impl<C, U, H, T> CacheTables<'_, C, U, H, T>
where
    C: ReadableTable<&'static Hash, &'static [u8]>,
    U: ReadableTable<(&'static str, &'static Hash), u64>,
    H: ReadableTable<(&'static str, &'static str, &'static Hash), ()>,
    T: ReadableTable<(&'static str, &'static str, &'static Hash), ()>,
{
    /// Loads a live entry (not past `stale_until`) without its body.
    fn live_summary(&self, hash: &Hash, now_nanos: u64) -> Result<Option<Listed>> {
        let Some(g) = self.cache.get(hash).ctx("reading a cache entry")? else {
            return Ok(None);
        };
        let bytes = g.value();
        if cache_stale_until(bytes)? <= now_nanos {
            return Ok(None);
        }
        let rec = decode_cache(*hash, bytes, false)?;
        Ok(Some(Listed {
            entry: rec.entry,
            size: rec.body_len,
        }))
    }

    pub(crate) fn is_live(&self, hash: &Hash, now_nanos: u64) -> Result<bool> {
        match self.cache.get(hash).ctx("reading a cache entry")? {
            Some(g) => Ok(cache_stale_until(g.value())? > now_nanos),
            None => Ok(false),
        }
    }

    /// Entries matching all of the filter's fields, ordered by (url, hash),
    /// strictly after `after`. Returns the page and whether more follow.
    pub(crate) fn list(
        &self,
        filter: &CacheFilter,
        limit: usize,
        after: Option<(String, Hash)>,
        now_nanos: u64,
    ) -> Result<(Vec<Listed>, bool)> {
        let prefix = filter.prefix.as_deref().unwrap_or("");
        // Start at the cursor when it is inside the prefix range, else at the prefix.
        let start: Option<(String, Hash)> = after.filter(|(u, _)| u.as_str() >= prefix);
        let mut out = Vec::new();
        let mut more = false;
        // Returns false to stop.
        let mut visit = |url: &str, hash: &Hash| -> Result<bool> {
            if !url.starts_with(prefix) {
                return Ok(false);
            }
            let Some(l) = self.live_summary(hash, now_nanos)? else {
                return Ok(true);
            };
            if filter.host.as_ref().is_some_and(|h| &l.entry.host != h)
                || filter
                    .tag
                    .as_ref()
                    .is_some_and(|t| !l.entry.tags.contains(t))
            {
                return Ok(true);
            }
            if out.len() == limit {
                more = true;
                return Ok(false);
            }
            out.push(l);
            Ok(true)
        };
        // Drive by the most selective index: tag, then host, then url.
        if let Some(tag) = &filter.tag {
            walk_named(self.tag, tag, prefix, start.as_ref(), &mut visit)?;
        } else if let Some(host) = &filter.host {
            walk_named(self.host, host, prefix, start.as_ref(), &mut visit)?;
        } else {
            let zero = [0u8; 16];
            let lo = match &start {
                Some((u, h)) => Bound::Excluded((u.as_str(), h)),
                None => Bound::Included((prefix, &zero)),
            };
            for row in self
                .url
                .range::<(&str, &Hash)>((lo, Bound::Unbounded))
                .ctx("listing cache entries")?
            {
                let (k, _) = row.ctx("listing cache entries")?;
                let (url, hash) = k.value();
                if !visit(url, hash)? {
                    break;
                }
            }
        }
        Ok((out, more))
    }

    /// The union of the selector's lists: every stored hash it names (live or not,
    /// so a purge also drops garbage the GC has not reached yet).
    pub(crate) fn select(&self, sel: &CacheSelector) -> Result<BTreeSet<Hash>> {
        let mut set = BTreeSet::new();
        let zero = [0u8; 16];
        let ones = [0xffu8; 16];
        if sel.everything {
            for row in self.cache.iter().ctx("selecting cache entries")? {
                let (k, _) = row.ctx("selecting cache entries")?;
                set.insert(*k.value());
            }
            return Ok(set);
        }
        for url in &sel.urls {
            let range = (url.as_str(), &zero)..=(url.as_str(), &ones);
            for row in self
                .url
                .range::<(&str, &Hash)>(range)
                .ctx("selecting cache entries")?
            {
                let (k, _) = row.ctx("selecting cache entries")?;
                set.insert(*k.value().1);
            }
        }
        for prefix in &sel.prefixes {
            for row in self
                .url
                .range::<(&str, &Hash)>((prefix.as_str(), &zero)..)
                .ctx("selecting cache entries")?
            {
                let (k, _) = row.ctx("selecting cache entries")?;
                let (url, hash) = k.value();
                if !url.starts_with(prefix.as_str()) {
                    break;
                }
                set.insert(*hash);
            }
        }
        select_by_name(self.host, &sel.hosts, &mut set)?;
        select_by_name(self.tag, &sel.tags, &mut set)?;
        for hash in &sel.hashes {
            if self
                .cache
                .get(hash)
                .ctx("selecting cache entries")?
                .is_some()
            {
                set.insert(*hash);
            }
        }
        Ok(set)
    }
}

/// Walks a (name, url, hash) index from the prefix or the cursor while the name matches.
fn walk_named(
    table: &impl ReadableTable<(&'static str, &'static str, &'static Hash), ()>,
    name: &str,
    prefix: &str,
    start: Option<&(String, Hash)>,
    visit: &mut dyn FnMut(&str, &Hash) -> Result<bool>,
) -> Result<()> {
    let zero = [0u8; 16];
    let lo = match start {
        Some((u, h)) => Bound::Excluded((name, u.as_str(), h)),
        None => Bound::Included((name, prefix, &zero)),
    };
    for row in table
        .range::<(&str, &str, &Hash)>((lo, Bound::Unbounded))
        .ctx("listing cache entries")?
    {
        let (k, _) = row.ctx("listing cache entries")?;
        let (n, url, hash) = k.value();
        if n != name || !visit(url, hash)? {
            break;
        }
    }
    Ok(())
}

fn select_by_name(
    table: &impl ReadableTable<(&'static str, &'static str, &'static Hash), ()>,
    names: &[String],
    set: &mut BTreeSet<Hash>,
) -> Result<()> {
    let zero = [0u8; 16];
    for name in names {
        for row in table
            .range::<(&str, &str, &Hash)>((name.as_str(), "", &zero)..)
            .ctx("selecting cache entries")?
        {
            let (k, _) = row.ctx("selecting cache entries")?;
            let (n, _, hash) = k.value();
            if n != name {
                break;
            }
            set.insert(*hash);
        }
    }
    Ok(())
}
