//! [`TlsClientCert`]: the certificate chain and private key a client shows
//! a server that asks for one (mutual TLS, `tls-auth-clients yes`).

use std::path::PathBuf;

/// The files of a TLS client certificate: a PEM certificate chain (leaf
/// first) and its PEM private key (PKCS#8, PKCS#1 or SEC1). Both are read
/// when connecting; the key is handed to rustls and kept nowhere else, so
/// `Debug` (derived: it holds paths only) and the logs never show it, and an
/// error about a bad key file names the file, never its content.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TlsClientCert {
    /// PEM file of the client's certificate chain (`REDIS_TLS_CERT_FILE`).
    pub cert_file: PathBuf,
    /// PEM file of the client's private key (`REDIS_TLS_KEY_FILE`).
    pub key_file: PathBuf,
}

impl TlsClientCert {
    /// The certificate chain at `cert_file` with the private key at `key_file`.
    #[must_use]
    pub fn new(cert_file: impl Into<PathBuf>, key_file: impl Into<PathBuf>) -> Self {
        TlsClientCert {
            cert_file: cert_file.into(),
            key_file: key_file.into(),
        }
    }
}
