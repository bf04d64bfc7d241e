//! `provision plan` through the real binary where no host is needed: what its --help promises
//! about a bad inventory, the inventory's warnings, and what it writes on this machine.

use std::path::Path;
use std::process::{Command, Output, Stdio};

fn plan(inventory: &Path, home: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_provision"))
        .args(["plan", inventory.to_str().unwrap()])
        // No ssh-agent and an empty home: no key is usable, so the host fails its preflight
        // without anything listening anywhere.
        .env_remove("SSH_AUTH_SOCK")
        .env("HOME", home)
        .stdin(Stdio::null())
        .output()
        .expect("run provision")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

const INVENTORY: &str = r#"[cluster]
name = "offline"
kubernetes_version = "1.34.2"
etcd_version = "3.5.21"
api_endpoint = "127.0.0.1"
service_cidr = "10.32.0.0/24"
pod_cidr = "10.200.0.0/16"

[ssh]
port = 1

[etcd]
quota_backend_bytes = 9999999999

[artifacts]
kubernetes = "skip"
etcd = "preinstalled"

[[host]]
name = "node1"
address = "127.0.0.1"
roles = ["etcd", "control-plane"]
"#;

#[test]
fn warnings_are_printed_once_each_with_their_position() {
    let dir = tempfile::tempdir().unwrap();
    let inventory = dir.path().join("offline.toml");
    std::fs::write(&inventory, INVENTORY).unwrap();
    let out = plan(&inventory, dir.path());
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "a host failing preflight is exit 1: {err}");
    let warning = format!("{}:13:23: warning: etcd.quota_backend_bytes:", inventory.display());
    // As `validate` prints it: the position first, "warning:" once, after it.
    let lines: Vec<&str> = err.lines().filter(|l| l.contains("etcd.quota_backend_bytes")).collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(lines[0].starts_with(&warning), "{err}");
    assert_eq!(lines[0].matches("warning:").count(), 1, "{err}");
}

#[test]
fn plan_makes_the_pki_on_this_machine_as_its_help_says() {
    let dir = tempfile::tempdir().unwrap();
    let inventory = dir.path().join("offline.toml");
    std::fs::write(&inventory, INVENTORY).unwrap();
    let _ = plan(&inventory, dir.path());
    let state = dir.path().join(".provision/offline");
    for made in ["pki/ca.crt", "pki/etcd-ca.crt", "pki/etcd-server-node1.crt"] {
        assert!(state.join(made).is_file(), "{made} missing in {}", state.display());
    }
}

#[test]
fn an_invalid_inventory_is_exit_1_with_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    let inventory = dir.path().join("bad.toml");
    let bad =
        INVENTORY.replace(r#"name = "offline""#, r#"name = "Off Line""#).replace(r#""control-plane""#, r#""master""#);
    std::fs::write(&inventory, bad).unwrap();
    let out = plan(&inventory, dir.path());
    let err = stderr(&out);
    // 1, not 2: for plan, 2 means "changes pending".
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("cluster.name: \"Off Line\" is not a valid cluster name"), "{err}");
    assert!(err.contains("host[0].roles[1]: \"master\" is not a role"), "{err}");
    assert!(!dir.path().join(".provision").exists(), "nothing is made for an invalid inventory");
}

#[test]
fn a_mistyped_flag_is_exit_1_never_the_2_of_changes_pending() {
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_provision")).args(args).stdin(Stdio::null()).output().expect("run provision")
    };
    let out = run(&["plan", "--templtes=x", "inventory.toml"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("unexpected argument '--templtes"), "{}", stderr(&out));
    // --help is no mistake; and where 2 means "could not run", clap's 2 stays.
    assert_eq!(run(&["plan", "--help"]).status.code(), Some(0));
    assert_eq!(run(&["verify", "--only=nope", "inventory.toml"]).status.code(), Some(2));
}
