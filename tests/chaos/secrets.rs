//! TRACE-level capture of every log line (our crates' `tracing` events and
//! fred's `log` records), scanned for the password as it is written.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

/// What the capture saw: lines, bytes, and lines holding the secret.
#[derive(Debug, Default)]
pub(crate) struct Scan {
    secret: OnceLock<Vec<u8>>,
    pub(crate) lines: AtomicU64,
    pub(crate) bytes: AtomicU64,
    pub(crate) leaks: AtomicU64,
}

impl Scan {
    fn take(&self, buf: &[u8]) {
        self.lines.fetch_add(
            buf.iter().filter(|b| **b == b'\n').count().max(1) as u64,
            Ordering::Relaxed,
        );
        self.bytes.fetch_add(buf.len() as u64, Ordering::Relaxed);
        if let Some(secret) = self.secret.get() {
            if buf.windows(secret.len()).any(|w| w == secret.as_slice()) {
                self.leaks.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

#[derive(Clone)]
struct Writer(Arc<Scan>);

impl Write for Writer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.take(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

struct Logger(Arc<Scan>);

impl log::Log for Logger {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        let line = format!(
            "{} {}: {}\n",
            record.level(),
            record.target(),
            record.args()
        );
        self.0.take(line.as_bytes());
    }
    fn flush(&self) {}
}

/// Installs the capture for the whole process: `tracing` at TRACE through
/// `tracing_subscriber::fmt`, and `log` (fred) at TRACE, both into one scan
/// for `secret`.
pub(crate) fn capture(secret: &str) -> anyhow::Result<Arc<Scan>> {
    let scan = Arc::new(Scan::default());
    let _ = scan.secret.set(secret.as_bytes().to_vec());
    let writer = Writer(scan.clone());
    // `set_global_default`, not `try_init`: with tracing-subscriber's
    // `tracing-log` feature (on in a workspace build: a redis-core
    // dev-dependency) `try_init` also takes the `log` logger, and the log
    // capture below could not be installed
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter("trace")
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::set_global_default(subscriber)
        .map_err(|e| anyhow::anyhow!("installing the tracing capture: {e}"))?;
    log::set_boxed_logger(Box::new(Logger(scan.clone())))
        .map_err(|e| anyhow::anyhow!("installing the log capture: {e}"))?;
    log::set_max_level(log::LevelFilter::Trace);
    Ok(scan)
}
