//! `provision verify` against the REAL lab hosts (systemd-nspawn Debian with systemd, sshd
//! and etcd 3.4 on 127.0.1.1-3) after `provision apply`: every check that can run passes,
//! the kube-apiserver ones are skipped with the reason; then things are broken on purpose
//! (a key made group-readable, etcd stopped on one host) and verify fails naming the check
//! and the host. Holds the lab's test lock (one lab test at a time, across worktrees).
//!
//! Needs root and `provision lab` prerequisites (systemd-container, debootstrap, zstd).

#[path = "support/lab_cli.rs"]
mod lab_cli;

use std::time::{Duration, Instant};

use lab_cli::*;
use provision::lab::{TestLab, ensure_up_for_tests};
use serde_json::Value;

const NO_APISERVER: &str = "skipped: no kube-apiserver on this cluster (artifacts.kubernetes = skip)";

fn verify(inventory: &str) -> (i32, Value, Duration) {
    let start = Instant::now();
    let out = provision(&["--output", "json", "verify", inventory]);
    let took = start.elapsed();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("verify json: {e}\n{}", text(&out)));
    (code(&out), v, took)
}

fn checks<'a>(report: &'a Value, name: &str) -> Vec<&'a Value> {
    report["checks"].as_array().unwrap().iter().filter(|c| c["check"] == name).collect()
}

fn one<'a>(report: &'a Value, name: &str, target: Option<&str>) -> &'a Value {
    checks(report, name)
        .into_iter()
        .find(|c| target.is_none_or(|t| c["target"].as_str().is_some_and(|x| x.starts_with(t))))
        .unwrap_or_else(|| panic!("no {name} {target:?} in {report:#}"))
}

fn hosts(c: &Value) -> Vec<&str> {
    c["hosts"].as_array().unwrap().iter().map(|h| h.as_str().unwrap()).collect()
}

fn print_table(inventory: &str) {
    let out = provision(&["verify", inventory]);
    eprintln!("{}", String::from_utf8_lossy(&out.stdout));
}

fn addr(lab: &TestLab, i: usize) -> String {
    lab.hosts[i].address.to_string()
}

