//! plan / apply / reset against the REAL lab hosts (systemd-nspawn Debian with systemd and
//! sshd on 127.0.1.1-3), through the real `provision` binary. Each test holds the lab's
//! test lock, so they run one at a time (also against other helpers' lab tests).
//!
//! Needs root and `provision lab` prerequisites (systemd-container, debootstrap, zstd).

#[path = "support/lab_cli.rs"]
mod lab_cli;

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::Duration;

use provision::lab::{TestLab, ensure_fresh_for_tests, ensure_up_for_tests};
use rand::Rng;
use serde_json::Value;
use lab_cli::*;

const UNIT: &str = "etcd.service";
const UNIT_FILE: &str = "/etc/systemd/system/etcd.service";

fn inv(lab: &TestLab) -> &str {
    lab.inventory.to_str().unwrap()
}

fn addr(lab: &TestLab, i: usize) -> String {
    lab.hosts[i].address.to_string()
}


/// (host, action kind, target) of every action in a plan (rolling stages included).
fn actions(plan: &Value) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for phase in plan["phases"].as_array().unwrap() {
        for h in phase["hosts"].as_array().unwrap().iter().chain(phase["stages"].as_array().unwrap()) {
            for a in h["actions"].as_array().unwrap() {
                let target = ["path", "unit", "name"].iter().find_map(|k| a[*k].as_str()).unwrap_or("systemd");
                out.push((h["host"].as_str().unwrap().into(), a["action"].as_str().unwrap().into(), target.into()));
            }
        }
    }
    out
}

