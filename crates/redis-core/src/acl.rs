//! The least-privilege ACL rules for an Aeturnis application user.
//!
//! Every Aeturnis crate works under a Redis ACL user limited to the key
//! prefix, the channels under it, and the command categories the crates
//! use (`tests/acl.rs` runs the core's commands under it; a command outside
//! fails with `NOPERM`, for which [`Error::is_no_permission`](crate::Error::is_no_permission)
//! holds). For the default prefix `aeturnis:`, the line is:
//!
//! ```text
//! ACL SETUSER aeturnis on >PASSWORD resetkeys resetchannels ~aeturnis:* &aeturnis:* -@all +@read +@write +@keyspace +@scripting +@pubsub +@transaction +@connection -@dangerous -script|flush -script|kill -function +info +time +wait +role +cluster|info +cluster|slots +cluster|shards
//! ```
//!
//! ```
//! use aeturnis_redis_core::acl::{acl_rules, COMMAND_RULES};
//!
//! let rules = acl_rules("aeturnis:");
//! assert_eq!(&rules[..4], ["resetkeys", "resetchannels", "~aeturnis:*", "&aeturnis:*"]);
//! assert_eq!(rules.len(), 4 + COMMAND_RULES.len());
//! ```

use crate::keys::escape_pattern;

/// The command rules, in order: every category the crates use (reads,
/// writes, key space, Lua scripts, pub/sub, `MULTI`, connection commands),
/// minus the dangerous commands and the script- and function-cache
/// management no crate needs, plus the few single commands the core sends:
/// `INFO` (health), `TIME` (server clock, scripts), `WAIT`
/// ([`Redis::replicated`](crate::Redis::replicated)), `ROLE` (fred's check of
/// a sentinel-named primary), `CLUSTER INFO` (fred checks `cluster_state`
/// on every new cluster connection) and `CLUSTER SLOTS`/`SHARDS` (cluster
/// routing).
pub const COMMAND_RULES: &[&str] = &[
    "-@all",
    "+@read",
    "+@write",
    "+@keyspace",
    "+@scripting",
    "+@pubsub",
    "+@transaction",
    "+@connection",
    "-@dangerous",
    "-script|flush",
    "-script|kill",
    "-function",
    "+info",
    "+time",
    "+wait",
    "+role",
    "+cluster|info",
    "+cluster|slots",
    "+cluster|shards",
];

/// The `ACL SETUSER` rules (after the user name, `on` and the password) for
/// an application whose key prefix is `prefix`: keys and shard channels
/// under the prefix only (its glob characters escaped), then
/// [`COMMAND_RULES`]. One rule an item, ready to pass as arguments.
#[must_use]
pub fn acl_rules(prefix: &str) -> Vec<String> {
    let pattern = format!("{}*", escape_pattern(prefix));
    let mut rules = vec![
        "resetkeys".to_owned(),
        "resetchannels".to_owned(),
        format!("~{pattern}"),
        format!("&{pattern}"),
    ];
    rules.extend(COMMAND_RULES.iter().map(|r| (*r).to_owned()));
    rules
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn should_document_the_exact_rules_for_the_default_prefix() {
        let line = format!(
            "ACL SETUSER aeturnis on >PASSWORD {}",
            acl_rules("aeturnis:").join(" ")
        );
        assert!(include_str!("acl.rs").contains(&format!("//! {line}\n")));
        assert!(include_str!("../docs/guide.md").contains(&line));
    }

    #[test]
    fn should_escape_glob_characters_of_the_prefix() {
        let rules = acl_rules("a*b:");
        assert_eq!(rules[2], "~a\\*b:*");
        assert_eq!(rules[3], "&a\\*b:*");
    }
}
