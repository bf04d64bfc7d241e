//! Benchmark (prints figures, asserts only correctness): cold apply, no-op re-apply and
//! plan on the lab hosts, against the floor of a plain parallel OpenSSH
//! `ssh host sha256sum <managed files>` loop measured in the same run; then the same on
//! 10 and 30 hosts (3 etcd + control-plane, the rest workers) to show how the cost grows.
//!
//! cargo test --release --locked --test bench_apply_lab -- --ignored --nocapture
//! (BENCH_HOSTS="10,30" is the default; BENCH_HOSTS="" skips the growth part.)

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

    // Growth with the host count: the 3 etcd + control-plane hosts and workers up to 10
    // and 30 hosts (BENCH_HOSTS="10,30" by default; "" skips). With artifacts.kubernetes
    // = "skip" a worker holds no managed file: what grows is one SSH connection and one
    // facts round trip per host, the part of a no-op apply that scales with the fleet.
    let sizes: Vec<usize> = std::env::var("BENCH_HOSTS")
        .unwrap_or_else(|_| "10,30".into())
        .split(',')
        .filter_map(|n| n.trim().parse().ok())
        .collect();
    let tmp = tempfile::tempdir().unwrap();
    let status = Command::new("cp").arg("-a").arg(lab.inventory.parent().unwrap().join(".provision")).arg(tmp.path()).status().unwrap();
    assert!(status.success());
    for n in sizes {
        let inventory = tmp.path().join(format!("lab{n}.toml"));
        let mut text = std::fs::read_to_string(&lab.inventory).unwrap();
        for i in 4..=n {
            text.push_str(&format!("\n[[host]]\nname = \"node{i}\"\naddress = \"127.0.1.{i}\"\nroles = [\"worker\"]\n"));
        }
        std::fs::write(&inventory, text).unwrap();
        let t = Instant::now();
        let report =
            provision::lab::up(&Lab::system(), &UpOptions { hosts: n as u32, inventory: inventory.clone() }, &Progress::for_stderr())
                .unwrap_or_else(|e| panic!("lab up --hosts {n}: {e:#}"));
        println!("lab up to {n} hosts: {:.1}s", t.elapsed().as_secs_f64());
        let addresses: Vec<String> = report.hosts.iter().map(|h| h.host.address.to_string()).collect();
        let figures = measure(&inventory, &report.key, &report.known_hosts, &addresses);
        print(&figures);
        println!(
            "growth 3 -> {n} hosts: no-op apply x{:.2}, plan x{:.2}, floor x{:.2} (hosts x{:.1})",
            figures.noop.as_secs_f64() / three.noop.as_secs_f64(),
            figures.plan.as_secs_f64() / three.plan.as_secs_f64(),
            figures.floor.as_secs_f64() / three.floor.as_secs_f64(),
            n as f64 / 3.0
        );
    }
    // Leave the lab as other tests expect it: 3 fresh hosts next time.
    provision::lab::destroy(&Lab::system(), false, &Progress::for_stderr()).expect("lab destroy");
}
