//! `provision render` end to end: the binary, a fixture inventory in a temp dir, the real
//! PKI in its state directory, and the tree it writes.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use sha2::{Digest, Sha256};

fn provision(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_provision")).current_dir(dir).args(args).output().unwrap()
}

/// Every regular file under `root` (relative path -> (mode, bytes)).
fn tree(root: &Path) -> BTreeMap<String, (u32, Vec<u8>)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let meta = std::fs::symlink_metadata(&p).unwrap();
            if meta.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(root).unwrap().display().to_string();
                out.insert(rel, (meta.permissions().mode() & 0o7777, std::fs::read(&p).unwrap()));
            }
        }
    }
    out
}

fn setup(inventory: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(common::fixture_path(inventory), dir.path().join("inv.toml")).unwrap();
    dir
}

#[test]
fn writes_the_tree_and_a_truthful_manifest() {
    let dir = setup("ha");
    let out = provision(dir.path(), &["render", "inv.toml", "--out", "out"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("cp1") && text.contains("worker2") && text.contains("188 files on 5 hosts"), "{text}");

    let files = tree(&dir.path().join("out"));
    assert!(files.contains_key("cp1/etc/systemd/system/etcd.service"));
    assert!(files.contains_key("cp2/etc/kubernetes/pki/ca.key"));
    assert!(!files.contains_key("worker1/etc/kubernetes/pki/ca.key"));
    // The runtime tier: 10 files on each of the 5 kubelet hosts (138 without it): crictl.yaml, the masquerade rules.
    assert!(files.contains_key("worker1/etc/cni/net.d/10-provision-bridge.conflist"));
    assert!(files.contains_key("cp1/etc/containerd/config.toml"));
    for host in ["cp1", "cp2", "cp3", "worker1", "worker2"] {
        let manifest: serde_json::Value =
            serde_json::from_slice(&files[&format!("{host}/manifest.json")].1).unwrap();
        let listed = manifest["files"].as_array().unwrap();
        let on_disk = files.keys().filter(|k| k.starts_with(&format!("{host}/")) && !k.ends_with("manifest.json")).count();
        assert_eq!(listed.len(), on_disk, "{host}: manifest lists every written file");
        for f in listed {
            let path = f["path"].as_str().unwrap();
            let (mode, bytes) = &files[&format!("{host}{path}")];
            assert_eq!(hex::encode(Sha256::digest(bytes)), f["sha256"].as_str().unwrap(), "{host}{path}");
            if f["secret"].as_bool().unwrap() {
                assert_eq!(*mode, 0o600, "{host}{path} is a secret");
                assert_eq!(f["mode"], "0600");
            }
            assert!(f["owner"].is_string() && f["component"].is_string());
        }
        for u in manifest["units"].as_array().unwrap() {
            assert!(!u["watches"].as_array().unwrap().is_empty());
        }
    }
    // Private keys never appear in the summary.
    assert!(!text.contains("PRIVATE KEY"));
}

#[test]
fn two_renders_of_the_same_state_are_byte_identical_and_rerender_replaces() {
    let dir = setup("vagrant");
    assert!(provision(dir.path(), &["render", "inv.toml", "--out", "a"]).status.success());
    assert!(provision(dir.path(), &["render", "inv.toml", "--out", "b"]).status.success());
    let (a, b) = (tree(&dir.path().join("a")), tree(&dir.path().join("b")));
    assert!(a.len() > 50);
    assert_eq!(a, b, "renders differ");
    // Rendering again into the same directory replaces it, identically.
    let again = provision(dir.path(), &["render", "inv.toml", "--out", "a", "--output", "json"]);
    assert!(again.status.success(), "{}", String::from_utf8_lossy(&again.stdout));
    let json: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(json["certificates_issued"], 0, "the PKI is reused");
    assert_eq!(tree(&dir.path().join("a")), b);
}

#[test]
fn rerender_writes_only_what_differs_and_keeps_what_it_did_not_write() {
    use std::os::unix::fs::MetadataExt;
    let dir = setup("vagrant");
    assert!(provision(dir.path(), &["render", "inv.toml", "--out", "a"]).status.success());
    let a = dir.path().join("a");
    let before = tree(&a);
    let unit = a.join("node1/etc/systemd/system/etcd.service");
    let key = a.join("node2/etc/etcd/pki/server.key");
    let untouched = a.join("node3/etc/systemd/system/etcd.service");
    let inode = |p: &Path| std::fs::metadata(p).unwrap().ino();
    let untouched_inode = inode(&untouched);
    // Drift: an edited unit, a key made world-readable, stray files and a stray directory.
    std::fs::write(&unit, "edited by hand\n").unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::write(a.join("node1/etc/stray.conf"), "x").unwrap();
    std::fs::create_dir_all(a.join("node2/opt/stray/deeper")).unwrap();
    std::fs::write(a.join("node2/opt/stray/deeper/f"), "x").unwrap();

    assert!(provision(dir.path(), &["render", "inv.toml", "--out", "a"]).status.success());
    // Files the render did not write are not its to delete (only what its previous
    // manifest listed is): the strays stay, everything rendered is restored.
    let mut expected = before.clone();
    expected.insert("node1/etc/stray.conf".into(), (0o644, b"x".to_vec()));
    expected.insert("node2/opt/stray/deeper/f".into(), (0o644, b"x".to_vec()));
    assert_eq!(tree(&a), expected, "the re-render restores exactly the rendered tree, strays kept");
    assert_eq!(inode(&untouched), untouched_inode, "an unchanged file is not rewritten");
    let after = tree(&a);
    let leftovers: Vec<_> = after.keys().filter(|k| k.contains(".tmp-")).collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn refuses_a_foreign_directory() {
    let dir = setup("vagrant");
    std::fs::create_dir(dir.path().join("mine")).unwrap();
    std::fs::write(dir.path().join("mine/notes.txt"), "keep me").unwrap();
    let out = provision(dir.path(), &["render", "inv.toml", "--out", "mine"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not empty"));
    assert_eq!(std::fs::read_to_string(dir.path().join("mine/notes.txt")).unwrap(), "keep me");
}

#[test]
fn lab_says_what_it_skipped_and_templates_override() {
    let dir = setup("lab");
    std::fs::create_dir(dir.path().join("tpl")).unwrap();
    let unit = provision::render::Templates::embedded_text("etcd.service").unwrap().replace("LimitNOFILE=65536", "LimitNOFILE=1048576");
    std::fs::write(dir.path().join("tpl/etcd.service"), unit).unwrap();
    let out = provision(dir.path(), &["render", "inv.toml", "--out", "out", "--templates", "tpl"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Skipped: kubernetes tier") && text.contains("artifacts.kubernetes"), "{text}");
    assert!(text.contains("Template etcd.service taken from tpl/etcd.service"), "{text}");
    let files = tree(&dir.path().join("out"));
    assert!(files.keys().all(|k| !k.contains("/kubernetes/")), "etcd tier only");
    let unit = String::from_utf8(files["node2/etc/systemd/system/etcd.service"].1.clone()).unwrap();
    assert!(unit.contains("LimitNOFILE=1048576") && unit.contains("--name=node2"));
}
