//! Model-based test: random operation sequences against a `BTreeMap` reference,
//! with a mock clock, comparing every answer (including paginated listings).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aside_store::{
    Check, Clock, Error, ListQuery, MockClock, Mutation, SetCondition, Store, Version,
};
use proptest::prelude::*;
use serde_json::{json, Value};

use crate::config;

const KEYS: &[&str] = &[
    "a", "a/b", "a/b/c", "a-b", "ab", "b", "b/a", "c", "a/c", "a-b/c", "a/b-c",
];
const PREFIXES: &[&str] = &["a", "a/b", "b", "ab", "a/", "a-b"];

/// The listing order the store promises: keys compared part by part, each part
/// bytewise ("a/b" < "a-b", whereas plain byte order puts "a-b" first).
fn part_order(a: &str, b: &str) -> std::cmp::Ordering {
    a.split('/').cmp(b.split('/'))
}

#[derive(Clone, Debug)]
enum Cond {
    Always,
    IfAbsent,
    IfCurrent,
    IfBogus,
}

#[derive(Clone, Debug)]
enum Val {
    Int(i64),
    Text(u8),
}

impl Val {
    fn json(&self) -> Value {
        match self {
            Val::Int(i) => json!(i),
            Val::Text(t) => json!(format!("t{t}")),
        }
    }
}

#[derive(Clone, Debug)]
enum MutOp {
    Set(usize, Val, Option<u64>),
    Delete(usize),
    Inc(usize, i64, Option<u64>),
}

#[derive(Clone, Debug)]
enum Op {
    Set(usize, Val, Option<u64>, Cond),
    Delete(usize),
    Get(usize),
    GetMany(Vec<usize>),
    List {
        prefix: Option<usize>,
        start: Option<usize>,
        end: Option<usize>,
        limit: usize,
        reverse: bool,
    },
    Atomic(Vec<(usize, bool)>, Vec<MutOp>),
    Advance(u64),
}

fn val() -> impl Strategy<Value = Val> {
    prop_oneof![(-5i64..5).prop_map(Val::Int), (0u8..3).prop_map(Val::Text)]
}

fn key() -> impl Strategy<Value = usize> {
    0..KEYS.len()
}

fn ttl() -> impl Strategy<Value = Option<u64>> {
    prop_oneof![Just(None), (1u64..6).prop_map(Some)]
}

fn op() -> impl Strategy<Value = Op> {
    let cond = prop_oneof![
        Just(Cond::Always),
        Just(Cond::IfAbsent),
        Just(Cond::IfCurrent),
        Just(Cond::IfBogus)
    ];
    let mutop = prop_oneof![
        (key(), val(), ttl()).prop_map(|(k, v, t)| MutOp::Set(k, v, t)),
        key().prop_map(MutOp::Delete),
        (key(), -3i64..4, ttl()).prop_map(|(k, d, t)| MutOp::Inc(k, d, t)),
    ];
    prop_oneof![
        4 => (key(), val(), ttl(), cond).prop_map(|(k, v, t, c)| Op::Set(k, v, t, c)),
        2 => key().prop_map(Op::Delete),
        2 => key().prop_map(Op::Get),
        1 => prop::collection::vec(key(), 0..4).prop_map(Op::GetMany),
        2 => (
            prop::option::of(0..PREFIXES.len()),
            prop::option::of(key()),
            prop::option::of(key()),
            1usize..4,
            any::<bool>()
        )
            .prop_map(|(prefix, start, end, limit, reverse)| Op::List { prefix, start, end, limit, reverse }),
        2 => (
            prop::collection::vec((key(), any::<bool>()), 0..3),
            prop::collection::vec(mutop, 1..4)
        )
            .prop_map(|(c, m)| Op::Atomic(c, m)),
        2 => (0u64..4).prop_map(Op::Advance),
    ]
}

#[derive(Clone, Debug, PartialEq)]
struct Entry {
    value: Value,
    version: Version,
    expires_at: Option<SystemTime>,
}

struct Model {
    map: BTreeMap<String, Entry>,
}

impl Model {
    fn live(&self, k: &str, now: SystemTime) -> Option<&Entry> {
        self.map
            .get(k)
            .filter(|e| e.expires_at.is_none_or(|x| x > now))
    }

