//! [`Session`] and its stored form.
//!
//! A session is one Redis string, laid out so that Lua scripts can read and
//! patch it without a decoder:
//!
//! ```text
//! byte 0        format version (1)
//! bytes 1..9    created at, ms since the Unix epoch, u64 big-endian
//! bytes 9..17   last seen (last recorded touch), same encoding
//! bytes 17..25  absolute expiry, same encoding
//! then 6 fields, each a u16 big-endian length (0xFFFF = absent) and bytes:
//!   user id, character id, IP address (4 or 16 raw bytes), user agent,
//!   device, location
//! ```
//!
//! With typical metadata this is about 40 bytes of framing around the text
//! itself; the idle expiry is the key's own TTL.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::Error;
use crate::id::{CharacterId, SessionId, UserId};
use crate::metadata::SessionMetadata;

pub(crate) const VERSION: u8 = 1;
pub(crate) const HEADER_LEN: usize = 25;
const ABSENT: u16 = 0xFFFF;

/// Field numbers, in stored order (0-based, as the update script takes them).
pub(crate) const F_CHARACTER: u8 = 1;
pub(crate) const F_IP: u8 = 2;
pub(crate) const F_USER_AGENT: u8 = 3;
pub(crate) const F_DEVICE: u8 = 4;
pub(crate) const F_LOCATION: u8 = 5;

/// A live session, as read from Redis.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Session {
    /// The id, which is also the bearer token.
    pub id: SessionId,
    /// The owner.
    pub user: UserId,
    /// The character bound to the session, if any.
    pub character: Option<CharacterId>,
    /// Client metadata.
    pub metadata: SessionMetadata,
    /// When the session was created (Redis server time).
    pub created_at: SystemTime,
    /// The last recorded activity (precise to the touch interval).
    pub last_seen: SystemTime,
    /// When the session ends if it sees no more activity (its key's TTL as of
    /// this read, by the server's clock; on the fast read path, by the
    /// manager's estimate of it, accurate to a few ms).
    pub expires_at: SystemTime,
    /// When the session ends however active it is.
    pub absolute_expires_at: SystemTime,
}

impl Session {
    /// How long the session has existed at `now`.
    #[must_use]
    pub fn age_at(&self, now: SystemTime) -> Duration {
        now.duration_since(self.created_at).unwrap_or_default()
    }
}

/// Appends one field.
pub(crate) fn put_field(out: &mut Vec<u8>, value: Option<&[u8]>) {
    match value {
        None => out.extend_from_slice(&ABSENT.to_be_bytes()),
        Some(v) => {
            // every field is length-checked far below 0xFFFF before it gets here
            let len = u16::try_from(v.len()).unwrap_or(ABSENT - 1);
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(&v[..usize::from(len)]);
        }
    }
}

pub(crate) fn ip_bytes(ip: &IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    }
}

/// The stored fields (everything after the header) of a new session.
pub(crate) fn encode_tail(
    user: &UserId,
    character: Option<&CharacterId>,
    meta: &SessionMetadata,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(
        12 + user.as_str().len()
            + meta.user_agent.as_ref().map_or(0, String::len)
            + meta.device.as_ref().map_or(0, String::len)
            + meta.location.as_ref().map_or(0, String::len)
            + 16,
    );
    put_field(&mut out, Some(user.as_str().as_bytes()));
    put_field(&mut out, character.map(|c| c.as_str().as_bytes()));
    put_field(&mut out, meta.ip_address.as_ref().map(ip_bytes).as_deref());
    put_field(&mut out, meta.user_agent.as_deref().map(str::as_bytes));
    put_field(&mut out, meta.device.as_deref().map(str::as_bytes));
    put_field(&mut out, meta.location.as_deref().map(str::as_bytes));
    out
}

/// One field, encoded alone (for the update script).
pub(crate) fn encode_field(value: Option<&[u8]>) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + value.map_or(0, <[u8]>::len));
    put_field(&mut out, value);
    out
}

/// The three timestamps of a stored session's header, in ms of server time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    /// When the session was created.
    pub(crate) created: u64,
    /// The last recorded touch.
    pub(crate) last_seen: u64,
    /// The absolute expiry.
    pub(crate) absolute: u64,
}

/// Reads the header of a stored session (the fast read path decides from it
/// whether it needs the script); `None` when it is not one of ours.
pub(crate) fn header(bytes: &[u8]) -> Option<Header> {
    if bytes.first() != Some(&VERSION) {
        return None;
    }
    let mut r = Reader { bytes, pos: 1 };
    Some(Header {
        created: r.u64()?,
        last_seen: r.u64()?,
        absolute: r.u64()?,
    })
}

fn time(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn u64(&mut self) -> Option<u64> {
        let b = self.bytes.get(self.pos..self.pos + 8)?;
        self.pos += 8;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Some(u64::from_be_bytes(a))
    }

    fn field(&mut self) -> Option<Option<&'a [u8]>> {
        let b = self.bytes.get(self.pos..self.pos + 2)?;
        self.pos += 2;
        let len = u16::from_be_bytes([b[0], b[1]]);
        if len == ABSENT {
            return Some(None);
        }
        let v = self.bytes.get(self.pos..self.pos + usize::from(len))?;
        self.pos += usize::from(len);
        Some(Some(v))
    }

    fn text(&mut self) -> Result<Option<String>, String> {
        match self.field() {
            None => Err("truncated".to_owned()),
            Some(None) => Ok(None),
            Some(Some(v)) => String::from_utf8(v.to_vec())
                .map(Some)
                .map_err(|_| "a text field is not UTF-8".to_owned()),
        }
    }
}

