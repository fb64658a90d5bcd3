//! Health report: PING latency, connection state and server facts.

use std::fmt;
use std::time::Duration;

use serde::{Serialize, Serializer};

/// Overall verdict of a health check. Serialises as `"healthy"` /
/// `"unhealthy"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum HealthStatus {
    /// PING answered.
    Healthy,
    /// PING failed or timed out.
    Unhealthy,
}

/// The client's connection state, as fred reports it. Displays and
/// serialises as `connected`, `connecting`, `disconnecting` or
/// `disconnected`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum ConnectionState {
    /// Connected and usable.
    Connected,
    /// Connecting or reconnecting.
    Connecting,
    /// Closing.
    Disconnecting,
    /// Not connected (after shutdown, or between reconnect attempts).
    Disconnected,
}

impl ConnectionState {
    /// The lowercase name (`connected`, ...).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionState::Connected => "connected",
            ConnectionState::Connecting => "connecting",
            ConnectionState::Disconnecting => "disconnecting",
            ConnectionState::Disconnected => "disconnected",
        }
    }
}

impl fmt::Display for ConnectionState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<fred::types::ClientState> for ConnectionState {
    fn from(state: fred::types::ClientState) -> Self {
        use fred::types::ClientState as S;
        match state {
            S::Connected => ConnectionState::Connected,
            S::Connecting => ConnectionState::Connecting,
            S::Disconnecting => ConnectionState::Disconnecting,
            S::Disconnected => ConnectionState::Disconnected,
        }
    }
}

/// What [`Redis::health`](crate::Redis::health) found. It is the original
/// system's `{status, latency, isConnected}` plus the server's facts.
///
/// Serialises with `latency` as `latency_ms`, a float of milliseconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Health {
    /// Healthy when PING answered.
    pub status: HealthStatus,
    /// PING round-trip time, when it answered.
    #[serde(rename = "latency_ms", serialize_with = "serialize_ms")]
    pub latency: Option<Duration>,
    /// Connection state.
    pub state: ConnectionState,
    /// Number of server connections the client holds (cluster: one per node).
    pub connections: usize,
    /// `redis_version` from `INFO server`.
    pub server_version: Option<String>,
    /// `role` from `INFO replication` (`master` or `slave`).
    pub role: Option<String>,
    /// `used_memory` in bytes from `INFO memory`.
    pub used_memory: Option<u64>,
    /// Why the check failed, when it did.
    pub error: Option<String>,
}

impl Health {
    /// Whether PING answered.
    #[must_use]
    pub fn is_healthy(&self) -> bool {
        self.status == HealthStatus::Healthy
    }

    pub(crate) fn fill_from_info(&mut self, info: &str) {
        for line in info.lines() {
            let Some((k, v)) = line.trim().split_once(':') else {
                continue;
            };
            match k {
                "redis_version" => self.server_version = Some(v.to_owned()),
                "role" => self.role = Some(v.to_owned()),
                "used_memory" => self.used_memory = v.parse().ok(),
                _ => {}
            }
        }
    }
}

/// An optional duration as a float of milliseconds (`null` when absent).
fn serialize_ms<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_some(&(d.as_secs_f64() * 1000.0)),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn should_parse_info_fields() {
        let mut h = Health {
            status: HealthStatus::Healthy,
            latency: None,
            state: ConnectionState::Connected,
            connections: 1,
            server_version: None,
            role: None,
            used_memory: None,
            error: None,
        };
        h.fill_from_info("# Server\r\nredis_version:7.0.15\r\n# Replication\r\nrole:master\r\n# Memory\r\nused_memory:1048576\r\nused_memory_human:1.00M\r\n");
        assert_eq!(h.server_version.as_deref(), Some("7.0.15"));
        assert_eq!(h.role.as_deref(), Some("master"));
        assert_eq!(h.used_memory, Some(1_048_576));
        h.latency = Some(Duration::from_micros(1500));
        let json = serde_json::to_value(&h).unwrap_or_default();
        assert_eq!(json["status"], "healthy");
        assert_eq!(json["state"], "connected");
        assert_eq!(json["latency_ms"], 1.5);
        assert_eq!(json["used_memory"], 1_048_576);
        assert_eq!(ConnectionState::Connecting.to_string(), "connecting");
    }
}
