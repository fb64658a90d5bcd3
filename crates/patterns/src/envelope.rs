//! The stored form of an entry and of a lease.
//!
//! ```text
//! byte 0       0xC1: a byte MessagePack never uses and JSON never starts
//!              with, so a plain `Cache::get` of this key fails with a
//!              typed decode error instead of reading garbage
//! byte 1       b'E' entry | b'L' lease
//! bytes 2..10  token: 64 random bits, new for every write (what `fill`
//!              compares)
//! entry only:
//! bytes 10..18 soft expiry, server ms since the epoch (u64 BE)
//! bytes 18..26 hard expiry, server ms since the epoch (u64 BE)
//! bytes 26..30 δ: how long the load took, ms (u32 BE), for early refresh
//! byte 30      flags: bit 0 = negative entry (the loader said `None`)
//! bytes 31..   the value, encoded by the core codec (absent when negative)
//! ```

use aeturnis_redis_core::fred::bytes::Bytes;

/// The first byte of every stored entry or lease.
pub(crate) const MAGIC: u8 = 0xC1;
const ENTRY: u8 = b'E';
const LEASE: u8 = b'L';
const HEADER: usize = 31;
const NEGATIVE: u8 = 1;

/// A 64-bit write token.
pub(crate) type Token = [u8; 8];

/// A fresh random token.
pub(crate) fn new_token() -> Token {
    rand::random::<u64>().to_be_bytes()
}

/// What a key holds, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Stored {
    /// A cached value (or a cached `None`).
    Entry(Entry),
    /// Someone is loading this key.
    Lease(Token),
}

/// A decoded entry: its metadata and the codec bytes of the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) token: Token,
    pub(crate) soft_at_ms: u64,
    pub(crate) hard_at_ms: u64,
    pub(crate) delta_ms: u32,
    /// `None` for a negative entry.
    pub(crate) value: Option<Bytes>,
}

/// The bytes of a lease.
pub(crate) fn lease(token: Token) -> Vec<u8> {
    let mut out = Vec::with_capacity(10);
    out.extend_from_slice(&[MAGIC, LEASE]);
    out.extend_from_slice(&token);
    out
}

/// The bytes of an entry.
pub(crate) fn entry(
    token: Token,
    soft_at_ms: u64,
    hard_at_ms: u64,
    delta_ms: u32,
    value: Option<&[u8]>,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + value.map_or(0, <[u8]>::len));
    out.extend_from_slice(&[MAGIC, ENTRY]);
    out.extend_from_slice(&token);
    out.extend_from_slice(&soft_at_ms.to_be_bytes());
    out.extend_from_slice(&hard_at_ms.to_be_bytes());
    out.extend_from_slice(&delta_ms.to_be_bytes());
    out.push(if value.is_some() { 0 } else { NEGATIVE });
    if let Some(v) = value {
        out.extend_from_slice(v);
    }
    out
}

/// Decodes stored bytes; `None` when they are not ours (a value written
/// by something else under this key).
pub(crate) fn decode(bytes: &Bytes) -> Option<Stored> {
    let b = bytes.as_ref();
    if b.len() < 10 || b[0] != MAGIC {
        return None;
    }
    let token: Token = b[2..10].try_into().ok()?;
    match b[1] {
        LEASE if b.len() == 10 => Some(Stored::Lease(token)),
        ENTRY if b.len() >= HEADER => {
            let u64_at = |i: usize| b[i..i + 8].try_into().ok().map(u64::from_be_bytes);
            let delta_ms = u32::from_be_bytes(b[26..30].try_into().ok()?);
            let value = if b[30] & NEGATIVE == 0 {
                Some(bytes.slice(HEADER..))
            } else {
                None
            };
            Some(Stored::Entry(Entry {
                token,
                soft_at_ms: u64_at(10)?,
                hard_at_ms: u64_at(18)?,
                delta_ms,
                value,
            }))
        }
        _ => None,
    }
}

#[cfg(test)]
#[path = "envelope_props.rs"]
mod props;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn should_round_trip_entries_and_leases() {
        let t = new_token();
        let e = Bytes::from(entry(t, 10, 20, 7, Some(b"abc")));
        assert_eq!(
            decode(&e),
            Some(Stored::Entry(Entry {
                token: t,
                soft_at_ms: 10,
                hard_at_ms: 20,
                delta_ms: 7,
                value: Some(Bytes::from_static(b"abc")),
            }))
        );
        let n = Bytes::from(entry(t, 1, 2, 0, None));
        assert!(matches!(
            decode(&n),
            Some(Stored::Entry(Entry { value: None, .. }))
        ));
        assert_eq!(decode(&Bytes::from(lease(t))), Some(Stored::Lease(t)));
    }

    #[test]
    fn should_not_mistake_foreign_bytes_for_entries() {
        for foreign in [
            &b""[..],
            b"abc",
            b"\xc1E",
            b"\x92\x01\x02",
            b"\xc1Lshort",
            b"\xc1X12345678",
        ] {
            assert_eq!(
                decode(&Bytes::copy_from_slice(foreign)),
                None,
                "{foreign:?}"
            );
        }
    }

    #[test]
    fn should_start_with_a_byte_no_codec_accepts() {
        let e = entry(new_token(), 1, 2, 3, Some(b"\x01"));
        assert!(rmp_decode_fails(&e));
        assert!(serde_json_fails(&e));
    }

    fn rmp_decode_fails(b: &[u8]) -> bool {
        aeturnis_redis_core::Codec::new(aeturnis_redis_core::CodecKind::MessagePack)
            .decode::<u64>("k", b)
            .is_err()
            && aeturnis_redis_core::Codec::new(aeturnis_redis_core::CodecKind::MessagePack)
                .decode::<String>("k", b)
                .is_err()
    }

    fn serde_json_fails(b: &[u8]) -> bool {
        aeturnis_redis_core::Codec::new(aeturnis_redis_core::CodecKind::Json)
            .decode::<serde::de::IgnoredAny>("k", b)
            .is_err()
    }
}
