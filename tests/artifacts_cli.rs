//! `provision artifacts fetch` through the real binary, against the loopback mirror.

#[path = "support/mirror.rs"]
mod mirror;

use std::process::{Command, Output, Stdio};

use mirror::{ETCD, K8S, Mirror};
use provision::artifacts::{Arch, sha256_hex};
use serde_json::Value;

fn provision(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_provision")).args(args).stdin(Stdio::null()).output().expect("run provision")
}

fn text(out: &Output) -> String {
    format!("{:?}\n{}\n{}", out.status.code(), String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn inventory(dir: &std::path::Path, m: &Mirror) -> String {
    let path = dir.join("site.toml");
    std::fs::write(
        &path,
        format!(
            r#"
[cluster]
name = "site"
kubernetes_version = "{K8S}"
etcd_version = "{ETCD}"
api_endpoint = "10.0.0.1"
service_cidr = "10.32.0.0/24"
pod_cidr = "10.200.0.0/16"

[artifacts]
kubernetes = "directory"
etcd = "directory"
directory = "binaries"
cache_dir = "cache"
kubernetes_base_url = "{}"
etcd_base_url = "{}"

[[host]]
name = "cp1"
address = "10.0.0.1"
roles = ["etcd", "control-plane"]
"#,
            m.k8s_base(),
            m.etcd_base()
        ),
    )
    .unwrap();
    std::fs::create_dir_all(dir.join("binaries")).unwrap();
    path.to_string_lossy().into_owned()
}

#[test]
fn fetch_prints_a_table_then_json_and_prepares_a_directory() {
    let m = Mirror::start();
    let amd = m.publish(Arch::Amd64);
    let arm = m.publish(Arch::Arm64);
    let dir = tempfile::tempdir().unwrap();
    let inv = inventory(dir.path(), &m);

    let out = provision(&["artifacts", "fetch", &inv]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.starts_with(&format!("Kubernetes v{K8S}, etcd v{ETCD}\n")), "{stdout}");
    let api_row = stdout.lines().find(|l| l.contains("kube-apiserver")).unwrap();
    assert!(api_row.contains(&sha256_hex(&amd["kube-apiserver"])) && api_row.contains("downloaded"), "{api_row}");
    assert_eq!(stdout.lines().filter(|l| l.contains(" amd64 ")).count(), 9, "{stdout}");
    // Not a terminal: one plain line per download on stderr, stdout stays the table.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("downloaded kube-apiserver: "), "{stderr}");
    // The inventory's http:// base URLs are warned about.
    assert!(stderr.contains("is plain http"), "{stderr}");

    // Again, as JSON, for both architectures, into a directory: amd64 from the cache.
    let to = dir.path().join("binaries");
    let out = provision(&["--output", "json", "artifacts", "fetch", &inv, "--arch", "amd64,arm64", "--to", to.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
    let bins = v["binaries"].as_array().unwrap();
    assert_eq!(bins.len(), 18);
    let find = |arch: &str, name: &str| bins.iter().find(|b| b["arch"] == arch && b["binary"] == name).unwrap().clone();
    assert_eq!(find("amd64", "kubelet")["origin"]["source"], "cache");
    assert_eq!(find("arm64", "kubelet")["origin"]["source"], "download");
    assert_eq!(find("arm64", "etcdctl")["sha256"], sha256_hex(&arm["etcdctl"]));
    assert_eq!(v["exported"].as_array().unwrap().len(), 2 * (6 * 2 + 2));
    assert_eq!(std::fs::read(to.join("arm64/kube-proxy")).unwrap(), arm["kube-proxy"]);
    assert!(to.join(format!("amd64/etcd-v{ETCD}-linux-amd64.tar.gz")).exists());

    // The inventory's own sources now read that directory: plan-time resolution, offline.
    let loaded = provision::inventory::load(std::path::Path::new(&inv)).unwrap();
    let hits = m.hit_count();
    let a = provision::artifacts::resolve_with(
        &loaded,
        &[("cp1".to_string(), Arch::Arm64)].into(),
        &provision::artifacts::Options { progress: provision::artifacts::Progress::silent(), ..Default::default() },
    )
    .unwrap();
    assert_eq!(m.hit_count(), hits);
    assert!(a.all().all(|r| r.arch == Arch::Arm64 && r.origin.checksum_file.is_some()));
    assert_eq!(a.all().count(), 9);
}

#[test]
fn fetch_failures_exit_1_with_the_reason() {
    let m = Mirror::start();
    m.publish(Arch::Amd64);
    m.remove(&Mirror::k8s_path(Arch::Amd64, "kubelet.sha256"));
    let dir = tempfile::tempdir().unwrap();
    let inv = inventory(dir.path(), &m);
    let out = provision(&["artifacts", "fetch", &inv]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("error: kubelet (linux/amd64, Kubernetes v{K8S}): fetching the published checksum {}/release/v{K8S}/bin/linux/amd64/kubelet.sha256: HTTP 404 Not Found", m.k8s_base())),
        "{stderr}"
    );
    // JSON mode: the error as JSON on stdout.
    let out = provision(&["--output", "json", "artifacts", "fetch", &inv, "--arch", "sparc"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown architecture \"sparc\": expected amd64 or arm64"), "{}", text(&out));
}