/// Decodes a stored session. `now_ms` and `ttl_ms` give the idle expiry:
/// from one script reply, or the fast read's clock estimate and idle TTL.
/// The session a create just stored, from the fields the caller sent
/// and the script's clock: what decoding the stored value would give,
/// without sending the value back.
pub(crate) fn fresh(
    id: SessionId,
    user: UserId,
    metadata: SessionMetadata,
    now_ms: u64,
    ttl_ms: u64,
    absolute_ms: u64,
) -> Session {
    Session {
        id,
        user,
        character: None,
        metadata,
        created_at: time(now_ms),
        last_seen: time(now_ms),
        expires_at: time(now_ms.saturating_add(ttl_ms)),
        absolute_expires_at: time(now_ms.saturating_add(absolute_ms)),
    }
}

pub(crate) fn decode(
    id: SessionId,
    key: &str,
    bytes: &[u8],
    now_ms: u64,
    ttl_ms: u64,
) -> Result<Session, Error> {
    decode_inner(id, bytes, now_ms, ttl_ms).map_err(|reason| Error::Corrupt {
        key: key.to_owned(),
        reason,
    })
}

fn decode_inner(id: SessionId, bytes: &[u8], now_ms: u64, ttl_ms: u64) -> Result<Session, String> {
    match bytes.first() {
        Some(&VERSION) => {}
        Some(v) => return Err(format!("unknown format version {v}")),
        None => return Err("empty value".to_owned()),
    }
    let truncated = || "truncated".to_owned();
    if bytes.len() < HEADER_LEN {
        return Err(truncated());
    }
    let mut r = Reader { bytes, pos: 1 };
    let created = r.u64().ok_or_else(truncated)?;
    let last_seen = r.u64().ok_or_else(truncated)?;
    let absolute = r.u64().ok_or_else(truncated)?;
    let user = r.text()?.ok_or("missing user id")?;
    let user = UserId::new(user).map_err(|e| e.to_string())?;
    let character = r
        .text()?
        .map(CharacterId::new)
        .transpose()
        .map_err(|e| e.to_string())?;
    let ip_address = match r.field().ok_or_else(truncated)? {
        None => None,
        Some(b) => Some(match b.len() {
            4 => IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3])),
            16 => {
                let mut a = [0u8; 16];
                a.copy_from_slice(b);
                IpAddr::V6(Ipv6Addr::from(a))
            }
            n => return Err(format!("IP address of {n} bytes")),
        }),
    };
    let user_agent = r.text()?;
    let device = r.text()?;
    let location = r.text()?;
    if r.pos != bytes.len() {
        return Err(format!("{} trailing bytes", bytes.len() - r.pos));
    }
    Ok(Session {
        id,
        user,
        character,
        metadata: SessionMetadata {
            ip_address,
            user_agent,
            device,
            location,
        },
        created_at: time(created),
        last_seen: time(last_seen),
        expires_at: time(now_ms.saturating_add(ttl_ms)),
        absolute_expires_at: time(absolute),
    })
}

#[cfg(test)]
#[path = "record_props.rs"]
mod props;

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(tail: &[u8], created: u64, last: u64, abs: u64) -> Vec<u8> {
        let mut v = vec![VERSION];
        v.extend_from_slice(&created.to_be_bytes());
        v.extend_from_slice(&last.to_be_bytes());
        v.extend_from_slice(&abs.to_be_bytes());
        v.extend_from_slice(tail);
        assert_eq!(v.len(), HEADER_LEN + tail.len());
        v
    }

    #[test]
    fn should_round_trip_the_stored_form() {
        let user = UserId::new("player:{7}").unwrap();
        let id = SessionId::generate(&user);
        let meta = SessionMetadata::new()
            .with_ip_address("2001:db8::1".parse().unwrap())
            .with_user_agent("Mozilla/5.0 (X11; Linux x86_64)")
            .with_location("Zürich");
        let character = CharacterId::new("hero").unwrap();
        let tail = encode_tail(&user, Some(&character), &meta);
        let bytes = stored(&tail, 1_000, 2_000, 90_000);
        let s = decode(id.clone(), "k", &bytes, 5_000, 1_000).unwrap();
        assert_eq!(s.id, id);
        assert_eq!(s.user, user);
        assert_eq!(s.character, Some(character));
        assert_eq!(s.metadata, meta);
        assert_eq!(s.created_at, time(1_000));
        assert_eq!(s.last_seen, time(2_000));
        assert_eq!(s.expires_at, time(6_000));
        assert_eq!(s.absolute_expires_at, time(90_000));
        assert_eq!(
            header(&bytes),
            Some(Header {
                created: 1_000,
                last_seen: 2_000,
                absolute: 90_000
            })
        );
        assert_eq!(header(&bytes[..20]), None);
        assert_eq!(header(b"plain text written by someone else"), None);
    }

    #[test]
    fn should_report_corrupt_values_as_typed_errors() {
        let user = UserId::new("u").unwrap();
        let id = SessionId::generate(&user);
        let tail = encode_tail(&user, None, &SessionMetadata::new());
        let good = stored(&tail, 1, 1, 1);
        for bad in [
            vec![],
            vec![9],
            good[..good.len() - 1].to_vec(),
            [good.clone(), vec![0]].concat(),
            b"plain text written by someone else".to_vec(),
        ] {
            assert!(matches!(
                decode(id.clone(), "k", &bad, 0, 0),
                Err(Error::Corrupt { .. })
            ));
        }
    }
}
