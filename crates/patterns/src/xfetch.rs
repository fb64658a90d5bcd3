//! XFetch (Vattani, Chierichetti, Lowenstein, VLDB 2015): the early
//! refresh draw of [`CacheAside`](crate::CacheAside).

use crate::envelope::Entry;

/// XFetch (Vattani, Chierichetti, Lowenstein, VLDB 2015): refresh early
/// when `now − δ·β·ln(u) ≥ expiry`, with `u` uniform in (0, 1]: the closer
/// the soft expiry and the slower the load, the likelier.
pub(crate) fn xfetch_due(now_ms: u64, entry: &Entry, beta: f64, draw: f64) -> bool {
    if beta <= 0.0 || entry.delta_ms == 0 {
        return false;
    }
    let u = (1.0 - draw).clamp(f64::MIN_POSITIVE, 1.0);
    let gap = f64::from(entry.delta_ms) * beta * -u.ln();
    #[allow(clippy::cast_precision_loss)] // server ms since the epoch: exact below 2^53
    let due = now_ms as f64 + gap >= entry.soft_at_ms as f64;
    due
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(soft_at_ms: u64, delta_ms: u32) -> Entry {
        Entry {
            token: [0; 8],
            soft_at_ms,
            hard_at_ms: soft_at_ms + 1000,
            delta_ms,
            value: None,
        }
    }

    #[test]
    fn should_refresh_early_more_often_as_expiry_nears() {
        let draws: Vec<f64> = (0..1000).map(|i| f64::from(i) / 1000.0).collect();
        let share = |now: u64| {
            draws
                .iter()
                .filter(|d| xfetch_due(now, &entry(10_000, 100), 1.0, **d))
                .count()
        };
        let (far, near, at) = (share(9_000), share(9_900), share(10_000));
        assert!(far < near && near < at, "{far} {near} {at}");
        assert_eq!(at, 1000);
        // ln-tail: 1000 ms ahead with δ = 100 needs -ln(u) ≥ 10: u ≤ 4.5e-5
        assert_eq!(far, 0);
        assert!(!xfetch_due(9_999, &entry(10_000, 100), 0.0, 0.999));
        assert!(!xfetch_due(9_999, &entry(10_000, 0), 1.0, 0.999));
    }
}
