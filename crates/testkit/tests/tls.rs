//! `TlsRedis`: the TLS port answers a client trusting the test CA; with
//! `start_mutual` only a client showing the issued client certificate
//! (checked with `redis-cli --tls`, independent of the crates under test).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a panic is a failure

use std::path::Path;
use std::process::{Command, Output};

use aeturnis_testkit::TlsRedis;

/// `redis-cli --tls ... PING` against the TLS port, with an optional
/// client certificate and key.
fn tls_ping(tls: &TlsRedis, client: Option<(&Path, &Path)>) -> anyhow::Result<Output> {
    let mut cli = Command::new("redis-cli");
    cli.args([
        "-h",
        "127.0.0.1",
        "-p",
        &tls.tls_port().to_string(),
        "--tls",
    ])
    .arg("--cacert")
    .arg(tls.ca_file());
    if let Some((cert, key)) = client {
        cli.arg("--cert").arg(cert).arg("--key").arg(key);
    }
    Ok(cli.arg("PING").output()?)
}

fn answered_pong(out: &Output) -> bool {
    String::from_utf8_lossy(&out.stdout).trim() == "PONG"
}

#[test]
fn should_ask_for_a_client_certificate_only_when_started_mutual() -> anyhow::Result<()> {
    let open = TlsRedis::start()?;
    let out = tls_ping(&open, None)?;
    assert!(answered_pong(&out), "{out:?}");

    let mutual = TlsRedis::start_mutual()?;
    let out = tls_ping(&mutual, None)?;
    assert!(
        !answered_pong(&out),
        "served a client without a certificate: {out:?}"
    );
    let (cert, key) = (mutual.client_cert_file(), mutual.client_key_file());
    let out = tls_ping(&mutual, Some((&cert, &key)))?;
    assert!(answered_pong(&out), "{out:?}");
    // the plain port stays open for the harness
    assert_eq!(mutual.server().cli(&["PING"])?.trim(), "PONG");
    Ok(())
}
