//! `provision etcd restore` end to end on the lab hosts (systemd-nspawn, real systemd and
//! sshd, Debian's etcd 3.4.23 and etcdctl) at 127.0.1.1-3: the etcd tier is installed from
//! the rendered desired state over SSH, a snapshot is taken, more writes follow, and the
//! restore brings every member back to the snapshot under the unchanged systemd unit.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use provision::desired::{Component, DesiredHost};
use provision::inventory::Inventory;
use provision::render::{Templates, render};
use provision::ssh::{Session, Target};
use provision::state::StateDir;
use serde_json::Value;

fn provision(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_provision")).args(args).output().expect("run provision")
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// Installs the etcd tier (users, dirs, files, etcd.service) of one host as rendered.
async fn install_etcd_tier(session: &Session, h: &DesiredHost) -> anyhow::Result<()> {
    let ours = |c: Component| matches!(c, Component::Base | Component::Etcd);
    for u in h.users.iter().filter(|u| ours(u.component)) {
        session
            .exec_checked(
                &format!(
                    "id -u {n} >/dev/null 2>&1 || useradd --system --home-dir {home} --no-create-home --shell /usr/sbin/nologin {n}",
                    n = u.name,
                    home = u.home
                ),
                None,
            )
            .await?;
    }
    for d in h.dirs.iter().filter(|d| ours(d.component)) {
        session
            .exec_checked(&format!("install -d -m {:o} -o {} -g {} {}", d.mode, d.owner, d.group, d.path), None)
            .await?;
    }
    for f in h.files.iter().filter(|f| ours(f.component)) {
        session.exec_checked(&format!("mkdir -p \"$(dirname {})\"", f.path), None).await?;
        session.write_file_atomic(&f.path, &f.content, f.mode, &f.owner, &f.group).await?;
    }
    session.exec_checked("systemctl daemon-reload && systemctl enable etcd.service >/dev/null 2>&1", None).await?;
    // --no-block: a Type=notify etcd only reports started once it has quorum.
    session.exec_checked("systemctl restart --no-block etcd.service", None).await?;
    Ok(())
}

#[test]
fn restore_on_lab_hosts_brings_every_member_back_to_the_snapshot() {
    let lab = provision::lab::ensure_fresh_for_tests().expect("lab hosts up");
    let inv_path = lab.inventory.clone();
    let inv_arg = inv_path.to_str().expect("utf-8");
    let inventory: Inventory = provision::inventory::load(&inv_path).expect("lab inventory").inventory;
    let state = StateDir::beside(&inv_path, &inventory.cluster.name);
    let pki = provision::pki::ensure(&inventory, &state).expect("pki");
    let rendered = render(&inventory, &pki, &Templates::embedded().expect("templates")).expect("render");

    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let inv_dir = inv_path.parent().expect("dir").to_path_buf();
    let sessions: Vec<Session> = rt.block_on(async {
        let mut out = Vec::new();
        for h in inventory.hosts.iter() {
            let t = Target::for_host(&inventory, h, &state, &inv_dir).expect("target");
            out.push(Session::connect(&t).await.expect("ssh"));
        }
        out
    });
    rt.block_on(async {
        let installs = sessions.iter().zip(&rendered.desired.hosts).map(|(s, h)| install_etcd_tier(s, h));
        for r in futures::future::join_all(installs).await {
            r.expect("install etcd tier");
        }
    });
    let unit_sha = |s: &Session| {
        rt.block_on(s.exec_checked("sha256sum /etc/systemd/system/etcd.service", None)).expect("sha").stdout_text()
    };
    let units_before: Vec<String> = sessions.iter().map(unit_sha).collect();

    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let out = provision(&["etcd", "health", inv_arg]);
        if out.status.code() == Some(0) {
            break;
        }
        assert!(Instant::now() < deadline, "lab etcd not healthy after 90s: {}", text(&out));
        std::thread::sleep(Duration::from_secs(1));
    }

    let local = |i: usize, args: &str| {
        let ep = format!("https://127.0.1.{}:2379", i + 1);
        let cmd = format!(
            "ETCDCTL_API=3 etcdctl --endpoints={ep} --cacert=/etc/etcd/pki/ca.crt \
             --cert=/etc/etcd/pki/server.crt --key=/etc/etcd/pki/server.key {args}"
        );
        rt.block_on(sessions[i].exec(&cmd, None)).expect("etcdctl over ssh")
    };
    for i in 0..50 {
        let out = local(i % 3, &format!("put /registry/lab/key-{i} value-{i}"));
        assert!(out.success(), "{}", out.stderr_text());
    }

    let backups = tempfile::tempdir().expect("tempdir");
    let out =
        provision(&["--output", "json", "etcd", "backup", inv_arg, &format!("--out={}", backups.path().display())]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let report: Value = serde_json::from_slice(&out.stdout).expect("json");
    let snapshot = report["path"].as_str().expect("path").to_string();
    let snap_rev = report["revision"].as_i64().expect("revision");

    let out = local(1, "put /registry/lab/after-backup gone-after-restore");
    assert!(out.success(), "{}", out.stderr_text());

    let started = Instant::now();
    let out = provision(&["--output", "json", "etcd", "restore", inv_arg, &snapshot, "--yes"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // One JSON event a line: the plan, every step (the same events as apply), the report last.
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let events: Vec<Value> = stdout.lines().map(|l| serde_json::from_str(l).expect("a JSON event")).collect();
    let plan = &events[0]["plan"];
    assert_eq!(plan["kind"], "restore", "{stdout}");
    let steps: Vec<&str> = events
        .iter()
        .filter(|e| e["event"] == "action-done" && e["host"] == "node1")
        .map(|e| e["action"]["action"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(steps, ["write-file", "stop-unit", "restore-etcd-member", "start-unit", "remove-file", "purge-dir"]);
    assert!(!stdout.contains("BEGIN"), "no key material in the events");
    let restored = &events.last().expect("events")["report"];
    eprintln!("restore took {:?}: {}", started.elapsed(), String::from_utf8_lossy(&out.stderr));
    assert_eq!(restored["verdict"], "healthy");
    assert_eq!(restored["snapshot_revision"].as_i64(), Some(snap_rev));
    assert!(restored["restored_revision"].as_i64().unwrap_or(0) >= snap_rev, "{restored}");
    for m in restored["members"].as_array().expect("members") {
        assert!(m["tool"].as_str().unwrap_or("").contains("etcdctl"), "{m}");
        assert!(m["previous_dir"].is_null(), "previous data dir removed once healthy: {m}");
    }

    let out = provision(&["etcd", "health", inv_arg]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let got = local(2, "get /registry/lab/key-49 --print-value-only");
    assert_eq!(got.stdout_text().trim(), "value-49");
    let gone = local(0, "get /registry/lab/after-backup --print-value-only");
    assert!(gone.success() && gone.stdout_text().trim().is_empty(), "written after the snapshot: gone");

    for (s, before) in sessions.iter().zip(&units_before) {
        assert_eq!(&unit_sha(s), before, "etcd.service unchanged by the restore");
        let st = rt
            .block_on(
                s.exec_checked("stat -c '%U:%G %a' /var/lib/etcd; ls -d /var/lib/etcd.* 2>/dev/null | wc -l", None),
            )
            .expect("stat");
        let st = st.stdout_text();
        let mut lines = st.lines();
        assert_eq!(lines.next(), Some("etcd:etcd 700"), "{st}");
        assert_eq!(lines.next(), Some("0"), "no restore leftovers beside the data dir: {st}");
    }
    assert!(Path::new(&snapshot).exists());

    // A member that fails to restore (an etcdutl that exits 1 on node3): the rollback plan
    // puts every member's previous data back and starts etcd; nothing written is lost.
    let out = local(0, "put /registry/lab/before-failed-restore kept");
    assert!(out.success(), "{}", out.stderr_text());
    let shim = "printf '#!/bin/sh\\necho broken etcdutl >&2\\nexit 1\\n' > /usr/local/bin/etcdutl && chmod 755 /usr/local/bin/etcdutl";
    rt.block_on(sessions[2].exec_checked(shim, None)).expect("shim");
    let t = Instant::now();
    let out = provision(&["etcd", "restore", inv_arg, &snapshot, "--yes"]);
    rt.block_on(sessions[2].exec_checked("rm -f /usr/local/bin/etcdutl", None)).expect("shim removed");
    eprintln!("failed restore + rollback: {:.1}s", t.elapsed().as_secs_f64());
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("previous data was put back"), "{}", text(&out));
    let out = provision(&["etcd", "health", inv_arg]);
    assert_eq!(out.status.code(), Some(0), "healthy after the rollback: {}", text(&out));
    let kept = local(1, "get /registry/lab/before-failed-restore --print-value-only");
    assert_eq!(kept.stdout_text().trim(), "kept", "the data from before the failed restore is back");
    for s in &sessions {
        let left = rt.block_on(s.exec_checked("ls -d /var/lib/etcd.restore-* /var/lib/etcd.provision-restore-* 2>/dev/null | wc -l", None));
        assert_eq!(left.expect("ls").stdout_text().trim(), "0", "no half-restored dir or upload left");
    }

    drop(lab);
}
