//! `cargo xtask package`: every publishable crate packages, carries what it
//! needs, and can be used on its own.
//!
//! 1. `cargo package --workspace --exclude <unpublished>`: cargo (1.84+) packages
//!    the crates in dependency order and verifies each one against a local
//!    overlay registry holding the others, so a layer's `.crate` is built
//!    against the packaged core, exactly as a user would get it — no
//!    `--no-verify`. Dev-dependencies on the unpublished test kit are
//!    path-only, which `cargo package` strips.
//! 2. Each package's file list holds its README, CHANGELOG, both license
//!    files and every Lua script under its `src/`.
//! 3. Selective use: for each layer crate, a throwaway project in a temp dir
//!    depends on that one crate by path, compiles the README's first example
//!    (`cargo check`, sharing the workspace's target directory so it costs
//!    seconds), and `cargo tree` must show no other Aeturnis crate but the
//!    core.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};

use crate::util::{self, root, step};

/// The crates users depend on, in dependency order, with their directory.
pub(crate) const PUBLISHED: &[(&str, &str)] = &[
    ("aeturnis-redis-core", "crates/redis-core"),
    ("aeturnis-cache", "crates/cache"),
    ("aeturnis-session", "crates/session"),
    ("aeturnis-lock", "crates/lock"),
    ("aeturnis-ratelimit", "crates/ratelimit"),
    ("aeturnis-patterns", "crates/patterns"),
    ("aeturnis-tower", "crates/tower"),
];

/// What a README example may use besides the one crate: what any user of
/// it has anyway (serde's derive for their own types, tokio to run it).
const EXAMPLE_DEPS: &str = "serde = { version = \"1\", features = [\"derive\"] }\n\
                            tokio = { version = \"1\", features = [\"rt\", \"macros\"] }\n";

/// Workspace members that are never published.
const UNPUBLISHED: &[&str] = &[
    "aeturnis-testkit",
    "aeturnis-demo",
    "aeturnis-tests",
    "xtask",
];

/// Runs the three checks.
pub(crate) fn run(args: &[String]) -> anyhow::Result<std::process::ExitCode> {
    if !args.is_empty() {
        bail!("cargo xtask package takes no arguments (got {args:?})");
    }
    check_all()?;
    Ok(std::process::ExitCode::SUCCESS)
}

/// The three checks, as steps (also run by `cargo xtask ci`).
pub(crate) fn check_all() -> anyhow::Result<()> {
    step("cargo package (verified in dependency order)", || {
        let mut cargo = util::cargo();
        cargo.args(["package", "--workspace", "--allow-dirty", "--quiet"]);
        for name in UNPUBLISHED {
            cargo.args(["--exclude", name]);
        }
        util::run(&mut cargo)
    })?;
    step("package contents: README, CHANGELOG, licenses, Lua", || {
        for (name, dir) in PUBLISHED {
            check_contents(name, &root().join(dir))?;
        }
        Ok(())
    })?;
    step(
        "selective use: each layer alone, README example compiled",
        || {
            for (name, dir) in PUBLISHED.iter().skip(1) {
                selective_use(name, &root().join(dir))?;
            }
            Ok(())
        },
    )
}

fn check_contents(name: &str, dir: &Path) -> anyhow::Result<()> {
    let output = util::cargo()
        .args(["package", "--list", "--allow-dirty", "-p", name])
        .output()
        .with_context(|| format!("cargo package --list -p {name}"))?;
    if !output.status.success() {
        bail!(
            "cargo package --list -p {name} failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let listed = String::from_utf8_lossy(&output.stdout);
    let files: Vec<&str> = listed.lines().collect();
    let mut needed: Vec<String> = ["README.md", "CHANGELOG.md", "LICENSE-MIT", "LICENSE-APACHE"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    needed.extend(lua_files(dir, &dir.join("src"))?);
    let missing: Vec<&String> = needed
        .iter()
        .filter(|f| !files.contains(&f.as_str()))
        .collect();
    if !missing.is_empty() {
        bail!("the {name} package lacks {missing:?}");
    }
    Ok(())
}

/// Every `.lua` file under `dir`, relative to the crate root.
fn lua_files(crate_root: &Path, dir: &Path) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(out);
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(lua_files(crate_root, &path)?);
        } else if path.extension().is_some_and(|e| e == "lua") {
            let rel = path.strip_prefix(crate_root).unwrap_or(&path);
            out.push(rel.display().to_string());
        }
    }
    Ok(out)
}

