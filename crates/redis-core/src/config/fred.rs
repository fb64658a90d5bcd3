//! The mapping of a [`RedisConfig`] onto fred's configuration types.

use std::time::Duration;

use fred::types::config::{
    Config as FredConfig, ConnectionConfig, PerformanceConfig, ReconnectError, ReconnectPolicy,
    ServerConfig, UnresponsiveConfig,
};

use super::{ConfigError, RedisConfig, Topology};
use crate::duration::ceil_millis;

impl RedisConfig {
    /// fred's config, reconnect policy, connection and performance settings.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] for a CA file, client certificate or private
    /// key that cannot be read or used (naming the file, never its content).
    pub(crate) fn fred_parts(
        &self,
    ) -> Result<
        (
            FredConfig,
            ReconnectPolicy,
            ConnectionConfig,
            PerformanceConfig,
        ),
        ConfigError,
    > {
        fn to_server(nodes: &[(String, u16)]) -> Vec<(&str, u16)> {
            nodes.iter().map(|(h, p)| (h.as_str(), *p)).collect()
        }
        let server = match &self.topology {
            Topology::Standalone { host, port } => {
                ServerConfig::new_centralized(host.as_str(), *port)
            }
            Topology::Cluster { nodes } => ServerConfig::new_clustered(to_server(nodes)),
            Topology::Sentinel {
                service_name,
                nodes,
            } => ServerConfig::new_sentinel(to_server(nodes), service_name.as_str()),
        };
        #[allow(unused_mut)]
        let mut fred = FredConfig {
            server,
            username: self.username.clone(),
            password: self.password.as_ref().map(|p| p.expose().to_owned()),
            database: self.database,
            fail_fast: self.fail_fast,
            ..FredConfig::default()
        };
        #[cfg(feature = "tls")]
        if self.tls {
            fred.tls = Some(
                super::tls::connector(self.tls_ca_file.as_deref(), self.tls_client_cert.as_ref())?
                    .into(),
            );
        }
        // fred takes u32 milliseconds; validate() bounds max_delay, and the
        // jitter and delays saturate rather than wrap
        let ms = |d: Duration| u32::try_from(ceil_millis(d)).unwrap_or(u32::MAX);
        let mut policy = ReconnectPolicy::new_exponential(
            self.reconnect.max_attempts,
            ms(self.reconnect.min_delay),
            ms(self.reconnect.max_delay),
            2,
        );
        policy.set_jitter(ms(self.reconnect.jitter));
        let connection = ConnectionConfig {
            connection_timeout: self.connect_timeout,
            internal_command_timeout: self.command_timeout,
            max_command_attempts: self.max_command_attempts.get(),
            unresponsive: UnresponsiveConfig {
                max_timeout: self.unresponsive_timeout,
                interval: self
                    .unresponsive_timeout
                    .map_or(Duration::from_secs(2), |t| {
                        (t / 3).max(Duration::from_millis(50))
                    }),
            },
            // A reply starting with one of these drops the connection and
            // reconnects (re-sending the command): READONLY means the server
            // we write to was demoted, and a sentinel reconnect finds the new
            // primary. NOREPLICAS is left out on purpose: the current primary
            // answers it too while its replica is down, where reconnecting
            // would only churn (see the guide, "Failover").
            reconnect_errors: vec![
                ReconnectError::ClusterDown,
                ReconnectError::Loading,
                ReconnectError::ReadOnly,
            ],
            ..ConnectionConfig::default()
        };
        let performance = PerformanceConfig {
            default_command_timeout: self.command_timeout,
            ..PerformanceConfig::default()
        };
        Ok((fred, policy, connection, performance))
    }
}
