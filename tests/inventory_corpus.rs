//! End to end: `provision validate` on every malformed inventory of the corpus
//! (tests/fixtures/inventories/invalid/) exits 2 and prints exactly the problems its
//! `# expect: LINE:COL: MESSAGE` comments list; the shipped inventories are valid.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn provision(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_provision")).args(args).output().expect("run provision")
}

fn corpus() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/inventories/invalid");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("corpus directory")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
}

/// The `# expect:` lines of a file (read as bytes: one case is not UTF-8 on purpose).
fn expectations(file: &Path) -> Vec<String> {
    let bytes = std::fs::read(file).expect("read case");
    String::from_utf8_lossy(&bytes).lines().filter_map(|l| l.strip_prefix("# expect: ")).map(str::to_string).collect()
}

#[test]
fn the_corpus_is_large_enough() {
    assert!(corpus().len() >= 15, "only {} cases", corpus().len());
}

#[test]
fn every_invalid_inventory_exits_2_with_exactly_its_expected_messages() {
    let mut failures = Vec::new();
    for file in corpus() {
        let path = file.to_str().expect("utf-8 path");
        let expects = expectations(&file);
        assert!(!expects.is_empty(), "{path} has no # expect: line");
        let out = provision(&["validate", path]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.code() != Some(2) {
            failures.push(format!("{path}: exit {:?}, expected 2\n{stderr}", out.status.code()));
        }
        let printed: Vec<&str> = stderr.lines().filter(|l| l.starts_with(path)).collect();
        for expect in &expects {
            // Every expectation names its position: FILE:LINE:COL: MESSAGE.
            let wanted = format!("{path}:{expect}");
            if !printed.iter().any(|l| l.starts_with(&wanted)) {
                failures.push(format!("{path}: missing {wanted:?}\nprinted:\n{stderr}"));
            }
        }
        if printed.len() != expects.len() {
            failures.push(format!("{path}: {} problems printed, {} expected\n{stderr}", printed.len(), expects.len()));
        }
        assert!(out.stdout.is_empty(), "{path}: text mode prints problems to stderr only");
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn json_output_lists_the_same_problems() {
    for file in corpus() {
        let path = file.to_str().expect("utf-8 path");
        let out = provision(&["validate", "--output", "json", path]);
        assert_eq!(out.status.code(), Some(2), "{path}");
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!(report["valid"], false, "{path}");
        let errors = report["errors"].as_array().expect("errors array");
        let warnings = report["warnings"].as_array().expect("warnings array");
        assert!(!errors.is_empty(), "{path}");
        assert_eq!(errors.len() + warnings.len(), expectations(&file).len(), "{path}: {report:#}");
        let expects = expectations(&file);
        let entries = errors.iter().map(|e| (e, "")).chain(warnings.iter().map(|w| (w, "warning: ")));
        for (e, severity) in entries {
            assert_eq!(e["file"], path);
            let (Some(line), Some(column)) = (e["line"].as_u64(), e["column"].as_u64()) else {
                panic!("{path}: no position in {e}")
            };
            assert!(line >= 1 && column >= 1, "{path}: {e}");
            let (Some(key), Some(message)) = (e["key"].as_str(), e["message"].as_str()) else { panic!("{path}: {e}") };
            // Rebuilt as text mode prints it, it is one of the expected problems.
            let key = if key.is_empty() { String::new() } else { format!("{key}: ") };
            let text = format!("{line}:{column}: {severity}{key}{message}");
            assert!(expects.iter().any(|x| text.starts_with(x.as_str())), "{path}: {text:?} is not expected");
        }
    }
}

#[test]
fn the_shipped_inventories_are_valid() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("inventories");
    for (name, summary) in [
        ("lab.toml", "cluster lab, 3 hosts (3 etcd, 3 control-plane, 0 worker)"),
        ("vagrant.toml", "cluster vagrant, 3 hosts (3 etcd, 3 control-plane, 0 worker)"),
        ("example-ha.toml", "cluster prod, 5 hosts (3 etcd, 3 control-plane, 2 worker)"),
    ] {
        let path = dir.join(name);
        let path = path.to_str().expect("utf-8 path");
        let out = provision(&["validate", path]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{path}: {}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(stdout.trim_end(), format!("ok: {path}: {summary}"));
        assert!(out.stderr.is_empty(), "{path} has warnings: {}", String::from_utf8_lossy(&out.stderr));
        let json = provision(&["validate", "--output", "json", path]);
        let report: serde_json::Value = serde_json::from_slice(&json.stdout).expect("json");
        assert_eq!(report["valid"], true);
        assert_eq!(report["errors"], serde_json::json!([]));
    }
}

#[test]
fn warnings_alone_keep_an_inventory_valid() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lab =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("inventories/lab.toml")).expect("lab.toml");
    let text = format!("{lab}\n[[host]]\nname = \"node4\"\naddress = \"127.0.1.4\"\nroles = [\"etcd\"]\n");
    let path = dir.path().join("four.toml");
    std::fs::write(&path, text).expect("write");
    let path = path.to_str().expect("utf-8 path");
    let out = provision(&["validate", path]);
    assert_eq!(out.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("warning: host: 4 hosts have the etcd role"), "{stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("4 hosts (4 etcd, 3 control-plane, 0 worker)"));
}

#[test]
fn a_missing_file_is_invalid_input() {
    let out = provision(&["validate", "/nonexistent/inventory.toml"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with("/nonexistent/inventory.toml: cannot open the inventory: No such file"), "{stderr}");
}

#[test]
fn help_teaches_the_command() {
    let out = provision(&["validate", "--help"]);
    let help = String::from_utf8_lossy(&out.stdout);
    for needle in
        ["FILE:LINE:COLUMN", "Exit status: 0 when valid, 2 when invalid", "--output json", "docs/inventory.md"]
    {
        assert!(help.contains(needle), "--help lacks {needle:?}:\n{help}");
    }
}
