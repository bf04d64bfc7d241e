//! Changing a running cluster (issue #11) against the REAL lab hosts through the real
//! `provision` binary. Holds the lab's test lock like every lab test.
//!
//! Needs root and `provision lab` prerequisites (systemd-container, debootstrap, zstd).

#[path = "support/lab_cli.rs"]
mod lab_cli;
#[path = "support/etcd_probe.rs"]
mod etcd_probe;

use etcd_probe::*;
use lab_cli::*;
use provision::lab::{TestLab, ensure_fresh_for_tests};
use serde_json::Value;

const UNIT: &str = "etcd.service";
const DROPIN: &str = "/etc/systemd/system/etcd.service.d/10-bootstrap.conf";

fn addr(lab: &TestLab, i: usize) -> String {
    lab.hosts[i].address.to_string()
}


/// (host, action kind) of every action in a plan (rolling stages included).
fn actions(plan: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for phase in plan["phases"].as_array().unwrap() {
        for h in phase["hosts"].as_array().unwrap().iter().chain(phase["stages"].as_array().unwrap()) {
            for a in h["actions"].as_array().unwrap() {
                out.push((h["host"].as_str().unwrap().into(), a["action"].as_str().unwrap().into()));
            }
        }
    }
    out
}

/// etcd's own command line on a host, one argument a line.
fn etcd_cmdline(lab: &TestLab, i: usize) -> String {
    ssh_ok(lab, &addr(lab, i), "tr '\\0' '\\n' < /proc/$(systemctl show -p MainPID --value etcd.service)/cmdline")
}

/// Item 1: the --initial-cluster* flags reach etcd's command line through the bootstrap
/// drop-in, and a new etcd host in the inventory plans nothing at all for the running
/// members (before: their units were rewritten and all three restarted together).
#[test]
fn a_new_etcd_host_leaves_running_members_alone() {
    let lab = ensure_fresh_for_tests().expect("lab up");
    let inventory = lab.inventory.to_str().unwrap();
    let out = provision(&["apply", inventory]);
    assert_eq!(code(&out), 0, "apply: {}", text(&out));
    assert_eq!(plan_json(inventory).0, 0, "converged after apply");

    for i in 0..3 {
        let argv = etcd_cmdline(&lab, i);
        let want =
            "--initial-cluster=node1=https://127.0.1.1:2380,node2=https://127.0.1.2:2380,node3=https://127.0.1.3:2380";
        assert!(argv.lines().any(|l| l == want), "node{}: {argv}", i + 1);
        assert!(argv.lines().any(|l| l == "--initial-cluster-state=new"), "node{}: {argv}", i + 1);
        assert!(argv.lines().any(|l| l == "--initial-cluster-token=provision-lab"), "node{}: {argv}", i + 1);
        assert!(!argv.contains('$'), "node{}: unexpanded variable: {argv}", i + 1);
    }
    let starts: Vec<String> = (0..3).map(|i| unit_start(&lab, &addr(&lab, i), UNIT)).collect();
    let dropins: Vec<String> = (0..3).map(|i| ssh_ok(&lab, &addr(&lab, i), &format!("sha256sum {DROPIN}"))).collect();

    // node4 at an address nothing answers on: the plan reads node1..3 and must find
    // nothing to do there, although the rendered bootstrap drop-in now names node4.
    let tmp = tempfile::tempdir().unwrap();
    let grown = inventory_copy(&lab, tmp.path(), |t| {
        t + "\n[[host]]\nname = \"node4\"\naddress = \"127.0.1.250\"\nroles = [\"etcd\"]\n"
    });
    let (status, plan) = plan_json(grown.to_str().unwrap());
    let node4 = plan["hosts"].as_array().unwrap().iter().find(|h| h["host"] == "node4").expect("node4 reported");
    assert_ne!(status, 0, "node4 is unreachable: {plan}");
    assert!(node4.to_string().contains("reach"), "{node4}");
    let on_members: Vec<_> = actions(&plan).into_iter().filter(|(h, _)| h != "node4").collect();
    assert_eq!(on_members, Vec::<(String, String)>::new(), "running members must not change: {plan}");
    for h in plan["hosts"].as_array().unwrap().iter().filter(|h| h["host"] != "node4") {
        assert_eq!(h["problems"], serde_json::json!([]), "{h}");
    }

    // And apply over the grown inventory touches none of them either (node4 fails preflight).
    let out = provision(&["apply", grown.to_str().unwrap()]);
    assert_ne!(code(&out), 0, "{}", text(&out));
    let after: Vec<String> = (0..3).map(|i| unit_start(&lab, &addr(&lab, i), UNIT)).collect();
    assert_eq!(starts, after, "a running member restarted");
    let dropins_after: Vec<String> =
        (0..3).map(|i| ssh_ok(&lab, &addr(&lab, i), &format!("sha256sum {DROPIN}"))).collect();
    assert_eq!(dropins, dropins_after, "a member's bootstrap drop-in was rewritten");
    assert_eq!(plan_json(inventory).0, 0, "the original inventory is still converged");
}