    fn matches(
        &self,
        k: &str,
        prefix: Option<&str>,
        start: Option<&str>,
        end: Option<&str>,
    ) -> bool {
        let p = prefix
            .map(|p| p.trim_end_matches('/'))
            .filter(|p| !p.is_empty());
        p.is_none_or(|p| k == p || k.starts_with(&format!("{p}/")))
            && start.is_none_or(|s| part_order(k, s).is_ge())
            && end.is_none_or(|e| part_order(k, e).is_lt())
    }
}

fn bogus() -> Version {
    "00000000deadbeef".parse().unwrap()
}

async fn run(ops: Vec<Op>) {
    let dir = tempfile::tempdir().unwrap();
    let clock = MockClock::default();
    let mut cfg = config(&dir);
    // A tiny hot tier so both tiers are exercised.
    cfg.hot_capacity = 2048;
    let store = Store::open_with_clock(cfg, Arc::new(clock.clone()))
        .await
        .unwrap();
    let mut model = Model {
        map: BTreeMap::new(),
    };
    for op in ops {
        let now = clock.now();
        match op {
            Op::Set(k, v, ttl, cond) => {
                let key = KEYS[k];
                let current = model.live(key, now).map(|e| e.version);
                let (condition, ok) = match cond {
                    Cond::Always => (SetCondition::Always, true),
                    Cond::IfAbsent => (SetCondition::IfAbsent, current.is_none()),
                    Cond::IfCurrent => match current {
                        Some(v) => (SetCondition::IfVersion(v), true),
                        None => (SetCondition::IfVersion(bogus()), false),
                    },
                    Cond::IfBogus => (SetCondition::IfVersion(bogus()), false),
                };
                let r = store
                    .set(key, v.json(), ttl.map(Duration::from_secs), condition)
                    .await;
                if ok {
                    let item = r.unwrap();
                    assert_eq!(item.value, v.json());
                    let expires_at = ttl.map(|t| now + Duration::from_secs(t));
                    assert_eq!(item.expires_at, expires_at);
                    if let Some(old) = model.map.get(key) {
                        assert!(item.version > old.version);
                    }
                    model.map.insert(
                        key.into(),
                        Entry {
                            value: v.json(),
                            version: item.version,
                            expires_at,
                        },
                    );
                } else {
                    assert!(matches!(r, Err(Error::PreconditionFailed { .. })), "{r:?}");
                }
            }
            Op::Delete(k) => {
                let key = KEYS[k];
                let existed = model.live(key, now).is_some();
                assert_eq!(store.delete(key).await.unwrap(), existed, "delete {key}");
                model.map.remove(key);
            }
            Op::Get(k) => {
                let key = KEYS[k];
                let got = store.get(key).await.unwrap().map(|i| Entry {
                    value: i.value.to_value(),
                    version: i.version,
                    expires_at: i.expires_at,
                });
                assert_eq!(got.as_ref(), model.live(key, now), "get {key}");
            }
            Op::GetMany(ks) => {
                let keys: Vec<String> = ks.iter().map(|k| KEYS[*k].to_string()).collect();
                let got = store.get_many(&keys).await.unwrap();
                for (k, g) in keys.iter().zip(got) {
                    assert_eq!(g.map(|i| i.version), model.live(k, now).map(|e| e.version));
                }
            }
            Op::List {
                prefix,
                start,
                end,
                limit,
                reverse,
            } => {
                let prefix = prefix.map(|p| PREFIXES[p]);
                let start = start.map(|s| KEYS[s]);
                let end = end.map(|e| KEYS[e]);
                let mut expected: Vec<(String, Version)> = model
                    .map
                    .iter()
                    .filter(|(k, _)| {
                        model.live(k, now).is_some() && model.matches(k, prefix, start, end)
                    })
                    .map(|(k, e)| (k.clone(), e.version))
                    .collect();
                expected.sort_by(|a, b| part_order(&a.0, &b.0));
                if reverse {
                    expected.reverse();
                }
                let mut got = Vec::new();
                let mut cursor = None;
                for _page in 0..20 {
                    let page = store
                        .list(ListQuery {
                            prefix: prefix.map(str::to_string),
                            start: start.map(str::to_string),
                            end: end.map(str::to_string),
                            limit,
                            cursor,
                            reverse,
                        })
                        .await
                        .unwrap();
                    assert_eq!(page.total, expected.len() as u64, "total");
                    assert!(page.items.len() <= limit);
                    got.extend(page.items.into_iter().map(|i| (i.key, i.version)));
                    cursor = page.cursor;
                    if cursor.is_none() {
                        break;
                    }
                }
                assert_eq!(
                    got, expected,
                    "list {prefix:?} {start:?} {end:?} rev={reverse}"
                );
            }
            Op::Atomic(checks, muts) => {
                let checks: Vec<Check> = checks
                    .into_iter()
                    .map(|(k, present)| Check {
                        key: KEYS[k].into(),
                        version: if present {
                            Some(
                                model
                                    .live(KEYS[k], now)
                                    .map(|e| e.version)
                                    .unwrap_or_else(bogus),
                            )
                        } else {
                            None
                        },
                    })
                    .collect();
                let checks_ok = checks
                    .iter()
                    .all(|c| model.live(&c.key, now).map(|e| e.version) == c.version);
                // Plan on a copy of the model.
                let mut next = model.map.clone();
                next.retain(|k, _| model.live(k, now).is_some());
                let mut plan_err = None;
                let mut mutations = Vec::new();
                let mut touched = Vec::new();
                for m in &muts {
                    match m {
                        MutOp::Set(k, v, ttl) => {
                            mutations.push(Mutation::Set {
                                key: KEYS[*k].into(),
                                value: v.json().into(),
                                ttl: ttl.map(Duration::from_secs),
                            });
                            next.insert(
                                KEYS[*k].into(),
                                Entry {
                                    value: v.json(),
                                    version: bogus(),
                                    expires_at: ttl.map(|t| now + Duration::from_secs(t)),
                                },
                            );
                            touched.push(Some(KEYS[*k]));
                        }
                        MutOp::Delete(k) => {
                            mutations.push(Mutation::Delete {
                                key: KEYS[*k].into(),
                            });
                            next.remove(KEYS[*k]);
                            touched.push(None);
                        }
                        MutOp::Inc(k, d, ttl) => {
                            mutations.push(Mutation::Increment {
                                key: KEYS[*k].into(),
                                delta: json!(*d).into(),
                                ttl: ttl.map(Duration::from_secs),
                            });
                            let cur = next.get(KEYS[*k]).cloned();
                            let (base, exp) = match &cur {
                                Some(e) => (e.value.clone(), e.expires_at),
                                None => (json!(0), None),
                            };
                            match base.as_i64() {
                                Some(b) => {
                                    let expires_at = match ttl {
                                        Some(t) => Some(now + Duration::from_secs(*t)),
                                        None => exp,
                                    };
                                    next.insert(
                                        KEYS[*k].into(),
                                        Entry {
                                            value: json!(b + d),
                                            version: bogus(),
                                            expires_at,
                                        },
                                    );
                                }
                                None => {
                                    if plan_err.is_none() {
                                        plan_err = Some(());
                                    }
                                }
                            }
                            touched.push(Some(KEYS[*k]));
                        }
                    }
                }
                let r = store.atomic(checks, mutations).await;
                if !checks_ok {
                    assert!(matches!(r, Err(Error::CheckFailed { .. })), "{r:?}");
                } else if plan_err.is_some() {
                    assert!(matches!(r, Err(Error::NotANumber { .. })), "{r:?}");
                } else {
                    let r = r.unwrap();
                    assert_eq!(r.versions.len(), touched.len());
                    // Adopt the returned versions (the last write to a key wins).
                    for ((key, v), t) in r.versions.iter().zip(&touched) {
                        assert_eq!(v.is_some(), t.is_some());
                        if let (Some(v), Some(e)) = (v, next.get_mut(key)) {
                            e.version = *v;
                        }
                    }
                    // Keys not touched keep their (possibly expired) entries.
                    for (k, e) in &model.map {
                        if !next.contains_key(k) && !r.versions.iter().any(|(rk, _)| rk == k) {
                            next.insert(k.clone(), e.clone());
                        }
                    }
                    model.map = next;
                }
            }
            Op::Advance(s) => clock.advance(Duration::from_secs(s)),
        }
    }
    // GC never changes an answer.
    store.collect_garbage().await.unwrap();
    let now = clock.now();
    for key in KEYS {
        let got = store.get(key).await.unwrap().map(|i| i.version);
        assert_eq!(got, model.live(key, now).map(|e| e.version));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
    #[test]
    fn store_matches_btreemap_model(ops in prop::collection::vec(op(), 1..40)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(run(ops));
    }
}
