//! The error type every Aeturnis crate wraps.

use std::time::Duration;

use fred::error::{Error as FredError, ErrorKind as FredErrorKind};

use crate::class::{Classify, ErrorClass};
use crate::config::ConfigError;
use crate::health::ConnectionState;
use crate::keys::KeyError;

/// Result alias used across `aeturnis-redis-core`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong talking to Redis through Aeturnis.
///
/// Higher crates wrap this type in their own error enums (`#[from]`), and
/// every one answers [`Classify`] the same way: see [`crate::class`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An error reported by fred or by the Redis server.
    #[error("redis error: {0}")]
    Redis(#[from] FredError),
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A key or key segment is invalid.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// A value could not be encoded for the given key.
    #[error("cannot encode value for key `{key}`: {reason}")]
    Encode {
        /// The key being written.
        key: String,
        /// What the encoder said.
        reason: String,
    },
    /// A stored value could not be decoded into the requested type.
    #[error("cannot decode value at key `{key}`: {reason}")]
    Decode {
        /// The key being read.
        key: String,
        /// What the decoder said.
        reason: String,
    },
    /// A bounded operation (such as `connect`) did not finish in time.
    #[error("{operation} timed out after {after:?}")]
    Timeout {
        /// What was being attempted.
        operation: &'static str,
        /// The bound that was exceeded.
        after: Duration,
    },
    /// The client was shut down with [`Redis::shutdown`](crate::Redis::shutdown).
    #[error("the Redis client has been shut down")]
    Shutdown,
    /// A script was given keys in different cluster slots; caught before
    /// sending, so no `CROSSSLOT` error can come back from a cluster.
    #[error("script `{script}` touches keys in different slots: `{first}` and `{other}`")]
    CrossSlot {
        /// The script name.
        script: &'static str,
        /// Its first key.
        first: String,
        /// A key in another slot.
        other: String,
    },
    /// Redis answered with a reply of an unexpected shape.
    #[error("unexpected reply from Redis: {0}")]
    UnexpectedReply(String),
    /// The client knows its connection is down, and the call was made with
    /// fail-fast on ([`RedisConfig::fail_fast_commands`](crate::RedisConfig::fail_fast_commands)),
    /// so it failed at once instead of queueing until the connection is back.
    #[error("the Redis connection is down ({state}); the call failed fast instead of queueing")]
    Disconnected {
        /// The connection state when the call was made.
        state: ConnectionState,
    },
    /// A write sent with a [`WriteConcern`](crate::WriteConcern) reached
    /// fewer replicas than it asks within its timeout (`WAIT`). The write
    /// was applied on the primary and may still reach the replicas (and
    /// survive a failover); it is not acknowledged.
    #[error("the write reached {acked} of the {wanted} replicas asked for")]
    NotReplicated {
        /// Replicas that acknowledged the write.
        acked: u32,
        /// Replicas the write concern asks for.
        wanted: u32,
    },
}

impl Classify for Error {
    /// Invalid input: [`Config`](Error::Config), [`Key`](Error::Key), a TLS
    /// handshake failure ([`is_tls`](Error::is_tls)),
    /// [`Encode`](Error::Encode), [`CrossSlot`](Error::CrossSlot), a fred
    /// argument error, credentials or ACL permissions the server refused
    /// ([`is_auth`](Error::is_auth)) and a sentinel service name the
    /// sentinels do not know: the configuration is wrong. Unavailable: a dropped, refused or closed
    /// connection, a timeout, [`Shutdown`](Error::Shutdown),
    /// [`Disconnected`](Error::Disconnected), and the server replies
    /// `LOADING`, `BUSY`, `OOM`, `CLUSTERDOWN`, `TRYAGAIN`, `MASTERDOWN`,
    /// `READONLY` and `NOREPLICAS` (a failover or an overloaded server),
    /// and [`NotReplicated`](Error::NotReplicated).
    /// Everything else is internal.
    fn class(&self) -> ErrorClass {
        match self {
            Error::Redis(e) => {
                if is_tls(e) {
                    ErrorClass::InvalidInput
                } else if matches!(
                    e.kind(),
                    FredErrorKind::IO
                        | FredErrorKind::Timeout
                        | FredErrorKind::Canceled
                        | FredErrorKind::Backpressure
                        | FredErrorKind::Cluster
                        | FredErrorKind::Routing
                ) || is_transient_server_error(e.details())
                    || is_connection_details(e.details())
                {
                    ErrorClass::Unavailable
                } else if matches!(e.kind(), FredErrorKind::InvalidArgument)
                    || is_auth(e)
                    || is_unknown_sentinel_service(e)
                {
                    ErrorClass::InvalidInput
                } else {
                    ErrorClass::Internal
                }
            }
            Error::Timeout { .. }
            | Error::Shutdown
            | Error::Disconnected { .. }
            | Error::NotReplicated { .. } => ErrorClass::Unavailable,
            Error::Config(_) | Error::Key(_) | Error::Encode { .. } | Error::CrossSlot { .. } => {
                ErrorClass::InvalidInput
            }
            Error::Decode { .. } | Error::UnexpectedReply(_) => ErrorClass::Internal,
        }
    }
}

