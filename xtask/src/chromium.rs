//! Chromium and chromedriver for the demo's dashboard test
//! (`crates/demo/tests/dashboard.rs`), installed like redis-server: Debian's
//! `chromium` and `chromium-driver` with apt-get when missing and running as
//! root; otherwise a failure naming the command to run.

use std::process::Command;

use anyhow::bail;

use crate::util::{self, step};

/// The packages, and the programs they put on `PATH`.
const PACKAGES: [&str; 2] = ["chromium", "chromium-driver"];
const PROGRAMS: [&str; 2] = ["chromium", "chromedriver"];

/// Makes sure `chromium` and `chromedriver` run, installing them if not.
pub(crate) fn ensure() -> anyhow::Result<()> {
    if installed() {
        return Ok(());
    }
    if util::can_apt_install() {
        step(
            "installing chromium and chromium-driver with apt-get (for the dashboard test)",
            || util::apt_install(&PACKAGES),
        )?;
        if installed() {
            return Ok(());
        }
        bail!(
            "apt-get installed {PACKAGES:?}, but {PROGRAMS:?} still do not run; found {}",
            found()
        );
    }
    bail!(
        "the demo's dashboard test needs chromium and chromedriver; found {}.\n\
         Install them with:\n    sudo apt-get update && sudo apt-get install -y chromium chromium-driver",
        found()
    )
}

fn version(program: &str) -> Option<String> {
    let out = Command::new(program).arg("--version").output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn installed() -> bool {
    PROGRAMS.iter().all(|p| version(p).is_some())
}

fn found() -> String {
    PROGRAMS
        .iter()
        .map(|p| format!("{p}: {}", version(p).unwrap_or_else(|| "missing".into())))
        .collect::<Vec<_>>()
        .join(", ")
}
