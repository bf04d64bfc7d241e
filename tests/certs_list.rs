//! `provision certs list` as an operator runs it: the real binary on an inventory file
//! whose PKI was built by `pki::ensure`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use provision::inventory::Inventory;
use provision::state::StateDir;

fn inventory_text(pki: &str) -> String {
    format!(
        r#"
[cluster]
name = "lab"
kubernetes_version = "1.34.2"
etcd_version = "3.5.21"
api_endpoint = "127.0.4.1"
service_cidr = "10.32.0.0/24"
pod_cidr = "10.200.0.0/16"

[pki]
{pki}

[[host]]
name = "node1"
address = "127.0.4.1"
roles = ["etcd", "control-plane"]
"#
    )
}

fn write_inventory(dir: &Path, pki: &str) -> (PathBuf, Inventory) {
    let path = dir.join("inventory.toml");
    let text = inventory_text(pki);
    std::fs::write(&path, &text).unwrap();
    (path, toml::from_str(&text).unwrap())
}

fn certs_list(inventory: &Path, json: bool) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_provision"));
    cmd.args(["certs", "list"]).arg(inventory);
    if json {
        cmd.args(["--output", "json"]);
    }
    cmd.output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn pki_certs_list_without_a_pki_says_what_to_run_and_creates_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (path, _) = write_inventory(tmp.path(), "");
    let out = certs_list(&path, false);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("provision render") && stderr.contains("provision apply"), "{stderr}");
    assert!(!tmp.path().join(".provision").exists());
}

#[test]
fn pki_certs_list_shows_every_certificate_as_a_table_and_as_json() {
    let tmp = tempfile::tempdir().unwrap();
    let (path, inv) = write_inventory(tmp.path(), "");
    provision::pki::ensure(&inv, &StateDir::beside(&path, "lab")).unwrap();

    let out = certs_list(&path, false);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    println!("{text}");
    for needle in ["CERT", "SUBJECT", "SANS", "ISSUER", "NOT AFTER", "DAYS LEFT", "STATUS"] {
        assert!(text.contains(needle), "{needle} missing in:\n{text}");
    }
    let apiserver = text.lines().find(|l| l.trim_start().starts_with("apiserver ")).unwrap();
    assert!(apiserver.contains("CN=kube-apiserver") && apiserver.contains("IP:10.32.0.1"), "{apiserver}");
    assert!(apiserver.contains("CN=kubernetes-ca") && apiserver.contains(" ok"), "{apiserver}");
    assert!(!text.contains("PRIVATE KEY"));

    let out = certs_list(&path, true);
    assert_eq!(out.status.code(), Some(0));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let certs = json["certificates"].as_array().unwrap();
    // 3 CAs, apiserver, 3 apiserver clients, etcd server + peer, cm, scheduler, admin,
    // super-admin, kubelet-node1, kube-proxy.
    assert_eq!(certs.len(), 15);
    assert!(certs.iter().all(|c| c["status"] == "ok"), "{json:#}");
    let admin = certs.iter().find(|c| c["name"] == "admin").unwrap();
    assert_eq!(admin["info"]["subject"], "CN=admin, O=provision:cluster-admins");
    assert_eq!(admin["info"]["key_algorithm"], "ecdsa-p256");
    assert!(admin["info"]["days_left"].as_i64().unwrap() >= 364);
}

#[test]
fn pki_certs_list_flags_certificates_inside_the_renewal_window_and_exits_2() {
    let tmp = tempfile::tempdir().unwrap();
    let (path, inv) = write_inventory(tmp.path(), "leaf_validity_days = 10\nrenew_before_days = 5");
    provision::pki::ensure(&inv, &StateDir::beside(&path, "lab")).unwrap();
    // The operator widens the renewal window: the 10-day leaves are now due.
    write_inventory(tmp.path(), "leaf_validity_days = 30\nrenew_before_days = 20");

    let out = certs_list(&path, false);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    let kube_proxy = text.lines().find(|l| l.trim_start().starts_with("kube-proxy ")).unwrap();
    assert!(kube_proxy.contains("RENEW"), "{kube_proxy}");
    assert!(text.contains("kube-proxy: RENEW expires in 9 days (renew_before_days = 20)"), "{text}");
    let ca = text.lines().find(|l| l.trim_start().starts_with("ca ")).unwrap();
    assert!(ca.split_whitespace().any(|w| w == "ok"), "{ca}");

    let json: serde_json::Value = serde_json::from_slice(&certs_list(&path, true).stdout).unwrap();
    let renew = json["certificates"].as_array().unwrap().iter().filter(|c| c["status"] == "renew").count();
    assert_eq!(renew, 12, "every leaf, no CA: {json:#}");
}

#[test]
fn pki_certs_list_reports_an_invalid_inventory_with_its_line_and_exits_2() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("inventory.toml");
    std::fs::write(&path, inventory_text("").replace("address = \"127.0.4.1\"", "address = \"127.0.4.300\"")).unwrap();
    let out = certs_list(&path, false);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("inventory.toml:15:11: host[0].address") && stderr.contains("127.0.4.300"), "{stderr}");
}