impl Error {
    /// The operation ran out of time (a command timeout or a bounded
    /// operation such as `connect`). A refinement of
    /// [`is_unavailable`](Classify::is_unavailable).
    #[must_use]
    pub fn is_timeout(&self) -> bool {
        match self {
            Error::Redis(e) => e.kind() == &FredErrorKind::Timeout,
            Error::Timeout { .. } => true,
            _ => false,
        }
    }

    /// The connection to Redis is down, was dropped mid-command, or could not
    /// be established (or the client was shut down). A refinement of
    /// [`is_unavailable`](Classify::is_unavailable).
    #[must_use]
    pub fn is_connection(&self) -> bool {
        match self {
            Error::Redis(e) => {
                !is_tls(e)
                    && (matches!(e.kind(), FredErrorKind::IO | FredErrorKind::Canceled)
                        || is_connection_details(e.details()))
            }
            Error::Shutdown | Error::Disconnected { .. } => true,
            _ => false,
        }
    }

    /// The server refused a write because it is out of memory
    /// (`maxmemory` with `noeviction`). Classed as unavailable: back off
    /// and retry.
    #[must_use]
    pub fn is_out_of_memory(&self) -> bool {
        matches!(self, Error::Redis(e) if e.details().starts_with("OOM"))
    }

    /// The server refused the credentials (`WRONGPASS`, `NOAUTH`, fred's
    /// auth errors) or the ACL user lacks a permission (`NOPERM`, which
    /// names the command or key). Classed as invalid input: fix the
    /// configuration or the ACL.
    #[must_use]
    pub fn is_auth(&self) -> bool {
        matches!(self, Error::Redis(e) if is_auth(e))
    }

    /// The TLS handshake failed: the server's certificate is not signed by
    /// a trusted CA ([`RedisConfig::tls_ca_file`](crate::RedisConfig::tls_ca_file)
    /// or the system roots), does not name the host, or has expired; the
    /// server does not speak TLS; or the server ended the handshake with a
    /// TLS alert, such as `CertificateRequired` when it asks for a client
    /// certificate ([`RedisConfig::tls_client_cert`](crate::RedisConfig::tls_client_cert))
    /// and none was shown, or `UnknownCA` for one it does not trust. Classed
    /// as invalid input: fix the certificates or the configuration.
    #[must_use]
    pub fn is_tls(&self) -> bool {
        matches!(self, Error::Redis(e) if is_tls(e))
    }

    /// The ACL user lacks a permission (`NOPERM`); the message names the
    /// command, key or channel refused. A refinement of
    /// [`is_auth`](Error::is_auth); see [`crate::acl`] for the rules the
    /// crates need.
    #[must_use]
    pub fn is_no_permission(&self) -> bool {
        matches!(self, Error::Redis(e) if e.details().starts_with("NOPERM"))
    }

    /// The server refused the script because it is not in its script cache.
    #[must_use]
    pub fn is_noscript(&self) -> bool {
        matches!(self, Error::Redis(e) if e.details().starts_with("NOSCRIPT"))
    }
}

/// fred reports some connection teardowns with kind `Unknown`: a command
/// written while its connection closes ("Failed to route command."), or a
/// connection closed under it.
fn is_connection_details(details: &str) -> bool {
    details.contains("onnection")
        || details.contains("Failed to route command")
        // fred, when the connection failed under every write attempt of a
        // command (at once for one sent with `no_replay()`)
        || details.starts_with("Too many failed write attempts")
}

/// The sentinels know no primary under the configured service name
/// (`REDIS_SENTINEL_SERVICE`): a configuration error. (During a failover
/// the sentinels still name the old primary, so this is not transient.)
fn is_unknown_sentinel_service(e: &FredError) -> bool {
    e.kind() == &FredErrorKind::Sentinel && e.details().contains("Missing primary address")
}

/// A TLS failure: fred's `Tls` kind, or rustls's verdict carried in an I/O
/// error (the handshake runs inside tokio-rustls, which reports through
/// `std::io::Error`): our verdict on the server's certificate, or a fatal
/// alert the server sent (rustls's `AlertReceived`; a closed session is not
/// one, rustls reports that as end of stream).
fn is_tls(e: &FredError) -> bool {
    // the `Tls` kind exists only with fred's TLS features
    #[cfg(feature = "tls")]
    if e.kind() == &FredErrorKind::Tls {
        return true;
    }
    [
        "InvalidCertificate",
        "invalid peer certificate",
        "AlertReceived(",
        "received fatal alert",
    ]
    .iter()
    .any(|p| e.details().contains(p))
}

