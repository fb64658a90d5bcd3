//! Session metadata: where and on what a session was opened.

use std::net::IpAddr;

use crate::error::Error;

/// Longest accepted user agent, in bytes.
pub const MAX_USER_AGENT_LEN: usize = 512;
/// Longest accepted device description, in bytes.
pub const MAX_DEVICE_LEN: usize = 128;
/// Longest accepted location, in bytes.
pub const MAX_LOCATION_LEN: usize = 128;

/// What is known about the client of a session. Every field is optional;
/// text fields are size-limited (an oversized field is a typed error, never
/// truncated). The IP address is typed, so it cannot be malformed.
///
/// ```
/// use aeturnis_session::SessionMetadata;
/// let meta = SessionMetadata::new()
///     .with_ip_address("203.0.113.7".parse().unwrap())
///     .with_user_agent("Mozilla/5.0")
///     .with_device("desktop")
///     .with_location("Berlin, DE");
/// assert_eq!(meta.device.as_deref(), Some("desktop"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionMetadata {
    /// The client's IP address. Default: none.
    pub ip_address: Option<IpAddr>,
    /// The client's user agent, at most 512 bytes. Default: none.
    pub user_agent: Option<String>,
    /// A device description, at most 128 bytes. Default: none.
    pub device: Option<String>,
    /// A location, at most 128 bytes. Default: none.
    pub location: Option<String>,
}

impl SessionMetadata {
    /// Empty metadata.
    #[must_use]
    pub fn new() -> Self {
        SessionMetadata::default()
    }

    /// Sets the IP address.
    #[must_use]
    pub fn with_ip_address(mut self, ip: IpAddr) -> Self {
        self.ip_address = Some(ip);
        self
    }

    /// Sets the user agent.
    #[must_use]
    pub fn with_user_agent(mut self, user_agent: impl Into<String>) -> Self {
        self.user_agent = Some(user_agent.into());
        self
    }

    /// Sets the device description.
    #[must_use]
    pub fn with_device(mut self, device: impl Into<String>) -> Self {
        self.device = Some(device.into());
        self
    }

    /// Sets the location.
    #[must_use]
    pub fn with_location(mut self, location: impl Into<String>) -> Self {
        self.location = Some(location.into());
        self
    }

    /// Checks every size limit.
    pub fn validate(&self) -> Result<(), Error> {
        let fields = [
            ("user_agent", &self.user_agent, MAX_USER_AGENT_LEN),
            ("device", &self.device, MAX_DEVICE_LEN),
            ("location", &self.location, MAX_LOCATION_LEN),
        ];
        for (field, value, max) in fields {
            if let Some(v) = value {
                if v.len() > max {
                    return Err(Error::MetadataTooLong {
                        field,
                        len: v.len(),
                        max,
                    });
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn should_refuse_oversized_fields() {
        let ok = SessionMetadata::new().with_user_agent("u".repeat(MAX_USER_AGENT_LEN));
        assert!(ok.validate().is_ok());
        let bad = SessionMetadata::new().with_location("l".repeat(MAX_LOCATION_LEN + 1));
        assert!(matches!(
            bad.validate(),
            Err(Error::MetadataTooLong {
                field: "location",
                ..
            })
        ));
        let bad = SessionMetadata::new().with_device("d".repeat(MAX_DEVICE_LEN + 1));
        assert!(matches!(
            bad.validate(),
            Err(Error::MetadataTooLong { field: "device", len, max })
                if len == MAX_DEVICE_LEN + 1 && max == MAX_DEVICE_LEN
        ));
    }
}