fn apply_ok(inventory: &str) -> String {
    let out = provision(&["apply", inventory]);
    assert_eq!(code(&out), 0, "apply: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn assert_etcd_healthy(inventory: &std::path::Path) {
    let h = etcd_health(inventory);
    assert_eq!(h.verdict, provision::etcd::health::Verdict::Healthy, "{}: {:?}", h.summary(), h.members);
    assert_eq!(h.healthy_count(), 3);
}

#[test]
fn apply_then_reapply_repair_and_reset() {
    let lab = ensure_fresh_for_tests().expect("lab up");
    let inventory = inv(&lab);
    let desired = desired(&lab.inventory);
    let before = listing(&lab, &desired);

    // Fresh hosts: changes pending.
    let (status, plan) = plan_json(inventory);
    assert_eq!(status, 2, "{plan}");
    assert_eq!(plan["kind"], "apply");
    assert!(plan["changes"].as_u64().unwrap() > 10, "{plan}");
    let dump = plan.to_string();
    assert!(!dump.contains("PRIVATE KEY"), "the plan leaks key material");
    for h in plan["hosts"].as_array().unwrap() {
        assert!(h["problems"].as_array().unwrap().is_empty(), "{h}");
        assert_eq!(h["systemd"].as_u64().unwrap() >= 232, true, "{h}");
    }

    let out = apply_ok(inventory);
    assert!(out.contains("changes made"), "{out}");
    assert_etcd_healthy(&lab.inventory);
    assert_eq!(temp_files(&lab, &desired), "");
    // Every managed file holds exactly the desired bytes, mode and owner.
    for (i, h) in desired.hosts.iter().enumerate() {
        for f in &h.files {
            let got = ssh_ok(&lab, &addr(&lab, i), &format!("sha256sum '{0}' | cut -d' ' -f1; stat -c '%a %U:%G' '{0}'", f.path));
            assert_eq!(got, format!("{}\n{:o} {}:{}\n", f.sha256_hex(), f.mode, f.owner, f.group), "{} on {}", f.path, h.host);
        }
    }

    // Converged: plan exits 0, apply changes nothing and says so.
    let (status, plan) = plan_json(inventory);
    assert_eq!(status, 0, "{plan}");
    assert_eq!(plan["changes"], 0);
    let starts: Vec<String> = (0..3).map(|i| unit_start(&lab, &addr(&lab, i), UNIT)).collect();
    let out = apply_ok(inventory);
    assert!(out.contains("0 changes: hosts are up to date"), "{out}");
    let again: Vec<String> = (0..3).map(|i| unit_start(&lab, &addr(&lab, i), UNIT)).collect();
    assert_eq!(starts, again, "a no-op apply restarted etcd");

    // By hand: node2's unit file edited (content), node3's server key made 0644 (mode only).
    ssh_ok(&lab, &addr(&lab, 1), &format!("echo '# edited by hand' >> {UNIT_FILE}"));
    ssh_ok(&lab, &addr(&lab, 2), "chmod 0644 /etc/etcd/pki/server.key");
    let (status, plan) = plan_json(inventory);
    assert_eq!(status, 2, "{plan}");
    let got: BTreeSet<_> = actions(&plan).into_iter().collect();
    let want: BTreeSet<(String, String, String)> = [
        ("node2", "write-file", UNIT_FILE),
        ("node2", "daemon-reload", "systemd"),
        ("node2", "restart-unit", UNIT),
        ("node3", "write-file", "/etc/etcd/pki/server.key"),
    ]
    .iter()
    .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
    .collect();
    assert_eq!(got, want, "{plan}");
    let text_plan = String::from_utf8_lossy(&provision(&["plan", inventory]).stdout).into_owned();
    assert!(text_plan.contains(&format!("↻ restart {UNIT} (watched file changed: {UNIT_FILE})")), "{text_plan}");
    assert!(text_plan.contains("~ update /etc/etcd/pki/server.key (mode"), "{text_plan}");

    apply_ok(inventory);
    let after: Vec<String> = (0..3).map(|i| unit_start(&lab, &addr(&lab, i), UNIT)).collect();
    assert_eq!(after[0], starts[0], "node1's etcd must not restart");
    assert_ne!(after[1], starts[1], "node2's etcd must restart (its unit file changed)");
    assert_eq!(after[2], starts[2], "node3's etcd must not restart for a mode fix");
    assert_eq!(ssh_ok(&lab, &addr(&lab, 2), "stat -c %a /etc/etcd/pki/server.key"), "600\n");
    assert_eq!(plan_json(inventory).0, 0);
    assert_etcd_healthy(&lab.inventory);

    // Reset: refused without a TTY unless --yes; then the hosts are as before.
    let out = provision(&["reset", inventory]);
    assert_eq!(code(&out), 1, "{}", text(&out));
    assert!(text(&out).contains("--yes"), "{}", text(&out));
    let out = provision(&["reset", "--yes", "--purge-data", inventory]);
    assert_eq!(code(&out), 0, "reset: {}", text(&out));
    let after = listing(&lab, &desired);
    assert_eq!(normalise_data_dir(&before), normalise_data_dir(&after));
    let out = provision(&["reset", "--yes", "--purge-data", inventory]);
    assert_eq!(code(&out), 0, "second reset: {}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("nothing to remove"), "{}", text(&out));
}

/// Polls the etcd health until `done` holds, or fails the test after `limit`.
fn wait_for_health(
    lab: &TestLab,
    limit: Duration,
    what: &str,
    done: impl Fn(&provision::etcd::health::ClusterHealth) -> bool,
) -> provision::etcd::health::ClusterHealth {
    let deadline = std::time::Instant::now() + limit;
    loop {
        let h = etcd_health(&lab.inventory);
        if done(&h) {
            return h;
        }
        assert!(std::time::Instant::now() < deadline, "{what}: not within {limit:?}: {}", h.summary());
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The etcd leader SIGKILLed: the other two elect a new leader, systemd restarts the
/// killed member (Restart=on-failure) and it rejoins. A member stopped by hand is seen by
/// `plan` and started again by `apply`.
#[test]
fn killed_leader_is_replaced_and_brought_back() {
    use provision::etcd::health::Verdict;
    let lab = ensure_fresh_for_tests().expect("lab up");
    let inventory = inv(&lab);
    apply_ok(inventory);
    let old = etcd_health(&lab.inventory).leader.expect("a leader after apply");
    let li = lab.hosts.iter().position(|h| h.name == old).expect("the leader is a lab host");
    let pid = || ssh_ok(&lab, &addr(&lab, li), "systemctl show -p MainPID --value etcd.service");
    let pid_before = pid();
    ssh_ok(&lab, &addr(&lab, li), "systemctl kill --signal=SIGKILL etcd.service");

    let h = wait_for_health(&lab, Duration::from_secs(30), "a new leader", |h| {
        h.quorum && h.leader.as_ref().is_some_and(|l| *l != old)
    });
    eprintln!("killed leader {old}; new leader {}", h.leader.as_deref().unwrap_or("?"));
    wait_for_health(&lab, Duration::from_secs(60), "systemd brings the killed member back", |h| {
        h.verdict == Verdict::Healthy && h.healthy_count() == 3
    });
    assert_ne!(pid(), pid_before, "a new etcd process on {old}");

    ssh_ok(&lab, &addr(&lab, li), "systemctl stop etcd.service");
    let (status, plan) = plan_json(inventory);
    assert_eq!(status, 2, "{plan}");
    let start = (old.clone(), "start-unit".to_string(), UNIT.to_string());
    assert_eq!(actions(&plan), vec![start], "only the stopped member is started: {plan}");
    apply_ok(inventory);
    assert_etcd_healthy(&lab.inventory);
    assert_eq!(plan_json(inventory).0, 0);
}

/// The etcd data dir may exist before the first apply (the Debian package makes it);
/// --purge-data removes it. Every other line must match exactly.
fn normalise_data_dir(listing: &str) -> String {
    listing.lines().filter(|l| !l.starts_with("/var/lib/etcd ")).collect::<Vec<_>>().join("\n")
}

#[test]
fn killed_applies_converge() {
    let lab = ensure_fresh_for_tests().expect("lab up");
    let inventory = inv(&lab);
    let desired = desired(&lab.inventory);
    let mut rng = rand::thread_rng();
    // Kill inside the execution, not while still connecting: offset the random delay by
    // what computing the plan takes on this machine.
    let t = std::time::Instant::now();
    let (status, plan) = plan_json(inventory);
    assert_eq!(status, 2, "{plan}");
    let planning = t.elapsed().as_millis() as u64;
    let mut remaining = vec![plan["changes"].as_u64().unwrap()];
    for run in 0..5 {
        let delay = planning + rng.gen_range(50..=1500);
        let mut child = Command::new(provision_bin())
            .args(["apply", inventory])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay));
        let finished = child.try_wait().unwrap().is_some();
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        let (_, plan) = plan_json(inventory);
        remaining.push(plan["changes"].as_u64().unwrap());
        eprintln!(
            "run {run}: SIGKILL after {delay} ms{}; changes still pending: {}",
            if finished { " (it had already finished)" } else { "" },
            remaining.last().unwrap()
        );
    }
    eprintln!("pending changes after each kill: {remaining:?}");
    // Ctrl-C (SIGINT): the steps in flight finish, the run stops with 130.
    let child = Command::new(provision_bin())
        .args(["apply", inventory])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(rng.gen_range(300..=800)));
    let st = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(st.success());
    let out = child.wait_with_output().unwrap();
    match code(&out) {
        130 => assert!(text(&out).contains("interrupted"), "{}", text(&out)),
        0 => eprintln!("the SIGINT run finished before the signal"),
        other => panic!("SIGINT: exit {other}: {}", text(&out)),
    }
    eprintln!("SIGINT run: exit {}", code(&out));

    let out = apply_ok(inventory);
    eprintln!("converging apply:\n{out}");
    assert_eq!(temp_files(&lab, &desired), "", "temp files left behind");
    let (status, plan) = plan_json(inventory);
    assert_eq!(status, 0, "not converged: {plan}");
    assert_etcd_healthy(&lab.inventory);
    for (i, h) in desired.hosts.iter().enumerate() {
        let got = ssh_ok(&lab, &addr(&lab, i), &format!("systemctl is-active {UNIT}; systemctl is-enabled {UNIT}"));
        assert_eq!(got, "active\nenabled\n", "{}", h.host);
    }
}

#[test]
fn wrong_host_key_is_refused() {
    let lab = ensure_up_for_tests().expect("lab up");
    let tmp = tempfile::tempdir().unwrap();
    let inventory = inventory_copy(&lab, tmp.path(), |t| t);
    // Replace node1's pinned key by another (freshly generated) one.
    let key = tmp.path().join("bogus");
    let st = Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-f"]).arg(&key).status().unwrap();
    assert!(st.success());
    let bogus = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    let bogus: Vec<&str> = bogus.split_whitespace().take(2).collect();
    let kh = tmp.path().join(".provision/lab/known_hosts");
    let pins = std::fs::read_to_string(&kh).unwrap();
    let replaced: Vec<String> = pins
        .lines()
        .map(|l| if l.starts_with("127.0.1.1 ") { format!("127.0.1.1 {} {}", bogus[0], bogus[1]) } else { l.to_string() })
        .collect();
    assert_ne!(pins.lines().collect::<Vec<_>>(), replaced, "node1 is pinned in {}", kh.display());
    std::fs::write(&kh, replaced.join("\n") + "\n").unwrap();

    let out = provision(&["plan", inventory.to_str().unwrap()]);
    let all = text(&out);
    assert_eq!(code(&out), 1, "{all}");
    assert!(all.contains("HOST KEY CHANGED"), "{all}");
    assert!(all.contains("node1"), "{all}");
    assert!(all.contains("cannot plan for node1"), "{all}");
}

#[test]
fn unreachable_host_fails_while_the_others_finish_the_phase() {
    let lab = ensure_up_for_tests().expect("lab up");
    let tmp = tempfile::tempdir().unwrap();
    // 127.0.1.250: no lab host there, nothing listens (connection refused).
    let inventory = inventory_copy(&lab, tmp.path(), |t| {
        t + "\n[[host]]\nname = \"node4\"\naddress = \"127.0.1.250\"\nroles = [\"worker\"]\n"
    });
    // A stale temp file on node1: the preflight phase has work to do there.
    ssh_ok(&lab, &addr(&lab, 0), "touch /etc/etcd/pki/.provision-tmp.planted 2>/dev/null || (mkdir -p /etc/etcd/pki && touch /etc/etcd/pki/.provision-tmp.planted)");

    let out = provision(&["--output", "json", "apply", inventory.to_str().unwrap()]);
    assert_eq!(code(&out), 1, "{}", text(&out));
    let events: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let kinds: Vec<&str> = events.iter().map(|e| e["event"].as_str().unwrap()).collect();
    let err = events.iter().find(|e| e["event"] == "host-error").expect("host-error event");
    assert_eq!(err["host"], "node4");
    assert!(err["error"].as_str().unwrap().contains("cannot reach"), "{err}");
    assert!(
        events.iter().any(|e| e["event"] == "action-done" && e["host"] == "node1" && e["action"]["action"] == "remove-stale-temp"),
        "node1 did not finish preflight: {kinds:?}"
    );
    assert!(!events.iter().any(|e| e["event"] == "phase-start" && e["phase"] == "base"), "the run went past preflight: {kinds:?}");
    let summary = events.last().unwrap();
    assert_eq!(summary["event"], "summary");
    assert_eq!(summary["failed_hosts"], serde_json::json!(["node4"]));
    assert_eq!(ssh_ok(&lab, &addr(&lab, 0), "ls -a /etc/etcd/pki | grep -c provision-tmp || true"), "0\n");
}

#[test]
fn a_sudo_user_works() {
    let lab = ensure_up_for_tests().expect("lab up");
    let tmp = tempfile::tempdir().unwrap();
    let inventory = inventory_copy(&lab, tmp.path(), |t| t.replace("user = \"root\"", "user = \"ops\""));
    let inventory = inventory.to_str().unwrap();
    assert_ne!(ssh_ok(&lab, &addr(&lab, 0), "id -u ops"), "0\n");

    apply_ok(inventory);
    assert_eq!(plan_json(inventory).0, 0);
    ssh_ok(&lab, &addr(&lab, 0), "echo tampered > /etc/etcd/pki/ca.crt");
    let (status, plan) = plan_json(inventory);
    assert_eq!(status, 2, "{plan}");
    assert!(actions(&plan).contains(&("node1".into(), "write-file".into(), "/etc/etcd/pki/ca.crt".into())), "{plan}");
    apply_ok(inventory);
    assert_eq!(plan_json(inventory).0, 0);
    // The copied inventory has its own state dir (its own etcd CA): check with its PKI.
    assert_etcd_healthy(std::path::Path::new(inventory));
}

/// `etcd.backup_schedule` end to end through the normal path: plan shows the timer, service
/// and script; apply installs them and the timer is active; starting the service by hand
/// writes a snapshot the script verified (trial restore) and our own verifier accepts;
/// retention keeps the configured number; reset removes the timer and its files and keeps
/// the snapshots.
#[test]
fn scheduled_backups_are_installed_by_apply_verified_pruned_and_reset() {
    let lab = ensure_up_for_tests().expect("lab up");
    let tmp = tempfile::tempdir().unwrap();
    let inventory = inventory_copy(&lab, tmp.path(), |t| {
        format!("{t}\n[etcd]\nbackup_schedule = \"*-*-* 00/6:00:00\"\nbackup_retention = 2\n")
    });
    let inventory = inventory.to_str().unwrap();
    const TIMER: &str = "etcd-backup.timer";
    const FILES: [&str; 3] =
        ["/etc/systemd/system/etcd-backup.timer", "/etc/systemd/system/etcd-backup.service", "/usr/local/sbin/etcd-backup"];

    let (status, plan) = plan_json(inventory);
    assert_eq!(status, 2, "{plan}");
    let acts = actions(&plan);
    for host in ["node1", "node2", "node3"] {
        for f in FILES {
            assert!(acts.contains(&(host.into(), "write-file".into(), f.into())), "{host} {f} not in the plan: {acts:?}");
        }
        assert!(acts.iter().any(|(h, _, t)| h == host && t == TIMER), "{host}: the timer is not started by the plan: {acts:?}");
    }

    apply_ok(inventory);
    for i in 0..3 {
        let state = ssh_ok(&lab, &addr(&lab, i), &format!("systemctl is-enabled {TIMER}; systemctl is-active {TIMER}"));
        assert_eq!(state, "enabled\nactive\n", "node{}", i + 1);
    }
    let analyzed = ssh(&lab, &addr(&lab, 0), "root", &format!("systemd-analyze verify {} {}", FILES[1], FILES[0]));
    assert!(analyzed.status.success(), "systemd-analyze verify: {}", text(&analyzed));
    assert_eq!(plan_json(inventory).0, 0, "converged after apply");

    // Three runs by hand (names have one-second resolution), retention 2.
    let node1 = addr(&lab, 0);
    for _ in 0..3 {
        let run = ssh(&lab, &node1, "root", "systemctl start etcd-backup.service");
        let log = ssh(&lab, &node1, "root", "journalctl -u etcd-backup.service --no-pager -n 20");
        assert!(run.status.success(), "etcd-backup.service failed: {}\n{}", text(&run), text(&log));
        std::thread::sleep(Duration::from_millis(1100));
    }
    let journal = ssh_ok(&lab, &node1, "journalctl -u etcd-backup.service --no-pager -o cat");
    assert_eq!(journal.matches("verified by a trial restore").count(), 3, "{journal}");
    let listing = ssh_ok(&lab, &node1, "ls -la /var/backups/etcd; stat -c '%U:%G %a' /var/backups/etcd");
    let snaps: Vec<&str> = listing.lines().filter(|l| l.ends_with(".db")).collect();
    assert_eq!(snaps.len(), 2, "retention 2 after three runs: {listing}");
    assert!(snaps.iter().all(|l| l.starts_with("-rw-------") && l.contains(" etcd etcd ")), "{listing}");
    assert!(!listing.contains(".verify-") && !listing.contains(".partial"), "scratch left behind: {listing}");
    assert!(listing.contains("etcd:etcd 700"), "{listing}");

    // Our own verifier accepts what the host wrote (sha256 trailer, bbolt structure).
    let newest = ssh_ok(&lab, &node1, "ls -1 /var/backups/etcd/lab-*-rev*.db | sort | tail -n1");
    let bytes = ssh(&lab, &node1, "root", &format!("cat {}", newest.trim())).stdout;
    let copy = tmp.path().join(std::path::Path::new(newest.trim()).file_name().unwrap());
    std::fs::write(&copy, &bytes).unwrap();
    let info = provision::etcd::snapshot_file::verify(&copy, provision::etcd::snapshot_file::Depth::Full)
        .expect("the host's snapshot verifies");
    assert!(newest.trim().ends_with(&format!("-rev{}.db", info.revision)), "{newest} vs revision {}", info.revision);

    // A corrupted snapshot is refused by the script's check, and nothing is kept from it:
    // the trial restore runs on a bit-flipped copy of the newest.
    let flipped = ssh(
        &lab,
        &node1,
        "root",
        &format!(
            "cp {n} /tmp/flipped.db && printf '\\377' | dd of=/tmp/flipped.db bs=1 seek=5000 conv=notrunc status=none \
             && ETCDCTL_API=3 etcdctl snapshot restore /tmp/flipped.db --data-dir /tmp/flipped.d",
            n = newest.trim()
        ),
    );
    assert!(!flipped.status.success(), "a bit-flipped snapshot passed the trial restore: {}", text(&flipped));

    // Reset removes the timer and its files, and keeps the snapshots (data).
    let out = provision(&["reset", inventory, "--yes"]);
    assert_eq!(code(&out), 0, "reset: {}", text(&out));
    for f in FILES {
        assert_eq!(ssh_ok(&lab, &node1, &format!("test -e {f} && echo present || echo gone")), "gone\n", "{f}");
    }
    let kept = ssh_ok(&lab, &node1, "ls -1 /var/backups/etcd | grep -c '\\.db$'");
    assert_eq!(kept, "2\n", "reset keeps the snapshots");
}