/// What the prober saw: every sample's count of members not answering, and leaderless time.
fn leader_now(inventory: &std::path::Path) -> String {
    let h = etcd_health(inventory);
    assert_eq!(h.healthy_count(), 3, "{}", h.summary());
    h.leader.expect("a leader")
}

/// Debian trixie's etcd 3.5.16 as an `artifacts.etcd = "directory"` source in `dir`.
fn fetch_etcd_3_5(dir: &std::path::Path) -> std::path::PathBuf {
    let bins = dir.join("etcd-3.5");
    let fetch = std::process::Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/fetch-etcd-trixie"))
        .arg(&bins)
        .output()
        .expect("run scripts/fetch-etcd-trixie");
    assert!(fetch.status.success(), "fetching trixie's etcd 3.5: {}", text(&fetch));
    assert_eq!(String::from_utf8_lossy(&fetch.stdout).trim(), "etcd Version: 3.5.16");
    bins
}

/// The lab inventory's text, asking for etcd 3.5.16 from `bins`.
fn to_etcd_3_5(inventory: String, bins: &std::path::Path) -> String {
    // Line starts only: the file's comments mention `etcd = "preinstalled"` too.
    inventory
        .replace("\netcd_version = \"3.5.21\"", "\netcd_version = \"3.5.16\"")
        .replace("\netcd = \"preinstalled\"", &format!("\netcd = \"directory\"\ndirectory = \"{}\"", bins.display()))
}

