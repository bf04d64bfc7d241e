//! Benchmark (prints figures, asserts only correctness): cold apply, no-op re-apply and
//! plan on the lab hosts, against the floor of a plain parallel OpenSSH
//! `ssh host sha256sum <managed files>` loop measured in the same run; then the same on
//! 9 hosts to show how the cost grows.
//!
//! cargo test --release --locked --test bench_apply_lab -- --ignored --nocapture
//! (BENCH_9_HOSTS=0 skips the 9-host part.)

#[path = "support/lab_cli.rs"]
mod lab_cli;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use lab_cli::*;
use provision::desired::DesiredState;
use provision::lab::{Lab, Progress, TestLab, UpOptions, ensure_fresh_for_tests};

const RUNS: usize = 7;

fn timed(args: &[&str], want: i32) -> Duration {
    let t = Instant::now();
    let out = provision(args);
    let d = t.elapsed();
    assert_eq!(code(&out), want, "{args:?}: {}", text(&out));
    d
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:>6.0} ms", d.as_secs_f64() * 1000.0)
}

/// The floor: every host's managed files hashed by OpenSSH, all hosts in parallel.
fn floor_once(key: &Path, known_hosts: &Path, desired: &DesiredState, addresses: &[String]) -> Duration {
    let t = Instant::now();
    let children: Vec<_> = desired
        .hosts
        .iter()
        .zip(addresses)
        .map(|(h, a)| {
            let paths: Vec<&str> = h.files.iter().map(|f| f.path.as_str()).collect();
            Command::new("ssh")
                .args(["-i", key.to_str().unwrap(), "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes"])
                .arg("-o")
                .arg(format!("UserKnownHostsFile={}", known_hosts.display()))
                .arg(format!("root@{a}"))
                .arg(format!("sha256sum {}", paths.join(" ")))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    t.elapsed()
}

struct Figures {
    hosts: usize,
    files: usize,
    cold: Duration,
    noop: Duration,
    noop_verify: Duration,
    plan: Duration,
    floor: Duration,
}

fn measure(inventory: &Path, key: &Path, known_hosts: &Path, addresses: &[String]) -> Figures {
    let inv = inventory.to_str().unwrap();
    let desired = desired(inventory);
    // --no-verify: these figures are about finding and making changes; the verify run at
    // the end of an apply is measured on its own (`with verify`).
    let cold = timed(&["apply", "--no-verify", inv], 0);
    let mut noop = Vec::new();
    let mut noop_verify = Vec::new();
    let mut plan = Vec::new();
    let mut floor = Vec::new();
    // Interleaved, so background load on this shared machine hits all three alike.
    for _ in 0..RUNS {
        noop.push(timed(&["apply", "--no-verify", inv], 0));
        noop_verify.push(timed(&["apply", inv], 0));
        plan.push(timed(&["plan", inv], 0));
        floor.push(floor_once(key, known_hosts, &desired, addresses));
    }
    let out = provision(&["apply", "--no-verify", inv]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("0 changes: hosts are up to date"), "{}", text(&out));
    Figures {
        hosts: addresses.len(),
        files: desired.hosts.iter().map(|h| h.files.len()).sum(),
        cold,
        noop: median(noop),
        noop_verify: median(noop_verify),
        plan: median(plan),
        floor: median(floor),
    }
}

fn print(f: &Figures) {
    println!(
        "{} hosts ({} managed files): cold apply {} | no-op apply {} (with verify {}) | plan {} | floor (parallel ssh sha256sum) {} | no-op/floor {:.2}x",
        f.hosts,
        f.files,
        ms(f.cold),
        ms(f.noop),
        ms(f.noop_verify),
        ms(f.plan),
        ms(f.floor),
        f.noop.as_secs_f64() / f.floor.as_secs_f64()
    );
}

#[test]
#[ignore = "benchmark: run with --ignored --nocapture (uses the lab hosts)"]
fn bench_apply_on_lab_hosts() {
    let lab: TestLab = ensure_fresh_for_tests().expect("lab up");
    let addresses: Vec<String> = lab.hosts.iter().map(|h| h.address.to_string()).collect();
    let three = measure(&lab.inventory, &lab.key, &lab.known_hosts, &addresses);
    print(&three);

    if std::env::var("BENCH_9_HOSTS").as_deref() == Ok("0") {
        return;
    }
    // 9 etcd members: the same work per host as the 3-host run.
    let tmp = tempfile::tempdir().unwrap();
    let nine = tmp.path().join("lab9.toml");
    let mut nine_hosts = std::fs::read_to_string(&lab.inventory).unwrap();
    for i in 4..=9 {
        nine_hosts.push_str(&format!("\n[[host]]\nname = \"node{i}\"\naddress = \"127.0.1.{i}\"\nroles = [\"etcd\"]\n"));
    }
    std::fs::write(&nine, nine_hosts).unwrap();
    let status = Command::new("cp").arg("-a").arg(lab.inventory.parent().unwrap().join(".provision")).arg(tmp.path()).status().unwrap();
    assert!(status.success());
    let report = provision::lab::up(&Lab::system(), &UpOptions { hosts: 9, inventory: nine.clone() }, &Progress::for_stderr())
        .expect("lab up --hosts 9");
    let addresses: Vec<String> = report.hosts.iter().map(|h| h.host.address.to_string()).collect();
    // Members 1-3 hold the 3-member cluster: start all 9 from scratch.
    let out = provision(&["reset", "--yes", "--purge-data", nine.to_str().unwrap()]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let figures = measure(&nine, &report.key, &report.known_hosts, &addresses);
    print(&figures);
    println!(
        "growth 3 -> 9 hosts: no-op apply x{:.2}, plan x{:.2}, cold apply x{:.2} (linear would be x3)",
        figures.noop.as_secs_f64() / three.noop.as_secs_f64(),
        figures.plan.as_secs_f64() / three.plan.as_secs_f64(),
        figures.cold.as_secs_f64() / three.cold.as_secs_f64()
    );
    // Leave the lab as other tests expect it: 3 fresh hosts next time.
    provision::lab::destroy(&Lab::system(), false, &Progress::for_stderr()).expect("lab destroy");
}
