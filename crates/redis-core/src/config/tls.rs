//! The TLS connector: the system roots or the CA certificates of a PEM file,
//! and an optional client certificate (mutual TLS), configured on rustls.

use std::path::Path;

use fred::rustls::pki_types::pem::{self, PemObject};
use fred::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use fred::rustls::{ClientConfig, RootCertStore};
use fred::types::config::TlsConnector;

use super::{ConfigError, TlsClientCert};

/// A rustls connector trusting the CA certificates in `ca_file` (PEM), or
/// the system roots when it is `None`, showing `client` to servers that
/// ask for a certificate.
pub(crate) fn connector(
    ca_file: Option<&Path>,
    client: Option<&TlsClientCert>,
) -> Result<TlsConnector, ConfigError> {
    let builder = ClientConfig::builder().with_root_certificates(roots(ca_file)?);
    let config = match client {
        None => builder.with_no_client_auth(),
        Some(client) => {
            let chain = certificates(&client.cert_file, "tls_cert_file")?;
            let key = private_key(&client.key_file)?;
            // rustls checks that the key parses and matches the leaf
            // certificate; its message names neither the key nor its bytes
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| file_error("tls_key_file", &client.key_file, &e.to_string()))?
        }
    };
    Ok(TlsConnector::from(config))
}

/// The CA file's certificates, or the system roots (what fred's
/// `TlsConnector::default_rustls` trusts).
fn roots(ca_file: Option<&Path>) -> Result<RootCertStore, ConfigError> {
    let mut roots = RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let (added, _ignored) =
                roots.add_parsable_certificates(certificates(path, "tls_ca_file")?);
            if added == 0 {
                return Err(file_error("tls_ca_file", path, "no usable CA certificate"));
            }
        }
        None => {
            let native = fred::rustls_native_certs::load_native_certs();
            if let Some(e) = native.errors.first() {
                return Err(ConfigError::invalid(
                    "tls",
                    format!("system root certificates: {e}"),
                ));
            }
            roots.add_parsable_certificates(native.certs);
        }
    }
    Ok(roots)
}

/// Every certificate of a PEM file (at least one).
fn certificates(path: &Path, variable: &str) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_error(variable, path, &e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(variable, path, &e.to_string()))?;
    if certs.is_empty() {
        return Err(file_error(variable, path, "no certificate found"));
    }
    Ok(certs)
}

/// The first private key of a PEM file. The PEM parser's own messages can
/// quote a line of the file (which may be key text), so they are replaced
/// by what kind of failure it was.
fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, ConfigError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| {
        let reason = match e {
            pem::Error::Io(io) => format!("cannot read it: {io}"),
            pem::Error::NoItemsFound => "no PEM private key found".to_owned(),
            _ => "not a valid PEM private key".to_owned(),
        };
        file_error("tls_key_file", path, &reason)
    })
}

fn file_error(variable: &str, path: &Path, reason: &str) -> ConfigError {
    ConfigError::invalid(variable, format!("{}: {reason}", path.display()))
}
