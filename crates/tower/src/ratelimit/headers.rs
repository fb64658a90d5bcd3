//! The rate-limit response headers of draft-ietf-httpapi-ratelimit-headers-11
//! (`RateLimit-Policy`, `RateLimit`), and the legacy `X-RateLimit-*` form.

use std::fmt::Write as _;
use std::time::Duration;

use aeturnis_ratelimit::{Decision, RateLimiter};
use http::{HeaderMap, HeaderName, HeaderValue};

/// `RateLimit-Policy` (draft-ietf-httpapi-ratelimit-headers-11 §4).
pub const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
/// `RateLimit` (draft-ietf-httpapi-ratelimit-headers-11 §5).
pub const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");
/// Legacy `X-RateLimit-Limit`.
pub const X_RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
/// Legacy `X-RateLimit-Remaining`.
pub const X_RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
/// Legacy `X-RateLimit-Reset` (seconds until the quota is full again).
pub const X_RATELIMIT_RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");

/// Which rate-limit headers a response carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct HeaderOptions {
    /// The draft's headers on admitted responses too (denials always carry
    /// them). Default: `true`.
    pub on_allowed: bool,
    /// Also the legacy `X-RateLimit-Limit`, `-Remaining`, `-Reset`.
    /// Default: `false`.
    pub legacy: bool,
}

impl Default for HeaderOptions {
    fn default() -> Self {
        HeaderOptions {
            on_allowed: true,
            legacy: false,
        }
    }
}

/// Whole seconds, rounded up (`w` and `t` are integers; rounding up never
/// tells a client it may come back early).
fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// `name` as a structured-field String: `"` and `\` escaped, characters
/// outside visible ASCII and space replaced by `_`.
fn sf_string(out: &mut String, name: &str) {
    out.push('"');
    for c in name.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            _ => out.push('_'),
        }
    }
    out.push('"');
}

/// Writes the headers for `limiters` and their `decisions` (same order)
/// into `headers`, after any members already there: `RateLimit-Policy: "api";q=100;w=60` (one member per
/// limiter) and `RateLimit: "api";r=42;t=17`, plus the legacy form (of the
/// decision that matters, `reported`) when asked.
pub(crate) fn write(
    headers: &mut HeaderMap,
    limiters: &[RateLimiter],
    decisions: &[Decision],
    reported: &Decision,
    legacy: bool,
) {
    let mut policy = String::new();
    let mut state = String::new();
    for (limiter, decision) in limiters.iter().zip(decisions) {
        let config = limiter.config();
        if !policy.is_empty() {
            policy.push_str(", ");
            state.push_str(", ");
        }
        sf_string(&mut policy, &config.name);
        let _ = write!(
            policy,
            ";q={};w={}",
            decision.limit,
            ceil_secs(config.quota.window()).max(1)
        );
        sf_string(&mut state, &config.name);
        let _ = write!(
            state,
            ";r={};t={}",
            decision.remaining,
            ceil_secs(decision.reset_after)
        );
    }
    append(headers, RATELIMIT_POLICY, policy);
    append(headers, RATELIMIT, state);
    // the legacy fields hold one limit: an inner layer's (the more specific
    // route limit) stays
    if legacy && !headers.contains_key(X_RATELIMIT_LIMIT) {
        headers.insert(X_RATELIMIT_LIMIT, HeaderValue::from(reported.limit));
        headers.insert(X_RATELIMIT_REMAINING, HeaderValue::from(reported.remaining));
        headers.insert(
            X_RATELIMIT_RESET,
            HeaderValue::from(ceil_secs(reported.reset_after)),
        );
    }
}

/// Sets `name` to `members`, after the members already there: a layer
/// inside this one (a per-route limit inside the API limit) wrote its own
/// policies first, and the field lists them all.
fn append(headers: &mut HeaderMap, name: HeaderName, members: String) {
    let value = match headers.get(&name).and_then(|v| v.to_str().ok()) {
        Some(inner) if !inner.is_empty() => format!("{inner}, {members}"),
        _ => members,
    };
    if let Ok(v) = HeaderValue::from_str(&value) {
        headers.insert(name, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn should_escape_policy_names_as_sf_strings() {
        let mut out = String::new();
        sf_string(&mut out, "a\"b\\c\u{e9}");
        assert_eq!(out, r#""a\"b\\c_""#);
    }

    #[test]
    fn should_round_seconds_up() {
        assert_eq!(ceil_secs(Duration::ZERO), 0);
        assert_eq!(ceil_secs(Duration::from_millis(1)), 1);
        assert_eq!(ceil_secs(Duration::from_millis(2000)), 2);
    }
}
