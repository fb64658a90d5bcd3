//! A TLS Redis server with certificates generated at start.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::Context;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

use crate::process::{free_port, make_temp_dir, Spec};
use crate::server::RedisServer;

/// A standalone server that also serves TLS, on its own port, with a
/// certificate for `127.0.0.1` and `localhost` signed by a CA made for it
/// (`rcgen`, at start). Clients are not asked for a certificate
/// (`tls-auth-clients no`) unless it is started with
/// [`start_mutual`](TlsRedis::start_mutual); either way the CA also signs a
/// client certificate ([`client_cert_file`](TlsRedis::client_cert_file),
/// [`client_key_file`](TlsRedis::client_key_file)). The plain port stays open for the harness
/// (readiness, [`RedisServer::cli`]); clients under test use
/// [`url`](TlsRedis::url). Dropping it kills the server and removes the
/// certificates.
///
/// ```no_run
/// # fn main() -> anyhow::Result<()> {
/// let tls = aeturnis_testkit::TlsRedis::start()?;
/// // rediss://127.0.0.1:PORT, trusting tls.ca_file() only
/// println!("{} {}", tls.url(), tls.ca_file().display());
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct TlsRedis {
    server: RedisServer,
    tls_port: u16,
    dir: PathBuf,
}

impl TlsRedis {
    /// Generates a CA, a server and a client certificate it signs and an
    /// unrelated CA, then starts the server with `--tls-port`, not asking
    /// clients for a certificate.
    ///
    /// # Errors
    /// Fails when the certificates cannot be made or written, or the server
    /// does not start (the error holds its log).
    pub fn start() -> anyhow::Result<TlsRedis> {
        Self::start_with(false)
    }

    /// Like [`start`](TlsRedis::start), with `tls-auth-clients yes`: a TLS
    /// client must show a certificate signed by [`ca_file`](TlsRedis::ca_file)'s
    /// CA, such as [`client_cert_file`](TlsRedis::client_cert_file).
    ///
    /// # Errors
    /// As [`start`](TlsRedis::start).
    pub fn start_mutual() -> anyhow::Result<TlsRedis> {
        Self::start_with(true)
    }

    fn start_with(auth_clients: bool) -> anyhow::Result<TlsRedis> {
        let dir = make_temp_dir()?;
        let ca = certificate_authority("aeturnis test CA")?;
        let key = KeyPair::generate()?;
        let params = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])?;
        let cert = params.signed_by(&key, &ca)?;
        let client_key = KeyPair::generate()?;
        let mut client = CertificateParams::new(Vec::<String>::new())?;
        client
            .distinguished_name
            .push(DnType::CommonName, "aeturnis test client");
        client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let client = client.signed_by(&client_key, &ca)?;
        let other = certificate_authority("an unrelated CA")?;
        let write = |name: &str, pem: String| {
            let path = dir.join(name);
            fs::write(&path, pem).with_context(|| format!("writing {}", path.display()))?;
            Ok::<_, anyhow::Error>(path)
        };
        let ca_file = write("ca.crt", ca.pem())?;
        let cert_file = write("server.crt", cert.pem())?;
        let key_file = write("server.key", key.serialize_pem())?;
        write("other-ca.crt", other.pem())?;
        write("client.crt", client.pem())?;
        write("client.key", client_key.serialize_pem())?;
        let tls_port = free_port()?;
        let arg = |p: &Path| p.display().to_string();
        let spec = Spec {
            extra: vec![
                "--tls-port".into(),
                tls_port.to_string(),
                "--tls-cert-file".into(),
                arg(&cert_file),
                "--tls-key-file".into(),
                arg(&key_file),
                "--tls-ca-cert-file".into(),
                arg(&ca_file),
                "--tls-auth-clients".into(),
                if auth_clients { "yes" } else { "no" }.into(),
            ],
            role: "tls",
            ..Spec::standalone()
        };
        let server = match RedisServer::start(&spec) {
            Ok(server) => server,
            Err(e) => {
                let _ = fs::remove_dir_all(&dir);
                return Err(e);
            }
        };
        Ok(TlsRedis {
            server,
            tls_port,
            dir,
        })
    }

    /// `rediss://127.0.0.1:TLS_PORT`.
    #[must_use]
    pub fn url(&self) -> String {
        format!("rediss://127.0.0.1:{}", self.tls_port)
    }

    /// The TLS port.
    #[must_use]
    pub fn tls_port(&self) -> u16 {
        self.tls_port
    }

    /// The PEM file of the CA that signed the server's certificate.
    #[must_use]
    pub fn ca_file(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }

    /// The PEM file of a CA that did not sign it: a client trusting only
    /// this one must refuse the server.
    #[must_use]
    pub fn other_ca_file(&self) -> PathBuf {
        self.dir.join("other-ca.crt")
    }

    /// The PEM file of a client certificate signed by
    /// [`ca_file`](TlsRedis::ca_file)'s CA (for [`start_mutual`](TlsRedis::start_mutual)).
    #[must_use]
    pub fn client_cert_file(&self) -> PathBuf {
        self.dir.join("client.crt")
    }

    /// The PEM file of [`client_cert_file`](TlsRedis::client_cert_file)'s
    /// private key (PKCS#8).
    #[must_use]
    pub fn client_key_file(&self) -> PathBuf {
        self.dir.join("client.key")
    }

    /// The server (plain port, fault helpers, `cli`).
    #[must_use]
    pub fn server(&self) -> &RedisServer {
        &self.server
    }
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn certificate_authority(name: &str) -> anyhow::Result<CertifiedIssuer<'static, KeyPair>> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    Ok(CertifiedIssuer::self_signed(params, KeyPair::generate()?)?)
}