/// The first ```rust block of a README, with rustdoc's hidden `# ` lines shown.
pub(crate) fn readme_example(readme: &str) -> Option<String> {
    let start = readme.find("```rust")?;
    let body = &readme[start..];
    let body = &body[body.find('\n')? + 1..];
    let end = body.find("\n```")?;
    let code = body[..=end]
        .lines()
        .map(|l| {
            let t = l.trim_start();
            if t == "#" {
                String::new()
            } else if let Some(rest) = t.strip_prefix("# ") {
                rest.to_owned()
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    Some(code)
}

fn selective_use(name: &str, dir: &Path) -> anyhow::Result<()> {
    let readme = std::fs::read_to_string(dir.join("README.md"))
        .with_context(|| format!("reading {name}'s README"))?;
    let example = readme_example(&readme)
        .with_context(|| format!("{name}'s README has no ```rust example"))?;
    let project = std::env::temp_dir().join(format!("aeturnis-selective-{name}"));
    let _ = std::fs::remove_dir_all(&project);
    std::fs::create_dir_all(project.join("src"))?;
    let manifest = format!(
        "[package]\nname = \"selective-{name}\"\nversion = \"0.0.0\"\nedition = \"2021\"\npublish = false\n\n\
         [dependencies]\n{name} = {{ path = {path:?} }}\n{EXAMPLE_DEPS}\n[workspace]\n",
        path = dir.display().to_string()
    );
    std::fs::write(project.join("Cargo.toml"), manifest)?;
    std::fs::write(
        project.join("src/lib.rs"),
        format!("//! {name} used on its own: its README example.\n#![allow(dead_code, unused)]\n\n{example}\n"),
    )?;
    // start from the workspace's lock file so the shared target dir is reused
    std::fs::copy(root().join("Cargo.lock"), project.join("Cargo.lock"))?;
    let target: PathBuf = root().join("target");
    let run_in = |args: &[&str]| -> anyhow::Result<String> {
        let output = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
            .args(args)
            .current_dir(&project)
            .env("CARGO_TARGET_DIR", &target)
            .output()
            .with_context(|| format!("cargo {args:?} in {}", project.display()))?;
        if !output.status.success() {
            bail!(
                "`cargo {}` for {name} used alone failed:\n{}",
                args.join(" "),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    };
    run_in(&["check", "--quiet"])?;
    let tree = run_in(&["tree", "--edges", "normal", "--prefix", "none"])?;
    let siblings = aeturnis_siblings(&tree, name);
    if !siblings.is_empty() {
        bail!("{name} used alone pulls in other Aeturnis layers: {siblings:?}");
    }
    let _ = std::fs::remove_dir_all(&project);
    Ok(())
}

/// The layers each crate may pull in besides the core (DESIGN.md's arrows).
fn allowed_layers(name: &str) -> &'static [&'static str] {
    match name {
        "aeturnis-patterns" => &["aeturnis-cache"],
        "aeturnis-tower" => &["aeturnis-session", "aeturnis-ratelimit"],
        _ => &[],
    }
}

/// The Aeturnis crates in a `cargo tree --prefix none` listing other than
/// `name` itself, the core and the layers `name` may use.
pub(crate) fn aeturnis_siblings(tree: &str, name: &str) -> Vec<String> {
    let allowed = allowed_layers(name);
    let mut found: Vec<String> = tree
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| {
            c.starts_with("aeturnis-")
                && *c != name
                && *c != "aeturnis-redis-core"
                && !allowed.contains(c)
        })
        .map(str::to_owned)
        .collect();
    found.sort();
    found.dedup();
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn should_show_hidden_lines_of_the_first_rust_example() {
        let readme = "# x\n\n```sh\ncargo add x\n```\n\n```rust,no_run\nuse x::Y;\n# async fn demo() {\nlet y = Y;\n#\n# }\n```\n\n```rust\nsecond\n```\n";
        let code = readme_example(readme).unwrap_or_default();
        assert_eq!(code, "use x::Y;\nasync fn demo() {\nlet y = Y;\n\n}");
    }

    #[test]
    fn should_name_sibling_layers_in_a_tree() {
        let tree = "selective-aeturnis-lock v0.0.0 (/tmp/x)\naeturnis-lock v0.1.0 (/w/crates/lock)\naeturnis-redis-core v0.1.0 (/w/crates/redis-core)\nfred v10.1.0\naeturnis-cache v0.1.0 (/w/crates/cache)\n";
        assert_eq!(
            aeturnis_siblings(tree, "aeturnis-lock"),
            vec!["aeturnis-cache"]
        );
        let clean = "aeturnis-lock v0.1.0\naeturnis-redis-core v0.1.0\n";
        assert!(aeturnis_siblings(clean, "aeturnis-lock").is_empty());
        let patterns =
            "aeturnis-patterns v0.1.0\naeturnis-cache v0.1.0\naeturnis-redis-core v0.1.0\n";
        assert!(aeturnis_siblings(patterns, "aeturnis-patterns").is_empty());
        assert_eq!(
            aeturnis_siblings(patterns, "aeturnis-cache"),
            vec!["aeturnis-patterns"]
        );
    }
}