fn is_auth(e: &FredError) -> bool {
    e.kind() == &FredErrorKind::Auth
        || ["WRONGPASS", "NOAUTH", "NOPERM"]
            .iter()
            .any(|p| e.details().starts_with(p))
}

fn is_transient_server_error(details: &str) -> bool {
    [
        "CLUSTERDOWN",
        "LOADING",
        "BUSY",
        "TRYAGAIN",
        "MASTERDOWN",
        "READONLY",
        "OOM",
        "NOREPLICAS",
    ]
    .iter()
    .any(|p| details.starts_with(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn should_classify_fred_errors() {
        let io = Error::from(FredError::new(FredErrorKind::IO, "Connection refused"));
        assert!(io.is_retryable() && io.is_connection() && !io.is_timeout());
        let t = Error::from(FredError::new(FredErrorKind::Timeout, "Request timed out."));
        assert!(t.is_retryable() && t.is_timeout() && !t.is_connection());
        let busy = Error::from(FredError::new(
            FredErrorKind::Unknown,
            "BUSY script running",
        ));
        assert!(busy.is_retryable());
        // seen by `cargo xtask chaos`: a `no_replay()` write whose connection dropped
        let dropped = Error::from(FredError::new(
            FredErrorKind::Unknown,
            "Too many failed write attempts.",
        ));
        assert!(dropped.is_connection() && dropped.is_unavailable() && dropped.is_retryable());
        let bad = Error::from(FredError::new(FredErrorKind::InvalidArgument, "wrong"));
        assert!(!bad.is_retryable() && !bad.is_timeout() && !bad.is_connection());
        assert_eq!(bad.class(), ErrorClass::InvalidInput);
        let oom = Error::from(FredError::new(
            FredErrorKind::Unknown,
            "OOM command not allowed when used memory > 'maxmemory'.",
        ));
        assert!(oom.is_out_of_memory() && oom.is_unavailable() && oom.is_retryable());
        let denied = Error::from(FredError::new(
            FredErrorKind::Unknown,
            "NOPERM User app has no permissions to run the 'flushall' command",
        ));
        assert!(denied.is_auth() && denied.is_invalid_input() && denied.is_no_permission());
        let wrong = Error::from(FredError::new(FredErrorKind::Auth, "WRONGPASS invalid"));
        assert!(wrong.is_auth() && !wrong.is_retryable());
        let other = Error::from(FredError::new(FredErrorKind::Unknown, "ERR syntax error"));
        assert_eq!(other.class(), ErrorClass::Internal);
        assert!(!other.is_retryable());
        assert_eq!(Error::Shutdown.class(), ErrorClass::Unavailable);
        let down = Error::Disconnected {
            state: ConnectionState::Connecting,
        };
        assert!(down.is_connection() && down.is_unavailable());
        assert!(down.to_string().contains("connecting"), "{down}");
        // what a server signed by an untrusted CA gives (seen in tests/tls.rs)
        let untrusted = Error::from(FredError::new(
            FredErrorKind::IO,
            "Custom { kind: InvalidData, error: InvalidCertificate(UnknownIssuer) }",
        ));
        assert!(untrusted.is_tls() && untrusted.is_invalid_input() && !untrusted.is_connection());
        // what a server asking for a client certificate answers a client
        // without one (seen in tests/tls.rs)
        let no_client_cert = Error::from(FredError::new(
            FredErrorKind::IO,
            "Custom { kind: InvalidData, error: AlertReceived(CertificateRequired) }",
        ));
        assert!(no_client_cert.is_tls() && no_client_cert.is_invalid_input());
        assert!(!no_client_cert.is_connection() && !no_client_cert.is_retryable());
        let lagging = Error::NotReplicated {
            acked: 0,
            wanted: 1,
        };
        assert!(lagging.is_unavailable() && !lagging.is_connection());
        assert_eq!(
            Error::Decode {
                key: "k".into(),
                reason: "x".into()
            }
            .class(),
            ErrorClass::Internal
        );
        let route = Error::from(FredError::new(
            FredErrorKind::Unknown,
            "Failed to route command.",
        ));
        assert!(route.is_connection() && route.is_retryable());
        let ns = Error::from(FredError::new(
            FredErrorKind::Unknown,
            "NOSCRIPT No matching script.",
        ));
        assert!(ns.is_noscript());
        assert!(Error::Timeout {
            operation: "connect",
            after: Duration::from_secs(1)
        }
        .is_timeout());
    }
}
