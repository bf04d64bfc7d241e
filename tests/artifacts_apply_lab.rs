//! The binaries through the whole pipeline, on the REAL lab hosts (systemd-nspawn Debian
//! with systemd and sshd on 127.0.1.1-3): `etcd = "download"` from a loopback mirror
//! serving a release-shaped tarball made of this machine's real etcd 3.4.23, then plan,
//! apply, a healthy 3-member cluster running /usr/local/bin/etcd, an empty second plan
//! (served from the cache, no request), an "upgrade" that rewrites the binary and
//! restarts etcd, and reset removing the binaries.
//!
//! Needs root and the lab prerequisites (systemd-container, debootstrap, zstd), and
//! Debian's etcd-server (/usr/bin/etcd) and etcd-client (/usr/bin/etcdctl).

#[path = "support/lab_cli.rs"]
mod lab_cli;
#[path = "support/mirror.rs"]
mod mirror;

use lab_cli::*;
use mirror::Mirror;
use provision::artifacts::{etcd_tarball, sha256_hex};
use serde_json::Value;

/// A release-shaped etcd tarball of this machine's etcd and etcdctl; `pad` bytes
/// appended to etcd make a different (still runnable) binary.
fn publish_real_etcd(m: &Mirror, version: &str, pad: usize) -> Vec<u8> {
    let mut etcd = std::fs::read("/usr/bin/etcd").expect("Debian's etcd-server: /usr/bin/etcd");
    etcd.extend(std::iter::repeat_n(0u8, pad));
    let etcdctl = std::fs::read("/usr/bin/etcdctl").expect("Debian's etcd-client: /usr/bin/etcdctl");
    let name = format!("etcd-v{version}-linux-amd64.tar.gz");
    let tgz = etcd_tarball::build(&format!("etcd-v{version}-linux-amd64"), &[("etcd", &etcd), ("etcdctl", &etcdctl)]).unwrap();
    m.put(&format!("/etcd/v{version}/SHA256SUMS"), format!("{}  {name}\n", sha256_hex(&tgz)).into_bytes());
    m.put(&format!("/etcd/v{version}/{name}"), tgz);
    etcd
}

fn plan_json(inventory: &str) -> (i32, Value, String) {
    let out = provision(&["--output", "json", "plan", inventory]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("plan json: {e}\n{}", text(&out)));
    (code(&out), v, String::from_utf8_lossy(&out.stderr).into_owned())
}

/// (host, action, path-or-unit) of every action (rolling stages included).
fn actions(plan: &Value) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for phase in plan["phases"].as_array().unwrap() {
        for h in phase["hosts"].as_array().unwrap().iter().chain(phase["stages"].as_array().unwrap()) {
            for a in h["actions"].as_array().unwrap() {
                let target = ["path", "unit"].iter().find_map(|k| a[*k].as_str()).unwrap_or("");
                out.push((h["host"].as_str().unwrap().into(), a["action"].as_str().unwrap().into(), target.into()));
            }
        }
    }
    out
}

fn etcd_healthy(inventory: &std::path::Path) {
    let h = etcd_health(inventory);
    assert_eq!(h.verdict, provision::etcd::health::Verdict::Healthy, "{}: {:?}", h.summary(), h.members);
    assert_eq!(h.healthy_count(), 3);
}

