//! The TLS connector: the system roots, or the CA certificates of a PEM file.

use std::path::Path;

use fred::rustls::pki_types::pem::PemObject;
use fred::rustls::pki_types::CertificateDer;
use fred::rustls::{ClientConfig, RootCertStore};
use fred::types::config::TlsConnector;

use super::ConfigError;

/// A rustls connector trusting the CA certificates in `ca_file` (PEM), or
/// the system roots when it is `None`.
pub(crate) fn connector(ca_file: Option<&Path>) -> Result<TlsConnector, ConfigError> {
    let Some(path) = ca_file else {
        return TlsConnector::default_rustls()
            .map_err(|e| ConfigError::invalid("tls", format!("system root certificates: {e}")));
    };
    let invalid = |reason: String| {
        ConfigError::invalid("tls_ca_file", format!("{}: {reason}", path.display()))
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| invalid(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(e.to_string()))?;
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(invalid("no usable CA certificate".to_owned()));
    }
    let config = ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(TlsConnector::from(config))
}
