//! `deploy/.env.example` read through every crate's `from_lookup`: each
//! value it sets is accepted and equals the crate's default, every variable
//! it lists is one a crate reads, and every variable a crate reads is
//! listed (set, or shown commented out). The file and the code cannot
//! drift apart.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a panic is a failure

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use aeturnis_cache::CacheConfig;
use aeturnis_lock::{LockConfig, RedlockConfig};
use aeturnis_ratelimit::{Preset, RateLimitConfig};
use aeturnis_redis_core::{Env, RedisConfig};
use aeturnis_session::SessionConfig;

/// `(set, listed)`: the variables the file sets, with values, and every
/// variable it names in a `NAME=` line, set or commented out, outside the
/// tests-and-benches section (read by xtask and testkit, not the crates).
fn read_example() -> (HashMap<String, String>, BTreeSet<String>) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/.env.example");
    let text = std::fs::read_to_string(&path).unwrap();
    let (mut set, mut listed) = (HashMap::new(), BTreeSet::new());
    for line in text.lines() {
        if line.starts_with("# --- Tests and benches") {
            break;
        }
        let (commented, body) = match line.strip_prefix("# ") {
            Some(rest) => (true, rest),
            None => (false, line),
        };
        let Some((name, value)) = body.split_once('=') else {
            continue;
        };
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        {
            continue;
        }
        listed.insert(name.to_owned());
        if !commented {
            set.insert(name.to_owned(), value.to_owned());
        }
    }
    (set, listed)
}

#[test]
fn should_read_the_whole_env_example_through_every_crate() {
    let (set, listed) = read_example();
    assert!(set.len() > 30, "{set:?}");
    let asked = RefCell::new(BTreeSet::new());
    let lookup = |name: &str| {
        asked.borrow_mut().insert(name.to_owned());
        set.get(name).cloned()
    };
    // every crate accepts the file, and the file holds its defaults
    assert_eq!(
        RedisConfig::from_lookup(lookup).unwrap(),
        RedisConfig::default()
    );
    assert_eq!(
        CacheConfig::from_lookup(lookup).unwrap(),
        CacheConfig::default()
    );
    assert_eq!(
        SessionConfig::from_lookup(lookup).unwrap(),
        SessionConfig::default()
    );
    assert_eq!(
        LockConfig::from_lookup(lookup).unwrap(),
        LockConfig::default()
    );
    assert_eq!(
        RedlockConfig::from_lookup(lookup).unwrap(),
        RedlockConfig::default()
    );
    for preset in [
        Preset::Auth,
        Preset::Chat,
        Preset::Combat,
        Preset::Movement,
        Preset::Api,
    ] {
        let from_file = RateLimitConfig::from_lookup(preset, lookup).unwrap();
        let default = RateLimitConfig::from_lookup(preset, |_| None).unwrap();
        assert_eq!(from_file.quota, default.quota, "{preset:?}");
    }
    // the variables of the other topologies, read when they are chosen
    for (topology, nodes) in [
        ("cluster", "REDIS_CLUSTER_NODES"),
        ("sentinel", "REDIS_SENTINEL_NODES"),
    ] {
        let config = RedisConfig::from_lookup(|name: &str| match name {
            "REDIS_TOPOLOGY" => Some(topology.to_owned()),
            n if n == nodes => {
                asked.borrow_mut().insert(name.to_owned());
                Some("127.0.0.1:7000".to_owned())
            }
            _ => lookup(name),
        })
        .unwrap();
        assert_ne!(config.topology, RedisConfig::default().topology);
    }
    // the demo's own variable, read the way its main does
    let addr: Option<std::net::SocketAddr> = Env::new(lookup).parse("DEMO_ADDR").unwrap();
    assert_eq!(
        addr,
        Some(std::net::SocketAddr::from(([127, 0, 0, 1], 8080)))
    );
    // and the three the demo's config reads (commented out: their defaults)
    let env = Env::new(lookup);
    assert_eq!(env.bool("DEMO_MOVES_WORKERS").unwrap(), None);
    assert_eq!(env.string("DEMO_DATA_DIR"), None);
    assert_eq!(env.millis("DEMO_PRESENCE_TTL_MS").unwrap(), None);

    let asked = asked.into_inner();
    let unread: Vec<&String> = listed.difference(&asked).collect();
    assert!(
        unread.is_empty(),
        "the file lists variables no crate reads: {unread:?}"
    );
    let undocumented: Vec<&String> = asked.difference(&listed).collect();
    assert!(
        undocumented.is_empty(),
        "crates read variables the file does not list: {undocumented:?}"
    );
}
