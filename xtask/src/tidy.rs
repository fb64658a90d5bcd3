//! House rules checked as tests (rust-analyzer's `tidy.rs`): every Rust file starts
//! with a `//!` doc comment, test code never hard-codes the default Redis port, no
//! library or tool source file is over 600 lines, and every `lib.rs` is a map that
//! fits on one screen.

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use crate::util::root;

    /// Every `.rs` file under `dir`, skipping `target` directories.
    fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                if path.file_name().is_some_and(|n| n == "target") {
                    continue;
                }
                rust_files(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }

    fn files_under(dirs: &[PathBuf]) -> Vec<PathBuf> {
        let mut files = Vec::new();
        for dir in dirs {
            rust_files(dir, &mut files);
        }
        files.sort();
        files
    }

    /// The code part of a line: everything before a `//` comment that starts the line
    /// or follows whitespace (so `redis://host` in a string is still code).
    fn code_part(line: &str) -> &str {
        let trimmed = line.trim_start();
        if trimmed.starts_with("//") {
            return "";
        }
        line.find(" //").map_or(line, |i| &line[..i])
    }

    #[test]
    fn every_rust_file_starts_with_a_module_doc() {
        let root = root();
        let files = files_under(&[root.join("crates"), root.join("xtask"), root.join("tests")]);
        assert!(!files.is_empty());
        let missing: Vec<String> = files
            .iter()
            .filter(|f| {
                std::fs::read_to_string(f)
                    .map(|text| !text.starts_with("//!"))
                    .unwrap_or(true)
            })
            .map(|f| f.strip_prefix(&root).unwrap_or(f).display().to_string())
            .collect();
        assert!(
            missing.is_empty(),
            "these files do not start with a `//!` doc comment:\n  {}",
            missing.join("\n  ")
        );
    }

    #[test]
    fn test_code_never_hard_codes_the_default_redis_port() {
        let root = root();
        let mut dirs = vec![root.join("tests"), root.join("crates/testkit")];
        if let Ok(crates) = std::fs::read_dir(root.join("crates")) {
            dirs.extend(crates.flatten().map(|c| c.path().join("tests")));
        }
        let port = ["63", "79"].concat();
        let mut offenders = Vec::new();
        for file in files_under(&dirs) {
            let text = std::fs::read_to_string(&file).unwrap_or_default();
            for (n, line) in text.lines().enumerate() {
                if code_part(line).contains(&port) {
                    let shown = file.strip_prefix(&root).unwrap_or(&file).display();
                    offenders.push(format!("{shown}:{}: {}", n + 1, line.trim()));
                }
            }
        }
        assert!(
            offenders.is_empty(),
            "test code must use testkit's free ports, never {port}:\n  {}",
            offenders.join("\n  ")
        );
    }

    /// Longest source file outside tests (split by concept beyond this).
    const MAX_SOURCE_LINES: usize = 600;
    /// Longest `lib.rs`: a map (crate doc, module table, `mod` and `pub use`
    /// lines) that fits on one screen.
    const MAX_LIB_LINES: usize = 80;

    /// Source files: every `.rs` under a crate's `src/` and under `xtask/src`.
    fn source_files() -> Vec<PathBuf> {
        let root = root();
        let mut dirs = vec![root.join("xtask/src")];
        if let Ok(crates) = std::fs::read_dir(root.join("crates")) {
            dirs.extend(crates.flatten().map(|c| c.path().join("src")));
        }
        files_under(&dirs)
    }

    fn line_count(file: &Path) -> usize {
        std::fs::read_to_string(file).map_or(0, |t| t.lines().count())
    }

    /// The files of `files` longer than `max` lines, each with its length.
    fn longer_than(files: &[PathBuf], max: usize) -> Vec<String> {
        let root = root();
        files
            .iter()
            .map(|f| (f, line_count(f)))
            .filter(|(_, n)| *n > max)
            .map(|(f, n)| {
                format!(
                    "{} ({n} lines)",
                    f.strip_prefix(&root).unwrap_or(f).display()
                )
            })
            .collect()
    }

    #[test]
    fn no_source_file_outside_tests_is_over_600_lines() {
        let files = source_files();
        assert!(!files.is_empty());
        let long = longer_than(&files, MAX_SOURCE_LINES);
        assert!(
            long.is_empty(),
            "split these files by concept (at most {MAX_SOURCE_LINES} lines):\n  {}",
            long.join("\n  ")
        );
    }

    #[test]
    fn every_lib_rs_fits_on_one_screen() {
        let libs: Vec<PathBuf> = source_files()
            .into_iter()
            .filter(|f| f.file_name().is_some_and(|n| n == "lib.rs"))
            .collect();
        assert!(libs.len() >= 5, "{libs:?}");
        let long = longer_than(&libs, MAX_LIB_LINES);
        assert!(
            long.is_empty(),
            "lib.rs is a map (at most {MAX_LIB_LINES} lines; essays go to docs/):\n  {}",
            long.join("\n  ")
        );
    }

    #[test]
    fn should_strip_comments_but_not_urls() {
        assert_eq!(code_part("// just a comment"), "");
        assert_eq!(code_part("let x = 1; // note"), "let x = 1;");
        assert_eq!(
            code_part(r#"let u = "redis://h:1";"#),
            r#"let u = "redis://h:1";"#
        );
    }
}