/// etcd healthy again on every member (after a test stopped one).
fn wait_etcd_healthy(inventory: &str) {
    let start = Instant::now();
    loop {
        let out = provision(&["--output", "json", "verify", "--only", "etcd", inventory]);
        if code(&out) == 0 {
            return;
        }
        assert!(start.elapsed() < Duration::from_secs(90), "etcd did not recover: {}", text(&out));
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn verify_after_apply_passes_then_fails_naming_check_and_host() {
    let lab = ensure_up_for_tests().expect("lab up");
    let inv = lab.inventory.to_str().unwrap();
    let out = provision(&["apply", inv]);
    assert_eq!(code(&out), 0, "apply: {}", text(&out));
    // Data as a cluster holds it: a key (so the snapshot has a revision and a KV hash to
    // compare) and a Secret encrypted exactly as kube-apiserver stores it with the key
    // render puts in the encryption config (the state directory's key1).
    let secret_key = "/registry/secrets/default/verify-lab";
    put_encrypted_secret(&lab, secret_key);

    // 1. As applied: every check that can run passes; the API ones say why they cannot.
    print_table(inv);
    let (status, report, took) = verify(inv);
    eprintln!(
        "verify wall time on the lab: {:.2}s (verify's own figure {:.2}s)",
        took.as_secs_f64(),
        report["seconds"].as_f64().unwrap()
    );
    assert_eq!(status, 0, "{report:#}");
    assert_eq!(report["ok"], true);
    // "warn" only where the figure depends on the machine's speed (a slow etcd read).
    for c in report["checks"].as_array().unwrap() {
        let passing = c["status"] == "pass" || c["status"] == "skip";
        assert!(passing || (c["check"] == "etcd.health" && c["status"] == "warn"), "{c:#}");
    }
    let health = one(&report, "etcd.health", None);
    assert!(health["status"] == "pass" || health["status"] == "warn", "{health:#}");
    for name in ["units.active", "snapshot.take", "snapshot.restore", "files.private"] {
        assert_eq!(one(&report, name, None)["status"], "pass", "{name}");
    }
    for name in ["tls.certificate", "tls.min-version", "tls.plaintext", "tls.client-cert"] {
        for target in ["etcd client :2379", "etcd peer :2380"] {
            let c = one(&report, name, Some(target));
            assert_eq!(c["status"], "pass", "{c:#}");
            assert_eq!(hosts(c), vec!["node1", "node2", "node3"]);
        }
    }
    for id in ["1.1.7", "1.1.8", "1.1.11", "1.1.12", "2.1", "2.2", "2.3", "2.4", "2.5", "2.6", "2.7"] {
        let c = one(&report, &format!("cis.{id}"), None);
        assert_eq!(c["status"], "pass", "{c:#}");
        assert_eq!(hosts(c), vec!["node1", "node2", "node3"]);
    }
    for name in [
        "rbac.anonymous",
        "rbac.authorization-mode",
        "rbac.unbound-identity",
        "rbac.admin",
        "encryption.new-secret",
        "cluster.nodes-ready",
        "cluster.dns",
        "cluster.smoke",
    ] {
        let c = one(&report, name, None);
        assert_eq!((c["status"].as_str(), c["evidence"].as_str()), (Some("skip"), Some(NO_APISERVER)), "{name}");
    }
    let restore = one(&report, "snapshot.restore", None);
    assert!(restore["evidence"].as_str().unwrap().contains("equals the live cluster's"), "{restore:#}");
    let stored = one(&report, "encryption.stored-secrets", None);
    assert_eq!(stored["status"], "pass", "{stored:#}");
    assert!(stored["evidence"].as_str().unwrap().contains("with aescbc key1"), "{stored:#}");
    // The scratch restore left nothing behind on any host.
    for i in 0..3 {
        let left = ssh_ok(&lab, &addr(&lab, i), "ls -d /var/tmp/provision-verify-restore.* 2>/dev/null; true");
        assert_eq!(left.trim(), "", "scratch left on node{}", i + 1);
    }

    // 2. A private key made readable by others on node2: files.private fails naming node2.
    ssh_ok(&lab, &addr(&lab, 1), "chmod 0644 /etc/etcd/pki/server.key");
    let (status, report, _) = verify(inv);
    ssh_ok(&lab, &addr(&lab, 1), "chmod 0600 /etc/etcd/pki/server.key");
    assert_eq!(status, 1, "{report:#}");
    let c = one(&report, "files.private", None);
    assert_eq!((c["status"].as_str(), hosts(c)), (Some("fail"), vec!["node2"]), "{c:#}");
    assert!(
        c["evidence"].as_str().unwrap().starts_with("node2: /etc/etcd/pki/server.key: mode 0644 etcd:etcd"),
        "{c:#}"
    );
    let failed: Vec<&str> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "fail")
        .map(|c| c["check"].as_str().unwrap())
        .collect();
    assert_eq!(failed, vec!["files.private"], "only the broken thing fails");

    // 3. etcd stopped on node3: the checks that depend on it fail, naming node3.
    ssh_ok(&lab, &addr(&lab, 2), "systemctl stop etcd");
    print_table(inv);
    let (status, report, _) = verify(inv);
    ssh_ok(&lab, &addr(&lab, 2), "systemctl start --no-block etcd");
    assert_eq!(status, 1, "{report:#}");
    let health = one(&report, "etcd.health", None);
    assert_eq!((health["status"].as_str(), hosts(health)), (Some("fail"), vec!["node3"]), "{health:#}");
    let units = one(&report, "units.active", None);
    assert_eq!(hosts(units), vec!["node3"]);
    assert!(units["evidence"].as_str().unwrap().contains("etcd.service is inactive"), "{units:#}");
    let tls = one(&report, "tls.certificate", Some("etcd client"));
    assert_eq!((tls["status"].as_str(), hosts(tls)), (Some("fail"), vec!["node3"]), "{tls:#}");
    assert!(tls["evidence"].as_str().unwrap().contains("connection refused"), "{tls:#}");
    let cis = one(&report, "cis.2.2", None);
    assert_eq!(hosts(cis), vec!["node3"]);
    assert!(cis["evidence"].as_str().unwrap().contains("etcd is not running"), "{cis:#}");
    // A snapshot is still taken from a live member and restored.
    assert_eq!(one(&report, "snapshot.restore", None)["status"], "pass");

    wait_etcd_healthy(inv);
    let (status, report, _) = verify(inv);
    assert_eq!(status, 0, "after repair: {report:#}");
    delete_key(&lab, secret_key);
}

fn etcd_client(lab: &TestLab) -> (provision::verify::material::Material, provision::etcd::members::Member) {
    let loaded = provision::inventory::load(&lab.inventory).unwrap();
    let material = provision::verify::material::Material::load(&loaded).unwrap();
    let member = provision::etcd::members(&loaded.inventory).remove(0);
    (material, member)
}

fn put_encrypted_secret(lab: &TestLab, key: &str) {
    use provision::verify::encryption::envelope::{self, Provider};
    use provision::verify::encryption::k8s_proto::{NewSecret, encode_secret};
    let (material, member) = etcd_client(lab);
    let plain = encode_secret(&NewSecret {
        namespace: "default",
        name: "verify-lab",
        uid: "u",
        created_unix: 1,
        data: &[("k", b"v")],
    });
    let aes_key = material.encryption_key.as_ref().expect("state key");
    let value = envelope::encrypt(Provider::Aescbc, "key1", aes_key, &rand::random::<[u8; 16]>(), &plain).unwrap();
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let mut c =
            provision::etcd::connect::connect(&member, &material.etcd_client, Duration::from_secs(10)).await.unwrap();
        c.client.put(key, value, None).await.unwrap();
    });
}

fn delete_key(lab: &TestLab, key: &str) {
    let (material, member) = etcd_client(lab);
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let mut c =
            provision::etcd::connect::connect(&member, &material.etcd_client, Duration::from_secs(10)).await.unwrap();
        c.client.delete(key, None).await.unwrap();
    });
}
