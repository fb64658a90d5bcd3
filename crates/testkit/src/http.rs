//! For tests that talk to a server process (the demo binary) without an
//! HTTP client crate: [`http_request`], a bare blocking HTTP/1.1 request, and
//! [`strip_ansi`], its log lines without their colours.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::Context;

/// Sends `method path` to `addr` with `Connection: close`, a JSON `body` and,
/// when given, `Authorization: Bearer token`; returns the status and the
/// body. Reads time out after 10 s.
///
/// # Errors
/// Connecting, writing or reading fails, or the reply has no status line.
pub fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> anyhow::Result<(u16, String)> {
    let mut stream = TcpStream::connect(addr).with_context(|| format!("connecting to {addr}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let auth = token.map_or(String::new(), |t| format!("authorization: Bearer {t}\r\n"));
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n{auth}\
         content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply)?;
    let status = reply
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("no status line in {reply:?}"))?;
    let body = reply.split("\r\n\r\n").nth(1).unwrap_or("").to_owned();
    Ok((status, body))
}

/// `line` without its ANSI colour sequences (`ESC [ ... m`), so a test can
/// match a server's log output whether or not it was coloured.
#[must_use]
pub fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::strip_ansi;

    #[test]
    fn should_strip_colour_sequences_only() {
        assert_eq!(
            strip_ansi(
                "\u{1b}[2m2026\u{1b}[0m \u{1b}[32m INFO\u{1b}[0m listening on 127.0.0.1:8080"
            ),
            "2026  INFO listening on 127.0.0.1:8080"
        );
        assert_eq!(strip_ansi("plain [text] m"), "plain [text] m");
    }
}
