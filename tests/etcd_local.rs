//! End-to-end tests of `provision etcd` against a real 3-member etcd 3.4 cluster with mTLS
//! on 127.0.3.1-3 (see support/local_etcd.rs). The real etcdctl is the oracle for snapshots.
//!
//! Clusters are started one test at a time (a process-wide lock): the timing-sensitive
//! tests (a frozen leader, lost quorum) must not compete with other clusters for the CPU.

#[path = "support/local_etcd.rs"]
mod local_etcd;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use local_etcd::LocalEtcd;
use provision::etcd::backup::{self, BackupOptions};
use provision::etcd::connect::connect;
use provision::etcd::credentials::ClientCredentials;
use provision::etcd::members;
use serde_json::Value;

static ONE_CLUSTER_AT_A_TIME: Mutex<()> = Mutex::new(());

fn lock() -> std::sync::MutexGuard<'static, ()> {
    ONE_CLUSTER_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn provision(args: &[&str]) -> (Output, Duration) {
    let start = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_provision")).args(args).output().expect("run provision");
    (out, start.elapsed())
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(out)))
}

fn inventory(c: &LocalEtcd) -> &str {
    c.inventory().to_str().expect("utf-8 path")
}

fn creds(c: &LocalEtcd) -> ClientCredentials {
    ClientCredentials::from_files(&c.ca_file, &c.client_cert_file, &c.client_key_file).expect("fixture credentials")
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime")
}

/// The name of the member the JSON health report calls leader.
fn leader_of(report: &Value) -> Option<String> {
    report["members"]
        .as_array()?
        .iter()
        .find(|m| m["status"]["is_leader"].as_bool() == Some(true))
        .and_then(|m| m["name"].as_str().map(String::from))
}

