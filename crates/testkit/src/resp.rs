//! A tiny blocking RESP2 client, enough for readiness checks and topology setup.
//!
//! Kept on purpose (issue 13 asked whether `redis-cli` or fred could do
//! this instead):
//! - fred needs a tokio runtime, and the topologies start synchronously,
//!   also from inside `#[tokio::test]`s, where building a second runtime
//!   panics; blocking a runtime thread on fred would stall the tests' own
//!   tasks on a 2-worker runtime.
//! - `redis-cli` prints nested replies flat in a pipe: `SENTINEL REPLICAS`
//!   (an array of field lists) loses the boundaries between replicas, which
//!   the sentinel checks in
//!   `sentinel.rs` reads. It also spawns a process per
//!   probe, and the failover waits probe every few milliseconds.
//!
//! So the setup code speaks RESP2 itself: about 100 lines with no
//! dependency. Tests that need a command of their own use
//! [`RedisServer::cli`](crate::RedisServer::cli).

use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::{bail, Context};

const TIMEOUT: Duration = Duration::from_secs(2);

/// A RESP2 reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Value {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Option<String>),
    Array(Option<Vec<Value>>),
}

impl Value {
    /// The reply as text (simple or bulk string); an error reply becomes an `Err`.
    pub(crate) fn text(self) -> anyhow::Result<String> {
        match self {
            Value::Simple(s) | Value::Bulk(Some(s)) => Ok(s),
            Value::Error(e) => bail!("redis error: {e}"),
            other => bail!("expected a string reply, got {other:?}"),
        }
    }

    /// The reply as an array; an error reply becomes an `Err`.
    pub(crate) fn array(self) -> anyhow::Result<Vec<Value>> {
        match self {
            Value::Array(Some(items)) => Ok(items),
            Value::Error(e) => bail!("redis error: {e}"),
            other => bail!("expected an array reply, got {other:?}"),
        }
    }

    /// A flat `[key, value, key, value...]` array as pairs of strings.
    pub(crate) fn pairs(self) -> anyhow::Result<Vec<(String, String)>> {
        let items = self.array()?;
        let mut pairs = Vec::with_capacity(items.len() / 2);
        let mut iter = items.into_iter();
        while let (Some(k), Some(v)) = (iter.next(), iter.next()) {
            pairs.push((k.text()?, v.text().unwrap_or_default()));
        }
        Ok(pairs)
    }
}

/// Sends one command to `127.0.0.1:port` on a new connection and reads the reply.
pub(crate) fn query(port: u16, args: &[&str]) -> anyhow::Result<Value> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let run = || -> anyhow::Result<Value> {
        let mut stream = TcpStream::connect_timeout(&addr, TIMEOUT)?;
        stream.set_read_timeout(Some(TIMEOUT))?;
        stream.set_write_timeout(Some(TIMEOUT))?;
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for arg in args {
            out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
            out.extend_from_slice(arg.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        stream.write_all(&out)?;
        read_value(&mut BufReader::new(stream))
    };
    run().with_context(|| format!("{} on port {port}", args.join(" ")))
}

/// Sends a command and returns its text reply.
pub(crate) fn text(port: u16, args: &[&str]) -> anyhow::Result<String> {
    query(port, args)?.text()
}

/// The value of `field` in an `INFO`-style `field:value` text.
pub(crate) fn info_field<'a>(info: &'a str, field: &str) -> Option<&'a str> {
    info.lines().find_map(|line| {
        line.strip_prefix(field)
            .and_then(|rest| rest.strip_prefix(':'))
            .map(str::trim)
    })
}

fn read_value(reader: &mut impl BufRead) -> anyhow::Result<Value> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        bail!("connection closed");
    }
    let line = line.trim_end_matches(['\r', '\n']);
    let (kind, rest) = line.split_at(line.len().min(1));
    Ok(match kind {
        "+" => Value::Simple(rest.to_owned()),
        "-" => Value::Error(rest.to_owned()),
        ":" => Value::Int(rest.parse()?),
        "$" => {
            let len: i64 = rest.parse()?;
            if len < 0 {
                Value::Bulk(None)
            } else {
                let mut buf = vec![0u8; usize::try_from(len)? + 2];
                reader.read_exact(&mut buf)?;
                buf.truncate(buf.len() - 2);
                Value::Bulk(Some(String::from_utf8_lossy(&buf).into_owned()))
            }
        }
        "*" => {
            let len: i64 = rest.parse()?;
            if len < 0 {
                Value::Array(None)
            } else {
                let mut items = Vec::with_capacity(usize::try_from(len)?);
                for _ in 0..len {
                    items.push(read_value(reader)?);
                }
                Value::Array(Some(items))
            }
        }
        _ => bail!("unexpected RESP line {line:?}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn should_parse_nested_arrays() -> anyhow::Result<()> {
        let input = b"*2\r\n$3\r\nfoo\r\n*2\r\n:1\r\n$-1\r\n".to_vec();
        let value = read_value(&mut &input[..])?;
        assert_eq!(
            value,
            Value::Array(Some(vec![
                Value::Bulk(Some("foo".into())),
                Value::Array(Some(vec![Value::Int(1), Value::Bulk(None)])),
            ]))
        );
        Ok(())
    }

    #[test]
    fn should_find_info_fields() {
        let info = "# Replication\r\nrole:slave\r\nmaster_link_status:up\r\n";
        assert_eq!(info_field(info, "role"), Some("slave"));
        assert_eq!(info_field(info, "master_link_status"), Some("up"));
        assert_eq!(info_field(info, "master"), None);
    }
}