#[test]
fn downloaded_etcd_is_installed_verified_upgraded_and_reset() {
    let m = Mirror::start();
    let etcd_v1 = publish_real_etcd(&m, "3.4.23", 0);
    let etcd_v2 = publish_real_etcd(&m, "3.4.24", 4096);
    // A "3.6.0" release (the same real binary, which says 3.4.23): the plan must judge the
    // version the hosts RUN, and refuse the skipped minor before changing anything.
    {
        let etcd = std::fs::read("/usr/bin/etcd").expect("/usr/bin/etcd");
        let ctl = std::fs::read("/usr/bin/etcdctl").expect("/usr/bin/etcdctl");
        let tgz = etcd_tarball::build(
            "etcd-v3.6.0-linux-amd64",
            &[("etcd", &etcd), ("etcdctl", &ctl), ("etcdutl", &ctl)],
        )
        .unwrap();
        let name = "etcd-v3.6.0-linux-amd64.tar.gz";
        m.put("/etcd/v3.6.0/SHA256SUMS", format!("{}  {name}\n", sha256_hex(&tgz)).into_bytes());
        m.put(&format!("/etcd/v3.6.0/{name}"), tgz);
    }

    let lab = provision::lab::ensure_fresh_for_tests().expect("lab up");
    let tmp = tempfile::tempdir().unwrap();
    let base = m.etcd_base();
    let inventory = inventory_copy(&lab, tmp.path(), |t| {
        // Line starts only: the file's comments mention `etcd = "preinstalled"` too.
        t.replace("\netcd_version = \"3.5.21\"", "\netcd_version = \"3.4.23\"").replace(
            "\netcd = \"preinstalled\"",
            &format!("\netcd = \"download\"\netcd_base_url = \"{base}\"\ncache_dir = \"cache\""),
        )
    });
    let inv = inventory.to_str().unwrap();

    // The plan pushes etcd and etcdctl to every member (0755 root:root).
    let (status, plan, stderr) = plan_json(inv);
    assert_eq!(status, 2, "{plan}\n{stderr}");
    let got = actions(&plan);
    for node in ["node1", "node2", "node3"] {
        for path in ["/usr/local/bin/etcd", "/usr/local/bin/etcdctl"] {
            assert!(got.contains(&(node.into(), "write-file".into(), path.into())), "{node} {path}: {got:?}");
        }
    }
    let fetched = m.hit_count();
    assert_eq!(fetched, 2, "{:?}", m.hits()); // SHA256SUMS + tarball, once for all hosts
    let cached = tmp.path().join("cache/etcd/v3.4.23/amd64/etcd-v3.4.23-linux-amd64.tar.gz");
    assert!(cached.exists(), "{}", cached.display());

    let out = provision(&["apply", inv]);
    assert_eq!(code(&out), 0, "apply: {}", text(&out));
    assert_eq!(m.hit_count(), fetched, "apply fetched again instead of using the cache");
    etcd_healthy(&inventory);
    for h in &lab.hosts {
        let addr = h.address.to_string();
        let got = ssh_ok(&lab, &addr, "sha256sum /usr/local/bin/etcd | cut -d' ' -f1; stat -c '%a %U:%G' /usr/local/bin/etcd /usr/local/bin/etcdctl; readlink /proc/$(systemctl show -p MainPID --value etcd.service)/exe");
        assert_eq!(got, format!("{}\n755 root:root\n755 root:root\n/usr/local/bin/etcd\n", sha256_hex(&etcd_v1)), "{addr}");
    }

    // Converged: nothing to do, and nothing downloaded.
    let (status, plan, stderr) = plan_json(inv);
    assert_eq!(status, 0, "{plan}\n{stderr}");
    assert_eq!(m.hit_count(), fetched);

    // A skipped minor (3.4 -> 3.6, judged on the hosts' running 3.4.23): refused with the
    // supported path, nothing changed.
    let upgraded = tmp.path().join("lab.toml");
    let original = std::fs::read_to_string(&upgraded).unwrap();
    std::fs::write(&upgraded, original.replace("etcd_version = \"3.4.23\"", "etcd_version = \"3.6.0\"")).unwrap();
    let (status, plan, stderr) = plan_json(inv);
    assert_eq!(status, 1, "a skipped minor is refused: {plan}\n{stderr}");
    for h in plan["hosts"].as_array().unwrap() {
        let problems = h["problems"].to_string();
        assert!(
            problems.contains("etcd 3.4.23 -> 3.6.0 (/usr/local/bin/etcd) skips a minor")
                && problems.contains("apply 3.5.x, then 3.6.x in turn"),
            "{h}"
        );
    }
    let out = provision(&["apply", inv]);
    assert_eq!(code(&out), 1, "apply refuses too: {}", text(&out));
    std::fs::write(&upgraded, &original).unwrap();
    assert_eq!(plan_json(inv).0, 0, "nothing was changed by the refused apply");

    // A new etcd release: the binary is rewritten and etcd restarts on every member.
    let text_now = std::fs::read_to_string(&upgraded).unwrap().replace("etcd_version = \"3.4.23\"", "etcd_version = \"3.4.24\"");
    std::fs::write(&upgraded, text_now).unwrap();
    let starts: Vec<String> = lab.hosts.iter().map(|h| unit_start(&lab, &h.address.to_string(), "etcd.service")).collect();
    let (status, plan, stderr) = plan_json(inv);
    assert_eq!(status, 2, "{plan}\n{stderr}");
    for h in plan["hosts"].as_array().unwrap() {
        assert_eq!(h["version_changes"], serde_json::json!(["etcd 3.4.23 -> 3.4.24 (/usr/local/bin/etcd)"]), "{h}");
    }
    let got = actions(&plan);
    for node in ["node1", "node2", "node3"] {
        assert!(got.contains(&(node.into(), "write-file".into(), "/usr/local/bin/etcd".into())), "{got:?}");
        assert!(!got.contains(&(node.into(), "write-file".into(), "/usr/local/bin/etcdctl".into())), "etcdctl did not change: {got:?}");
        assert!(got.iter().any(|(h, a, u)| h == node && a.contains("restart") && u == "etcd.service"), "{got:?}");
    }
    let out = provision(&["apply", inv]);
    assert_eq!(code(&out), 0, "apply: {}", text(&out));
    etcd_healthy(&inventory);
    for (h, before) in lab.hosts.iter().zip(&starts) {
        let addr = h.address.to_string();
        assert_eq!(ssh_ok(&lab, &addr, "sha256sum /usr/local/bin/etcd | cut -d' ' -f1"), format!("{}\n", sha256_hex(&etcd_v2)));
        assert_ne!(&unit_start(&lab, &addr, "etcd.service"), before, "etcd on {addr} was not restarted");
    }

    // reset removes the binaries too, without downloading anything.
    let hits = m.hit_count();
    let out = provision(&["reset", "--yes", inv]);
    assert_eq!(code(&out), 0, "reset: {}", text(&out));
    assert_eq!(m.hit_count(), hits, "reset downloaded");
    for h in &lab.hosts {
        let left = ssh_ok(&lab, &h.address.to_string(), "ls /usr/local/bin/");
        assert_eq!(left, "", "left in /usr/local/bin on {}", h.address);
    }
}
