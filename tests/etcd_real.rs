//! The rendered etcd.service really runs: three etcd 3.4 members (the Debian binary)
//! started with exactly the rendered command lines (paths moved into a temp dir) on
//! 127.0.4.101-103 form a cluster that answers over mutual TLS to the apiserver's etcd
//! client certificate, and refuses a certificate from the cluster CA (CIS 2.7 in practice).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::fixture_pki;
use provision::cis::HostView;
use provision::inventory::Inventory;
use provision::pki::CertId;
use provision::render::{Templates, render};

const INVENTORY: &str = r#"
[cluster]
name = "realetcd"
kubernetes_version = "1.34.2"
etcd_version = "3.4.23"
api_endpoint = "127.0.4.101"
service_cidr = "10.32.0.0/24"
pod_cidr = "10.200.0.0/16"

[etcd]
heartbeat_interval_ms = 250
election_timeout_ms = 2500

[artifacts]
kubernetes = "skip"
etcd = "preinstalled"

[[host]]
name = "e1"
address = "127.0.4.101"
roles = ["etcd"]

[[host]]
name = "e2"
address = "127.0.4.102"
roles = ["etcd"]

[[host]]
name = "e3"
address = "127.0.4.103"
roles = ["etcd"]
"#;

/// Kills the members we started (by pid, through their handles) however the test ends.
struct Members(Vec<Child>);
impl Drop for Members {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn write(path: &Path, content: &[u8], mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn etcdctl(endpoints: &str, ca: &Path, cert: &Path, key: &Path) -> std::process::Output {
    Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .args(["--endpoints", endpoints, "--dial-timeout=2s", "--command-timeout=4s"])
        .arg(format!("--cacert={}", ca.display()))
        .arg(format!("--cert={}", cert.display()))
        .arg(format!("--key={}", key.display()))
        .args(["endpoint", "health"])
        .output()
        .expect("etcdctl (Debian etcd-client) must be installed")
}

#[test]
fn rendered_etcd_members_form_a_tls_cluster() {
    assert!(Path::new("/usr/bin/etcd").exists(), "/usr/bin/etcd missing: apt-get install -y etcd-server");
    let inv: Inventory = toml::from_str(INVENTORY).unwrap();
    let pki = fixture_pki(&inv);
    let r = render(&inv, &pki, &Templates::embedded().unwrap()).unwrap();
    let tmp = tempfile::tempdir().unwrap();

    let mut members = Members(Vec::new());
    for h in &r.desired.hosts {
        let root = tmp.path().join(&h.host);
        let moved = |p: &str| -> PathBuf { root.join(p.trim_start_matches('/')) };
        for f in &h.files {
            write(&moved(&f.path), &f.content, f.mode);
        }
        for d in &h.dirs {
            use std::os::unix::fs::PermissionsExt;
            std::fs::create_dir_all(moved(&d.path)).unwrap();
            std::fs::set_permissions(moved(&d.path), std::fs::Permissions::from_mode(d.mode)).unwrap();
        }
        let view = HostView::from_desired(h).unwrap();
        let flags = &view.processes["etcd"];
        let args: Vec<String> = flags
            .iter()
            .map(|(k, v)| {
                let v = if v.starts_with('/') { moved(v).display().to_string() } else { v.clone() };
                format!("--{k}={v}")
            })
            .collect();
        let log = std::fs::File::create(root.join("etcd.log")).unwrap();
        let child = Command::new("/usr/bin/etcd")
            .args(&args)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start etcd");
        members.0.push(child);
    }

    let client = tmp.path().join("client");
    let ca = client.join("etcd-ca.crt");
    let (cert, key) = (client.join("apiserver-etcd-client.crt"), client.join("apiserver-etcd-client.key"));
    let etcd_client = pki.get(&CertId::ApiServerEtcdClient).unwrap();
    write(&ca, pki.get(&CertId::EtcdCa).unwrap().cert_pem.as_bytes(), 0o644);
    write(&cert, etcd_client.cert_pem.as_bytes(), 0o644);
    write(&key, etcd_client.key_pem.as_bytes(), 0o600);
    let endpoints = "https://127.0.4.101:2379,https://127.0.4.102:2379,https://127.0.4.103:2379";

    let start = Instant::now();
    loop {
        let out = etcdctl(endpoints, &ca, &cert, &key);
        if out.status.success() {
            break;
        }
        for (i, c) in members.0.iter_mut().enumerate() {
            if let Ok(Some(status)) = c.try_wait() {
                let log = std::fs::read_to_string(tmp.path().join(format!("e{}", i + 1)).join("etcd.log")).unwrap();
                panic!("etcd member e{} exited ({status}):\n{log}", i + 1);
            }
        }
        if start.elapsed() > Duration::from_secs(60) {
            let log = std::fs::read_to_string(tmp.path().join("e1/etcd.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(15).collect();
            panic!(
                "cluster not healthy after 60 s:\n{}\ne1 log (last lines, newest first):\n{}",
                String::from_utf8_lossy(&out.stderr),
                tail.join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }

    // A certificate from the cluster CA (the admin's) must not open etcd.
    let admin = pki.get(&CertId::Admin).unwrap();
    let (acert, akey) = (client.join("admin.crt"), client.join("admin.key"));
    write(&acert, admin.cert_pem.as_bytes(), 0o644);
    write(&akey, admin.key_pem.as_bytes(), 0o600);
    let out = etcdctl("https://127.0.4.101:2379", &ca, &acert, &akey);
    assert!(!out.status.success(), "etcd accepted a client certificate from the cluster CA");
}
