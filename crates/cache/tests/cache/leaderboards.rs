//! Sorted sets and leaderboards: ranks, pages around a member, and
//! scores that must stay finite.
use std::num::NonZeroU32;
use std::time::Duration;

use aeturnis_cache::core::prelude::*;
use aeturnis_cache::{Classify, Error, Ttl};
use aeturnis_testkit::TestCtx;
use anyhow::{bail, Result};

use crate::support::*;

async fn should_rank_leaderboards(ctx: TestCtx) -> Result<()> {
    let cache = cache(&ctx).await?;
    let board = cache.schema().leaderboard("pvp")?;
    let day = Duration::from_secs(86_400);
    for (i, name) in ["a", "b", "c", "d", "e", "f", "g"].iter().enumerate() {
        cache
            .leaderboard_add(&board, name, (i as f64) * 10.0, day)
            .await?;
    }
    assert_has_ttl(&cache, &board, day).await?;
    // g=60 f=50 e=40 d=30 c=20 b=10 a=0; a gains 45 -> a=45
    assert_eq!(cache.leaderboard_incr(&board, "a", 45.0, day).await?, 45.0);
    assert_eq!(cache.leaderboard_incr(&board, "new", 1.5, day).await?, 1.5);
    assert_has_ttl(&cache, &board, day).await?;

    let top = cache
        .leaderboard_top(&board, NonZeroU32::MIN.saturating_add(2))
        .await?;
    let rows: Vec<(u64, &str, f64)> = top
        .iter()
        .map(|e| (e.rank, e.member.as_str(), e.score))
        .collect();
    assert_eq!(rows, vec![(1, "g", 60.0), (2, "f", 50.0), (3, "a", 45.0)]);

    assert_eq!(cache.leaderboard_rank(&board, "g").await?, Some(1));
    assert_eq!(cache.leaderboard_rank(&board, "e").await?, Some(4));
    assert_eq!(cache.leaderboard_rank(&board, "nobody").await?, None);
    assert_eq!(cache.zset_score(&board, "a").await?, Some(45.0));
    assert_eq!(cache.zset_len(&board).await?, 8);

    let around = cache
        .leaderboard_around(&board, "e", 1)
        .await?
        .ok_or_else(|| anyhow::anyhow!("e is on the board"))?;
    let rows: Vec<(u64, &str)> = around.iter().map(|e| (e.rank, e.member.as_str())).collect();
    assert_eq!(rows, vec![(3, "a"), (4, "e"), (5, "d")]);
    let at_top = cache
        .leaderboard_around(&board, "g", 2)
        .await?
        .unwrap_or_default();
    let rows: Vec<(u64, &str)> = at_top.iter().map(|e| (e.rank, e.member.as_str())).collect();
    assert_eq!(rows, vec![(1, "g"), (2, "f"), (3, "a")]);
    assert_eq!(cache.leaderboard_around(&board, "nobody", 2).await?, None);

    assert_eq!(
        cache
            .zset_add(&board, &[("h", 5.0), ("g", 1.0)], day)
            .await?,
        1
    );
    // f a e d c b h new g
    assert_eq!(cache.leaderboard_rank(&board, "g").await?, Some(9));
    assert_eq!(cache.zset_remove(&board, &["h", "zz"]).await?, 1);
    Ok(())
}

/// `f64::MAX` onto `f64::MAX` overflows to `+inf`: refused in the same
/// atomic script, with nothing stored and the TTL untouched.
async fn should_refuse_a_non_finite_score_and_store_nothing(ctx: TestCtx) -> Result<()> {
    let cache = cache(&ctx).await?;
    let board = cache.schema().leaderboard("overflow")?;
    let day = Duration::from_secs(86_400);
    cache.leaderboard_add(&board, "max", f64::MAX, day).await?;
    cache.leaderboard_add(&board, "min", f64::MIN, day).await?;
    // a shorter TTL: a PEXPIRE from a refused call would lengthen it
    cache
        .redis()
        .client()
        .pexpire::<(), _>(&board, 30_000, None)
        .await?;

    for (member, by) in [("max", f64::MAX), ("min", f64::MIN)] {
        match cache.leaderboard_incr(&board, member, by, day).await {
            Err(e @ Error::NotFinite { .. }) => {
                assert!(e.is_invalid_input() && !e.is_retryable(), "{e:?}");
                let Error::NotFinite { key, member: m } = e else {
                    bail!("matched above")
                };
                assert_eq!((key.as_str(), m.as_str()), (board.as_str(), member));
            }
            other => bail!("{member} + {by}: expected NotFinite, got {other:?}"),
        }
        assert!(matches!(
            cache.zset_incr(&board, member, by, day).await,
            Err(Error::NotFinite { .. })
        ));
    }
    assert_eq!(cache.zset_score(&board, "max").await?, Some(f64::MAX));
    assert_eq!(cache.zset_score(&board, "min").await?, Some(f64::MIN));
    assert_eq!(cache.zset_len(&board).await?, 2);
    assert_has_ttl(&cache, &board, Duration::from_secs(30)).await?;

    // at the edge, a finite result is still stored (and sets the TTL)
    assert_eq!(
        cache
            .leaderboard_incr(&board, "max", -f64::MAX, day)
            .await?,
        0.0
    );
    assert_eq!(
        cache.leaderboard_incr(&board, "new", f64::MAX, day).await?,
        f64::MAX
    );
    assert_eq!(cache.zset_score(&board, "new").await?, Some(f64::MAX));
    let ms = pttl(&cache, &board).await?;
    assert!(ms > 30_000, "the TTL was set again: {ms}");
    Ok(())
}

/// A non-finite increment is refused before anything is sent: on a key of
/// the wrong type, a sent command would come back `WRONGTYPE`.
async fn should_refuse_a_non_finite_increment_before_sending(ctx: TestCtx) -> Result<()> {
    let cache = cache(&ctx).await?;
    let list = cache.key("notaboard").build()?;
    cache.list_push_back(&list, &[1u8], Ttl::Default).await?;
    for by in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        for result in [
            cache.leaderboard_incr(&list, "m", by, Ttl::Default).await,
            cache.zset_incr(&list, "m", by, Ttl::Default).await,
        ] {
            match result {
                Err(e @ Error::InvalidArgument { .. }) => assert!(e.is_invalid_input()),
                other => bail!("{by}: expected InvalidArgument, got {other:?}"),
            }
        }
        assert!(matches!(
            cache.zset_add(&list, &[("m", by)], Ttl::Default).await,
            Err(Error::InvalidArgument { .. })
        ));
    }
    // the same call with a finite increment does reach Redis
    assert!(matches!(
        cache.leaderboard_incr(&list, "m", 1.0, Ttl::Default).await,
        Err(Error::WrongType { .. })
    ));
    assert_eq!(cache.list_len(&list).await?, 1);
    Ok(())
}

aeturnis_testkit::topology_tests!(
    should_rank_leaderboards,
    should_refuse_a_non_finite_score_and_store_nothing,
    should_refuse_a_non_finite_increment_before_sending,
);