/// Item 2: a changed etcd flag restarts the three members one after another, the leader
/// last after move-leader; a prober never sees two of three down; data survives.
#[test]
fn a_changed_etcd_flag_restarts_members_one_at_a_time() {
    let lab = ensure_fresh_for_tests().expect("lab up");
    let out = provision(&["apply", lab.inventory.to_str().unwrap()]);
    assert_eq!(code(&out), 0, "apply: {}", text(&out));

    let tmp = tempfile::tempdir().unwrap();
    // A quota the lab inventory does not set (default 8 GiB): every member's flag changes.
    let changed = inventory_copy(&lab, tmp.path(), |t| {
        assert!(!t.contains("[etcd]"), "the lab inventory has no [etcd] table to extend");
        t + "\n[etcd]\nquota_backend_bytes = 3221225472\n"
    });
    let inv = changed.to_str().unwrap();
    let (rt, mut client) = etcd_client_rt(&changed);
    rt.block_on(client.put("rollout/before", "kept", None)).unwrap();
    let leader = leader_now(&changed);

    // The plan: three stages, one member each, the leader last after move-leader.
    let (status, plan) = plan_json(inv);
    assert_eq!(status, 2, "{plan}");
    let etcd = plan["phases"].as_array().unwrap().iter().find(|p| p["phase"] == "etcd").unwrap();
    let stages = etcd["stages"].as_array().unwrap();
    let order: Vec<&str> = stages.iter().map(|s| s["host"].as_str().unwrap()).collect();
    assert_eq!(order.len(), 3, "{etcd}");
    assert_eq!(order[2], leader, "the leader restarts last: {etcd}");
    assert_eq!(stages[2]["move_leader_to"], order[0], "{etcd}");
    assert!(stages.iter().all(|s| s["gate"]["gate"] == "etcd-member"), "{etcd}");
    assert!(
        etcd["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .all(|h| { h["actions"].as_array().unwrap().iter().all(|a| a["action"] != "restart-unit") })
    );
    assert!(
        etcd["snapshot"]["dir"].as_str().unwrap().ends_with("backups"),
        "the snapshot is a step of the plan: {etcd}"
    );
    let text_plan = String::from_utf8_lossy(&provision(&["plan", inv]).stdout).into_owned();
    assert!(text_plan.contains("Rolling restarts"), "{text_plan}");
    assert!(text_plan.contains("etcd first: etcd snapshot to "), "{text_plan}");
    assert!(text_plan.contains(&format!("etcd 3/3 {leader}: move etcd leadership to {}", order[0])), "{text_plan}");

    let starts: Vec<String> = (0..3).map(|i| unit_start(&lab, &addr(&lab, i), UNIT)).collect();
    let (out, wall, log) = run_while_probing(&changed, &["apply", inv]);
    let applied = text(&out);
    assert_eq!(code(&out), 0, "apply: {applied}");
    eprintln!(
        "rolling restart of 3 etcd members: wall {:.1}s; prober: {} samples, max members down at once {}, \
         samples with >=2 down {}, longest without a leader {:.2}s, went down: {:?}",
        wall.as_secs_f64(),
        log.samples,
        log.max_down,
        log.two_down,
        log.longest_leaderless.as_secs_f64(),
        log.went_down
    );
    let shown = ["rolling restart", "gate passed", "leadership", "snapshot saved", "↻ restart"];
    for line in applied.lines().filter(|l| shown.iter().any(|s| l.contains(s))) {
        eprintln!("  {line}");
    }
    assert!(log.samples >= 10, "the prober sampled too little: {log:?}");
    assert_eq!(log.two_down, 0, "two of three members were down at once: {log:?}");
    // The members restarted in the planned order: their new processes' start times (the
    // nspawn hosts share the kernel's monotonic clock) sort like the stages. (A follower
    // restarts in well under a sampling period, so the prober need not see each one down.)
    let mut started: Vec<(u64, String)> = (0..3)
        .map(|i| {
            let s = unit_start(&lab, &addr(&lab, i), UNIT);
            (s.split_whitespace().nth(1).unwrap().parse().unwrap(), format!("node{}", i + 1))
        })
        .collect();
    started.sort();
    let restart_order: Vec<&str> = started.iter().map(|(_, n)| n.as_str()).collect();
    assert_eq!(restart_order, order, "restart order: {started:?}");
    assert!(applied.contains("leadership moved from"), "{applied}");
    // The snapshot came first, to the path printed, and it verifies.
    let saved =
        applied.lines().find(|l| l.contains("etcd snapshot saved (verified): ")).unwrap_or_else(|| panic!("{applied}"));
    let path = saved.split("(verified): ").nth(1).unwrap().split(" (").next().unwrap();
    assert!(applied.find(saved).unwrap() < applied.find("rolling restart 1/3").unwrap(), "{applied}");
    let out = provision(&["etcd", "verify", path]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    for (i, before) in starts.iter().enumerate() {
        assert_ne!(&unit_start(&lab, &addr(&lab, i), UNIT), before, "node{} did not restart", i + 1);
        assert!(etcd_cmdline(&lab, i).lines().any(|l| l == "--quota-backend-bytes=3221225472"), "node{}", i + 1);
    }
    let (rt, mut client) = etcd_client_rt(&changed);
    let got = rt.block_on(client.get("rollout/before", None)).unwrap();
    assert_eq!(got.kvs().first().map(|kv| kv.value().to_vec()), Some(b"kept".to_vec()));
    assert_eq!(plan_json(inv).0, 0, "converged after the rollout");

    // --no-backup: the same kind of rollout without a snapshot.
    let snapshots = || std::fs::read_dir(std::path::Path::new(path).parent().unwrap()).unwrap().count();
    let before = snapshots();
    let text_now = std::fs::read_to_string(&changed).unwrap().replace("3221225472", "3221225473");
    std::fs::write(&changed, text_now).unwrap();
    let out = provision(&["apply", "--no-backup", inv]);
    assert_eq!(code(&out), 0, "apply --no-backup: {}", text(&out));
    assert!(!text(&out).contains("snapshot saved"), "{}", text(&out));
    assert!(text(&out).contains("rolling restart 3/3"), "{}", text(&out));
    assert_eq!(snapshots(), before, "--no-backup took a snapshot");
}

/// Item 5 on the lab: etcd 3.4.23 (Debian bookworm's, preinstalled) -> 3.5.16 (Debian
/// trixie's, fetched by scripts/fetch-etcd-trixie and used as an `artifacts.etcd =
/// "directory"` source) in place: the members restart one at a time behind their gates, a
/// prober never sees two of three down, every member then reports 3.5.16, the cluster
/// version becomes 3.5, data written before is read after, and the next plan is empty.
#[test]
fn etcd_upgrades_in_place_from_3_4_to_3_5_one_member_at_a_time() {
    use std::time::{Duration, Instant};
    let lab = ensure_fresh_for_tests().expect("lab up");
    let out = provision(&["apply", lab.inventory.to_str().unwrap()]);
    assert_eq!(code(&out), 0, "apply: {}", text(&out));

    let tmp = tempfile::tempdir().unwrap();
    let bins = fetch_etcd_3_5(tmp.path());
    let upgraded = inventory_copy(&lab, tmp.path(), |t| to_etcd_3_5(t, &bins));
    let inv = upgraded.to_str().unwrap();
    let (rt, mut client) = etcd_client_rt(&upgraded);
    rt.block_on(client.put("upgrade/before", "kept", None)).unwrap();
    drop(client);
    drop(rt);

    let (status, plan) = plan_json(inv);
    assert_eq!(status, 2, "{plan}");
    let etcd = plan["phases"].as_array().unwrap().iter().find(|p| p["phase"] == "etcd").unwrap();
    let stages: Vec<&str> = etcd["stages"].as_array().unwrap().iter().map(|s| s["host"].as_str().unwrap()).collect();
    assert_eq!(stages.len(), 3, "one stage per member: {etcd}");
    let gates: Vec<&Value> = etcd["stages"].as_array().unwrap().iter().map(|s| &s["gate"]["cluster_version"]).collect();
    assert_eq!(gates, [&Value::Null, &Value::Null, &Value::from("3.5")], "the last gate waits for the cluster version");

    let (out, wall, log) = run_while_probing(&upgraded, &["apply", inv]);
    assert_eq!(code(&out), 0, "apply: {}", text(&out));
    assert!(text(&out).contains("quorum held, cluster version 3.5"), "apply's last gate: {}", text(&out));
    eprintln!(
        "etcd 3.4.23 -> 3.5.16 on 3 members: wall {:.1}s; prober: {} samples, max members down at once {}, \
         samples with >=2 down {}, longest without a leader {:.2}s",
        wall.as_secs_f64(),
        log.samples,
        log.max_down,
        log.two_down,
        log.longest_leaderless.as_secs_f64()
    );
    assert!(log.samples >= 10, "the prober sampled too little: {log:?}");
    assert_eq!(log.two_down, 0, "two of three members were down at once: {log:?}");

    // Every member runs 3.5.16 from /usr/local/bin; the cluster version follows once all are.
    let EtcdAccess { members, creds, pki_dir } = etcd_access(&upgraded);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let h = rt.block_on(provision::etcd::health::check(&members, &creds, Default::default()));
    assert_eq!(h.healthy_count(), 3, "{}", h.summary());
    for m in &h.members {
        assert_eq!(m.status.as_ref().map(|s| s.version.as_str()), Some("3.5.16"), "{m:?}");
    }
    for i in 0..3 {
        assert!(etcd_cmdline(&lab, i).starts_with("/usr/local/bin/etcd\n"), "node{}", i + 1);
    }
    let cluster_version = || {
        let out = std::process::Command::new("curl")
            .arg("-sS")
            .arg("--cacert")
            .arg(pki_dir.join("etcd-ca.crt"))
            .arg("--cert")
            .arg(pki_dir.join("apiserver-etcd-client.crt"))
            .arg("--key")
            .arg(pki_dir.join("apiserver-etcd-client.key"))
            .arg(format!("https://{}:2379/version", addr(&lab, 0)))
            .output()
            .expect("curl (scripts/debian-deps installs it)");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // The leader raises the cluster version on its own schedule: wait generously, report the time.
    let t = Instant::now();
    let mut seen = cluster_version();
    while !seen.contains("\"etcdcluster\":\"3.5.") && t.elapsed() < Duration::from_secs(300) {
        std::thread::sleep(Duration::from_secs(1));
        seen = cluster_version();
    }
    eprintln!("cluster version after {:.1}s: {seen}", t.elapsed().as_secs_f64());
    assert!(seen.contains("\"etcdserver\":\"3.5.16\"") && seen.contains("\"etcdcluster\":\"3.5."), "{seen}");

    let (rt2, mut client) = etcd_client_rt(&upgraded);
    let got = rt2.block_on(client.get("upgrade/before", None)).unwrap();
    assert_eq!(got.kvs().first().map(|kv| kv.value().to_vec()), Some(b"kept".to_vec()));
    assert_eq!(plan_json(inv).0, 0, "converged after the upgrade");
    drop(rt);
}

/// A failed gate stops the rollout at that host, names it and the reason, leaves the
/// later hosts running their old process; the next apply (once the cause is gone)
/// continues and converges.
#[test]
fn a_failed_stage_stops_the_rollout_and_the_next_apply_continues() {
    let lab = ensure_fresh_for_tests().expect("lab up");
    let out = provision(&["apply", lab.inventory.to_str().unwrap()]);
    assert_eq!(code(&out), 0, "apply: {}", text(&out));
    let tmp = tempfile::tempdir().unwrap();
    let changed = inventory_copy(&lab, tmp.path(), |t| t + "\n[etcd]\nquota_backend_bytes = 3221225472\n");
    let inv = changed.to_str().unwrap();
    let (_, plan) = plan_json(inv);
    let etcd = plan["phases"].as_array().unwrap().iter().find(|p| p["phase"] == "etcd").unwrap();
    let order: Vec<String> =
        etcd["stages"].as_array().unwrap().iter().map(|s| s["host"].as_str().unwrap().into()).collect();
    assert_eq!(order.len(), 3, "{etcd}");
    let index = |name: &str| name.trim_start_matches("node").parse::<usize>().unwrap() - 1;

    // The first host of the rollout cannot start etcd any more (an operator's drop-in).
    let first = index(&order[0]);
    let breaker = "/etc/systemd/system/etcd.service.d/99-broken.conf";
    ssh_ok(
        &lab,
        &addr(&lab, first),
        &format!("printf '[Service]\\nExecStartPre=/bin/false\\n' > {breaker}; systemctl daemon-reload"),
    );
    let starts: Vec<String> = (0..3).map(|i| unit_start(&lab, &addr(&lab, i), UNIT)).collect();
    let out = provision(&["apply", "--no-backup", inv]);
    let all = text(&out);
    assert_eq!(code(&out), 1, "{all}");
    assert!(all.contains(&format!("rolling restart stopped at stage 1/3 on {}", order[0])), "{all}");
    assert!(all.contains(&format!("not restarted: {}, {}", order[1], order[2])), "{all}");
    for later in &order[1..] {
        let i = index(later);
        assert_eq!(unit_start(&lab, &addr(&lab, i), UNIT), starts[i], "{later} was restarted after the failed stage");
    }
    eprintln!("failed stage reported as: {}", all.lines().find(|l| l.contains("stopped at stage")).unwrap_or_default());

    // Cause removed: the next apply restarts the failed member and rolls the other two.
    ssh_ok(&lab, &addr(&lab, first), &format!("rm -f {breaker}; systemctl daemon-reload"));
    let out = provision(&["apply", "--no-backup", inv]);
    assert_eq!(code(&out), 0, "second apply: {}", text(&out));
    assert!(text(&out).contains("rolling restart 2/2"), "the two untouched members roll: {}", text(&out));
    for i in 0..3 {
        assert!(etcd_cmdline(&lab, i).lines().any(|l| l == "--quota-backend-bytes=3221225472"), "node{}", i + 1);
    }
    assert_eq!(plan_json(inv).0, 0, "converged");
    assert!(!leader_now(&changed).is_empty());
}

/// apply SIGKILLed at random points of rollouts: the prober never sees two members down
/// (a member still starting makes the next stage wait), and the next apply converges.
#[test]
fn killed_rollouts_converge_without_losing_quorum() {
    use rand::Rng;
    use std::process::{Command, Stdio};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let lab = ensure_fresh_for_tests().expect("lab up");
    let out = provision(&["apply", lab.inventory.to_str().unwrap()]);
    assert_eq!(code(&out), 0, "apply: {}", text(&out));
    let tmp = tempfile::tempdir().unwrap();
    let changed = inventory_copy(&lab, tmp.path(), |t| t + "\n[etcd]\nquota_backend_bytes = 3000000000\n");
    let inv = changed.to_str().unwrap().to_string();
    let (rt, mut client) = etcd_client_rt(&changed);
    rt.block_on(client.put("rollout/killed", "kept", None)).unwrap();
    drop((client, rt));

    let stop = Arc::new(AtomicBool::new(false));
    let probe = {
        let (changed, stop) = (changed.clone(), stop.clone());
        std::thread::spawn(move || prober(changed, stop))
    };
    // The prober reads the PKI first (under its lock): let it, before apply does.
    std::thread::sleep(std::time::Duration::from_millis(500));
    let mut rng = rand::thread_rng();
    let mut delays = Vec::new();
    // Members restarted by each killed apply before its kill (0..3: where the kill landed).
    let mut restarted = Vec::new();
    for round in 1..=4u64 {
        // A new quota each round: every member has a restart pending again.
        let text_now = std::fs::read_to_string(&changed).unwrap();
        let quota = format!("quota_backend_bytes = {}", 3000000000u64 + round);
        let text_now = text_now
            .lines()
            .map(|l| if l.starts_with("quota_backend_bytes") { quota.clone() } else { l.to_string() })
            .collect::<Vec<_>>()
            .join("\n");
        std::fs::write(&changed, text_now + "\n").unwrap();
        // Planning (connect, facts, etcd status) takes ~1-2 s on the lab: kill inside the rollout.
        let delay = rng.gen_range(1200..4500);
        delays.push(delay);
        let before: Vec<String> = (0..3).map(|i| unit_start(&lab, &addr(&lab, i), UNIT)).collect();
        let mut child = Command::new(provision_bin())
            .args(["apply", "--no-backup", &inv])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay));
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        let moved = (0..3).filter(|i| unit_start(&lab, &addr(&lab, *i), UNIT) != before[*i]).count();
        restarted.push(moved);
    }
    let out = provision(&["apply", "--no-backup", &inv]);
    let finished = text(&out);
    std::thread::sleep(std::time::Duration::from_millis(500));
    stop.store(true, Ordering::SeqCst);
    let log = probe.join().unwrap();
    eprintln!(
        "killed rollouts: kills after {delays:?} ms, members restarted before each kill {restarted:?}; prober: {} samples, max members down at once {}, \
         samples with >=2 down {}, longest without a leader {:.2}s",
        log.samples,
        log.max_down,
        log.two_down,
        log.longest_leaderless.as_secs_f64()
    );
    assert_eq!(code(&out), 0, "the apply after the kills: {finished}");
    assert_eq!(log.two_down, 0, "two of three members down at once: {log:?}");
    assert!(log.samples >= 20, "{log:?}");
    for i in 0..3 {
        assert!(etcd_cmdline(&lab, i).lines().any(|l| l == "--quota-backend-bytes=3000000004"), "node{}", i + 1);
    }
    assert_eq!(plan_json(&inv).0, 0, "converged");
    let (rt, mut client) = etcd_client_rt(&changed);
    let got = rt.block_on(client.get("rollout/killed", None)).unwrap();
    assert_eq!(got.kvs().first().map(|kv| kv.value().to_vec()), Some(b"kept".to_vec()));
}

/// Benchmark (prints figures, asserts only correctness): the rolling restart of the three
/// members by `apply` (with and without its snapshot) against the floor: restart one
/// member over ssh and wait until all three are healthy, three times.
/// `cargo test --release --test rollout_lab -- --ignored --nocapture bench_`
#[test]
#[ignore]
fn bench_rolling_restart_against_the_floor() {
    use std::time::{Duration, Instant};
    let lab = ensure_fresh_for_tests().expect("lab up");
    let out = provision(&["apply", lab.inventory.to_str().unwrap()]);
    assert_eq!(code(&out), 0, "apply: {}", text(&out));
    let tmp = tempfile::tempdir().unwrap();
    let changed = inventory_copy(&lab, tmp.path(), |t| t + "\n[etcd]\nquota_backend_bytes = 3000000000\n");
    let inv = changed.to_str().unwrap().to_string();

    let EtcdAccess { members, creds, .. } = etcd_access(&changed);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let healthy_all = |limit: Duration| {
        let t = Instant::now();
        while t.elapsed() < limit {
            if rt.block_on(provision::etcd::health::check(&members, &creds, Default::default())).healthy_count() == 3 {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("etcd not healthy within {limit:?}");
    };
    let mut floors = Vec::new();
    for i in 0..3 {
        let t = Instant::now();
        ssh_ok(&lab, &addr(&lab, i), "systemctl restart etcd.service");
        healthy_all(Duration::from_secs(60));
        floors.push(t.elapsed().as_secs_f64());
    }
    drop(rt);
    let floor: f64 = floors.iter().sum();

    let mut runs = Vec::new();
    for (round, args) in
        [vec!["apply", "--no-verify", "--no-backup"], vec!["apply", "--no-verify"]].into_iter().enumerate()
    {
        let text_now = std::fs::read_to_string(&changed).unwrap().replace(
            &format!("quota_backend_bytes = {}", 3000000000u64 + round as u64),
            &format!("quota_backend_bytes = {}", 3000000001u64 + round as u64),
        );
        std::fs::write(&changed, text_now).unwrap();
        let mut argv = args.clone();
        argv.push(&inv);
        let (out, wall, log) = run_while_probing(&changed, &argv);
        let wall = wall.as_secs_f64();
        assert_eq!(code(&out), 0, "{}", text(&out));
        assert_eq!(log.two_down, 0, "{log:?}");
        runs.push((args.join(" "), wall, log));
    }
    // The 3.4 -> 3.5 upgrade, measured the same way (binaries pushed, 3 gated stages, the
    // last one waiting for the cluster version).
    let bins = fetch_etcd_3_5(tmp.path());
    let text_now = to_etcd_3_5(std::fs::read_to_string(&changed).unwrap(), &bins);
    std::fs::write(&changed, text_now).unwrap();
    let (out, wall, log) = run_while_probing(&changed, &["apply", "--no-verify", &inv]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert_eq!(log.two_down, 0, "{log:?}");
    runs.push(("apply --no-verify (etcd 3.4.23 -> 3.5.16)".to_string(), wall.as_secs_f64(), log));
    eprintln!("floor (ssh restart + wait healthy, x3): {floor:.2}s ({floors:.2?})");
    for (what, wall, log) in &runs {
        eprintln!(
            "`provision {what}` (plan + snapshot? + 3 gated stages): {wall:.2}s = {:.2}x floor; prober {} samples, \
             max down {}, longest without a leader {:.2}s",
            wall / floor,
            log.samples,
            log.max_down,
            log.longest_leaderless.as_secs_f64()
        );
    }
}