#[test]
fn healthy_cluster_reports_every_member_and_reads_cross_members() {
    let _g = lock();
    let c = LocalEtcd::start("healthy", 22379, 22380);

    let (out, _) = provision(&["etcd", "health", inventory(&c)]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let t = text(&out);
    eprintln!("{t}");
    assert!(t.contains("healthy: 3/3 members healthy, leader m"), "{t}");
    assert!(t.contains("3.4.23") && t.contains("RAFT TERM"), "{t}");

    let (out, _) = provision(&["--output", "json", "etcd", "health", inventory(&c)]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let report = json(&out);
    assert_eq!(report["verdict"], "healthy");
    let ms = report["members"].as_array().expect("members");
    assert_eq!(ms.len(), 3);
    for m in ms {
        // "slow" is a warning on a loaded machine, not a failure: both are healthy.
        assert_eq!(m["healthy"], true, "{m}");
        assert!(m["health"] == "healthy" || m["health"] == "slow", "{m}");
        assert_eq!(m["status"]["version"], "3.4.23");
        assert!(m["status"]["raft_term"].as_u64().unwrap_or(0) >= 1);
        assert!(m["status"]["db_size"].as_i64().unwrap_or(0) > 0);
    }
    let leader = leader_of(&report).expect("one member leads");
    assert_eq!(report["leader"], leader.as_str());
    let leader_ids: Vec<&Value> = ms.iter().map(|m| &m["status"]["leader_id"]).collect();
    assert!(leader_ids.windows(2).all(|w| w[0] == w[1]), "members agree on the leader: {leader_ids:?}");

    // A key written through m1 is read through m3 (each client talks to one member only).
    let inv = c.load_inventory();
    let ms = members(&inv);
    let creds = creds(&c);
    runtime().block_on(async {
        let mut m1 = connect(&ms[0], &creds, Duration::from_secs(5)).await.expect("connect m1").client;
        let mut m3 = connect(&ms[2], &creds, Duration::from_secs(5)).await.expect("connect m3").client;
        m1.put("cross/member", "written-through-m1", None).await.expect("put via m1");
        let got = m3.get("cross/member", None).await.expect("get via m3");
        assert_eq!(got.kvs()[0].value(), b"written-through-m1");
    });

    // Nothing listening on the inventory's port: refused, in plain words, per member.
    let wrong_port = c.dir.path().join("wrong-port.toml");
    std::fs::write(&wrong_port, c.inventory_toml().replace("client_port = 22379", "client_port = 22399"))
        .expect("write");
    let (out, took) = provision(&["etcd", "health", wrong_port.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(took < Duration::from_secs(4), "refused connections answer at once ({took:?})");
    let t = text(&out);
    assert!(t.contains("m2 (https://127.0.3.2:22399): connection refused at https://127.0.3.2:22399"), "{t}");

    // No PKI beside the inventory: say what to do, change nothing.
    let elsewhere = tempfile::tempdir().expect("tempdir");
    let lonely = elsewhere.path().join("inventory.toml");
    std::fs::write(&lonely, c.inventory_toml()).expect("write");
    let (out, _) = provision(&["etcd", "health", lonely.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("no etcd CA at") && text(&out).contains("provision apply"), "{}", text(&out));
    assert!(!elsewhere.path().join(".provision").exists(), "health creates no PKI");

    // A client that trusts the wrong CA is told so in plain words, naming the member.
    let wrong_ca = c.pki_dir.join("front-proxy-ca.crt");
    let (out, _) = provision(&[
        "etcd",
        "health",
        inventory(&c),
        "--timeout=3s",
        &format!("--cacert={}", wrong_ca.display()),
        &format!("--cert={}", c.client_cert_file.display()),
        &format!("--key={}", c.client_key_file.display()),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let t = text(&out);
    assert!(t.contains("m1 (https://127.0.3.1:22379)") && t.contains("not signed by the etcd CA we trust"), "{t}");
}

/// A slow but answering member is a warning with its figure, never a failure: `etcd health`
/// exits 0 and says how long each read took. Real etcd: once with a threshold every read
/// exceeds (--slow=0.001ms), once with a follower frozen (SIGSTOP) for 800 ms during the read.
#[test]
fn slow_members_are_warnings_with_their_figures_not_failures() {
    let _g = lock();
    let c = LocalEtcd::start("slow", 22579, 22580);
    c.wait_healthy(Duration::from_secs(30));

    let (out, _) = provision(&["--output", "json", "etcd", "health", inventory(&c), "--slow=0.001ms"]);
    assert_eq!(out.status.code(), Some(0), "slow members are no failure: {}", text(&out));
    let report = json(&out);
    assert_eq!(report["verdict"], "healthy", "{report}");
    let warnings = report["warnings"].as_array().expect("warnings");
    assert_eq!(warnings.len(), 3, "{report}");
    for m in report["members"].as_array().expect("members") {
        assert_eq!((m["health"].as_str(), m["healthy"].as_bool(), m["slow"].as_bool()), (Some("slow"), Some(true), Some(true)));
        assert!(m["read_ms"].is_u64(), "{m}");
        assert!(m["problems"].as_array().is_some_and(|p| p.is_empty()), "{m}");
    }
    let (out, _) = provision(&["etcd", "health", inventory(&c), "--slow=0.001ms"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let t = text(&out);
    assert!(t.contains("warning: m1: slow: the health read took ") && t.contains("(slow above 0 ms)"), "{t}");
    assert!(t.contains("healthy: 3/3 members healthy") && t.contains("3 warnings"), "{t}");

    // A follower that answers late: frozen for 800 ms while the check runs, in-process so
    // the read starts while it is frozen. Its read waits for SIGCONT and then succeeds.
    let leader = leader_of(&json(&provision(&["--output", "json", "etcd", "health", inventory(&c)]).0)).expect("leader");
    let fi = c.members.iter().position(|m| m.name != leader).expect("a follower");
    let follower = c.members[fi].name.clone();
    let inv = c.load_inventory();
    let opts = provision::etcd::health::HealthOptions {
        timeout: Duration::from_secs(10),
        slow_after: Duration::from_millis(200),
    };
    c.freeze(fi);
    let pid = c.members[fi].pid();
    let thaw = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(800));
        let _ = Command::new("kill").args(["-CONT", &pid.to_string()]).status();
    });
    let h = runtime().block_on(provision::etcd::health::check(&members(&inv), &creds(&c), opts));
    thaw.join().expect("thaw thread");
    let m = h.members.iter().find(|m| m.name == follower).expect("follower listed");
    eprintln!("frozen follower {follower}: read {:?} ms, {}; warnings {:?}", m.read_ms, h.summary(), h.warnings);
    assert!(m.healthy && m.slow, "{m:?}");
    assert!(m.read_ms.is_some_and(|ms| ms >= 200), "{m:?}");
    assert!(h.warnings.iter().any(|w| w.starts_with(&format!("{follower}: slow: the health read took "))), "{:?}", h.warnings);
    assert_eq!(h.exit_code, 0, "{}: {:?}", h.summary(), h.members);
}

#[test]
fn frozen_leader_degrades_within_the_timeout_and_two_frozen_lose_quorum() {
    let _g = lock();
    let c = LocalEtcd::start("frozen", 22479, 22480);
    let (out, _) = provision(&["--output", "json", "etcd", "health", inventory(&c)]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let old_leader = leader_of(&json(&out)).expect("a leader");
    let li = c.members.iter().position(|m| m.name == old_leader).expect("leader is a member");

    c.freeze(li);
    let (out, took) = provision(&["--output", "json", "etcd", "health", inventory(&c), "--timeout=5s"]);
    assert_eq!(out.status.code(), Some(1), "one frozen member is degraded: {}", text(&out));
    eprintln!("{}", text(&provision(&["etcd", "health", inventory(&c), "--timeout=2s"]).0));
    assert!(took < Duration::from_secs(9), "health took {took:?}: a frozen member must cost the timeout, not a hang");
    let report = json(&out);
    let frozen =
        report["members"].as_array().expect("members").iter().find(|m| m["name"] == old_leader.as_str()).cloned();
    let frozen = frozen.expect("frozen member listed");
    assert_eq!(frozen["health"], "unreachable", "{frozen}");
    assert!(frozen["problems"][0].as_str().unwrap_or("").contains("no answer within 5s"), "{frozen}");

    // After the election another member leads.
    let deadline = Instant::now() + Duration::from_secs(20);
    let new_leader = loop {
        let (out, _) = provision(&["--output", "json", "etcd", "health", inventory(&c), "--timeout=3s"]);
        if let Some(l) = leader_of(&json(&out))
            && l != old_leader
        {
            assert_eq!(out.status.code(), Some(1), "{}", text(&out));
            break l;
        }
        assert!(Instant::now() < deadline, "no new leader after 20s: {}", text(&out));
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_ne!(new_leader, old_leader);

    // Freeze one more: no quorum left. Exit 2, still bounded by the timeout.
    let second = (0..3).find(|&i| i != li).expect("another member");
    c.freeze(second);
    let (out, took) = provision(&["etcd", "health", inventory(&c), "--timeout=4s"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(took < Duration::from_secs(8), "health took {took:?} with two frozen members");
    assert!(text(&out).contains("NO QUORUM"), "{}", text(&out));

    c.thaw(li);
    c.thaw(second);
    c.wait_healthy(Duration::from_secs(30));
    let (out, _) = provision(&["etcd", "health", inventory(&c)]);
    assert_eq!(out.status.code(), Some(0), "healthy again after SIGCONT: {}", text(&out));
}

fn fill(c: &LocalEtcd, keys: usize) {
    let inv = c.load_inventory();
    let ms = members(&inv);
    let creds = creds(c);
    runtime().block_on(async {
        let mut client = connect(&ms[0], &creds, Duration::from_secs(10)).await.expect("connect").client;
        for batch in 0..keys.div_ceil(100) {
            let ops: Vec<etcd_client::TxnOp> = (batch * 100..((batch + 1) * 100).min(keys))
                .map(|i| {
                    etcd_client::TxnOp::put(
                        format!("/registry/test/key-{i:05}"),
                        format!("value-{i}-{}", "x".repeat(100)),
                        None,
                    )
                })
                .collect();
            client.txn(etcd_client::Txn::new().and_then(ops)).await.expect("txn put");
        }
    });
}

fn etcdctl_status(c: &LocalEtcd, snapshot: &Path) -> Value {
    let out = c.etcdctl(&c.endpoint(0), &["snapshot", "status", "-w", "json", snapshot.to_str().expect("utf-8")]);
    assert!(out.status.success(), "etcdctl snapshot status refused {}: {}", snapshot.display(), text(&out));
    serde_json::from_slice(&out.stdout).expect("etcdctl JSON")
}

#[test]
fn backup_of_10000_keys_is_accepted_by_etcdctl_and_damage_is_refused() {
    let _g = lock();
    let c = LocalEtcd::start("bk", 22579, 22580);
    fill(&c, 10_000);
    let out_dir = c.dir.path().join("backups");
    let out_arg = format!("--out={}", out_dir.display());

    let (out, _) = provision(&["--output", "json", "etcd", "backup", inventory(&c), &out_arg, "--keep=2"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let report = json(&out);
    let path = PathBuf::from(report["path"].as_str().expect("path"));
    let name = path.file_name().and_then(|n| n.to_str()).expect("file name");
    let rev = report["revision"].as_i64().expect("revision");
    assert!(name.starts_with("bk-") && name.ends_with(&format!("-rev{rev}.db")), "{name}");
    let md = std::fs::metadata(&path).expect("snapshot exists");
    assert_eq!(md.permissions().mode() & 0o777, 0o600);
    assert_eq!(report["size"].as_u64(), Some(md.len()));
    assert!(report["seconds"].as_f64().is_some());
    let member = report["member"].as_str().expect("member");
    let health = json(&provision(&["--output", "json", "etcd", "health", inventory(&c)]).0);
    assert_ne!(Some(member.to_string()), leader_of(&health), "a follower is preferred");

    // The real etcdctl accepts the file and sees what we see.
    let status = etcdctl_status(&c, &path);
    assert_eq!(status["revision"].as_i64(), Some(rev));
    assert!(status["totalKey"].as_u64().unwrap_or(0) >= 10_000, "{status}");
    assert_eq!(status["totalSize"].as_u64(), Some(md.len() - 32));
    let (out, _) = provision(&["--output", "json", "etcd", "verify", path.to_str().expect("utf-8"), "--full"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let ours = json(&out);
    assert_eq!(ours["revision"].as_i64(), Some(rev));
    assert_eq!(ours["total_keys"], status["totalKey"]);
    assert_eq!(ours["kv_hash"], status["hash"], "our CRC-32C equals etcdctl's hash");
    assert_eq!(ours["sha256"], report["sha256"]);
    // ... and `etcdctl snapshot restore` (which checks the sha256 trailer) restores it.
    let restored = c.dir.path().join("restored");
    let out = c.etcdctl(
        &c.endpoint(0),
        &[
            "snapshot",
            "restore",
            path.to_str().expect("utf-8"),
            &format!("--data-dir={}", restored.display()),
            "--name=m1",
            &format!("--initial-cluster={}", c.initial_cluster()),
            "--initial-advertise-peer-urls=https://127.0.3.1:22580",
        ],
    );
    assert!(out.status.success(), "etcdctl snapshot restore: {}", text(&out));
    assert!(restored.join("member/snap/db").exists());

    // Damaged copies are refused by verify, naming the check that failed.
    let truncated = c.dir.path().join("truncated.db");
    let bytes = std::fs::read(&path).expect("read snapshot");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).expect("write");
    let (out, _) = provision(&["etcd", "verify", truncated.to_str().expect("utf-8")]);
    assert_ne!(out.status.code(), Some(0));
    assert!(text(&out).contains("is truncated"), "{}", text(&out));
    let flipped = c.dir.path().join("flipped.db");
    let mut bad = bytes.clone();
    let at = bad.len() / 3;
    bad[at] ^= 0x01;
    std::fs::write(&flipped, &bad).expect("write");
    let (out, _) = provision(&["etcd", "verify", flipped.to_str().expect("utf-8")]);
    assert_ne!(out.status.code(), Some(0));
    assert!(text(&out).contains("is corrupt: the sha256"), "{}", text(&out));
    // restore refuses both before touching anything, and refuses to run unconfirmed.
    let (out, _) = provision(&["etcd", "restore", inventory(&c), truncated.to_str().expect("utf-8"), "--yes"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("is truncated") && text(&out).contains("nothing was changed"), "{}", text(&out));
    let (out, _) = provision(&["etcd", "restore", inventory(&c), flipped.to_str().expect("utf-8"), "--yes"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("sha256"), "{}", text(&out));
    let (out, _) = provision(&["etcd", "restore", inventory(&c), path.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("no terminal to ask on; pass --yes"), "{}", text(&out));
    // The oracle agrees the truncated file is unusable.
    let out = c.etcdctl(&c.endpoint(0), &["snapshot", "status", truncated.to_str().expect("utf-8")]);
    assert!(!out.status.success());

    // Retention: two more backups with --keep=2 leave the newest two.
    for _ in 0..2 {
        std::thread::sleep(Duration::from_millis(1100)); // names have one-second resolution
        fill(&c, 10);
        let (out, _) = provision(&["etcd", "backup", inventory(&c), &out_arg, "--keep=2"]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        assert!(text(&out).contains("snapshot saved:"), "{}", text(&out));
    }
    let left = provision::etcd::retention::list(&out_dir, "bk").expect("list");
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(!left.contains(&path), "the oldest was pruned");
    let partials = std::fs::read_dir(&out_dir)
        .expect("dir")
        .filter(|e| e.as_ref().map(|e| e.file_name().to_string_lossy().ends_with(".partial")).unwrap_or(false));
    assert_eq!(partials.count(), 0, "no temp files left behind");
}

#[test]
fn backup_falls_back_when_the_preferred_member_does_not_deliver() {
    let _g = lock();
    let c = LocalEtcd::start("fallback", 22679, 22680);
    fill(&c, 200);
    let inv = c.load_inventory();
    let ms = members(&inv);
    c.freeze(1);
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = BackupOptions {
        cluster: "fallback".into(),
        dir: dir.path().to_path_buf(),
        keep: None,
        timeout: Duration::from_secs(2),
        progress: false,
    };
    let candidates = vec![(ms[1].clone(), false), (ms[2].clone(), false)];
    let started = Instant::now();
    let report = runtime().block_on(backup::backup(&candidates, &creds(&c), &opts)).expect("backup from m3");
    c.thaw(1);
    assert_eq!(report.member, "m3");
    assert_eq!(report.failed_attempts.len(), 1);
    assert_eq!(report.failed_attempts[0].member, "m2");
    assert!(report.failed_attempts[0].error.contains("no answer within 2s"), "{:?}", report.failed_attempts);
    assert!(started.elapsed() < Duration::from_secs(10));
    let status = etcdctl_status(&c, &report.path);
    assert_eq!(status["revision"].as_i64(), Some(report.revision));
}

/// The restore script run for real against etcd 3.4 (data dirs of the local members):
/// restored data dirs with a NEW token start under the members' ORIGINAL flags
/// (`--initial-cluster-state=new`, the old `--initial-cluster-token`), because etcd uses
/// the membership stored in an existing data dir and ignores those flags.
#[test]
fn restored_data_dirs_start_under_the_original_flags() {
    use provision::etcd::restore_script::{self, MemberRestore};
    use std::os::unix::fs::MetadataExt;

    let _g = lock();
    let mut c = LocalEtcd::start("rs", 22779, 22780);
    fill(&c, 500);
    let cluster_id = |c: &LocalEtcd| -> u64 {
        let out = c.etcdctl(&c.endpoint(0), &["endpoint", "status", "-w", "json"]);
        let v: Value = serde_json::from_slice(&out.stdout).expect("status json");
        v[0]["Status"]["header"]["cluster_id"].as_u64().expect("cluster id")
    };
    let old_id = cluster_id(&c);
    let out_dir = c.dir.path().join("backups");
    let (out, _) =
        provision(&["--output", "json", "etcd", "backup", inventory(&c), &format!("--out={}", out_dir.display())]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let report = json(&out);
    let snapshot = report["path"].as_str().expect("path").to_string();
    let rev = report["revision"].as_i64().expect("revision");
    let put = c.etcdctl(&c.endpoint(0), &["put", "written/after/backup", "x"]);
    assert!(put.status.success());

    for i in 0..3 {
        c.stop(i);
    }
    let stamp = "20261122T120000Z";
    let mut plans = Vec::new();
    for (i, m) in c.members.iter().enumerate() {
        let plan = MemberRestore {
            snapshot: snapshot.clone(),
            data_dir: m.data_dir.to_str().expect("utf-8").to_string(),
            name: m.name.clone(),
            initial_cluster: c.initial_cluster(),
            peer_url: format!("https://{}:{}", m.ip, c.peer_port),
            token: format!("rs-restore-{stamp}"),
            stamp: stamp.into(),
            owner: "etcd".into(),
            unit: None,
        };
        let out = Command::new("sh").arg("-c").arg(restore_script::restore(&plan)).output().expect("sh");
        assert!(out.status.success(), "restore script for member {i}: {}", text(&out));
        let r = restore_script::parse_report(&String::from_utf8_lossy(&out.stdout));
        assert!(r.iter().any(|(k, v)| k == "tool" && v.contains("etcdctl")), "{r:?}");
        assert!(r.iter().any(|(k, v)| k == "previous" && v == &plan.previous_dir()), "{r:?}");
        let md = std::fs::metadata(&m.data_dir).expect("restored data dir");
        assert_eq!(md.mode() & 0o777, 0o700);
        let etcd_uid = Command::new("id").args(["-u", "etcd"]).output().expect("id");
        assert_eq!(md.uid().to_string(), String::from_utf8_lossy(&etcd_uid.stdout).trim());
        assert!(Path::new(&plan.previous_dir()).join("member").is_dir(), "previous data dir kept");
        plans.push(plan);
    }
    for i in 0..3 {
        c.start_again(i);
    }
    c.wait_healthy(Duration::from_secs(60));
    let (out, _) = provision(&["--output", "json", "etcd", "health", inventory(&c)]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_ne!(cluster_id(&c), old_id, "the restored cluster is a new cluster (new token)");
    let got = c.etcdctl(&c.endpoint(2), &["get", "/registry/test/key-00499", "--print-value-only"]);
    assert!(String::from_utf8_lossy(&got.stdout).starts_with("value-499-"), "{}", text(&got));
    let gone = c.etcdctl(&c.endpoint(1), &["get", "written/after/backup", "--print-value-only"]);
    assert!(gone.status.success() && gone.stdout.is_empty(), "a key written after the backup is gone");
    let out = c.etcdctl(&c.endpoint(0), &["endpoint", "status", "-w", "json"]);
    let v: Value = serde_json::from_slice(&out.stdout).expect("status json");
    assert!(v[0]["Status"]["header"]["revision"].as_i64().unwrap_or(0) >= rev);

    for p in &plans {
        let out = Command::new("sh").arg("-c").arg(restore_script::drop_previous(p)).output().expect("sh");
        assert!(out.status.success());
        assert!(!Path::new(&p.previous_dir()).exists());
    }
}
