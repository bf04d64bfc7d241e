//! Benchmark: `provision verify` wall time on the lab (3 nspawn hosts, etcd 3.4), whole
//! runs through the binary and each group of checks alone through the library.
//!
//! Run (as root; holds the lab's test lock, brings the lab up and applies it first):
//!   cargo build --release --locked --bin provision
//!   cargo run --release --locked --example verify_bench [-- RUNS]
//!
//! Prints figures; asserts nothing. Target: a whole verify under 3 s for 3 hosts.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use provision::verify::{self, Group, Options};

fn provision_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/examples/verify_bench -> target/<profile>/provision
    let bin = exe.parent().and_then(Path::parent).map(|d| d.join("provision")).expect("target dir");
    assert!(bin.exists(), "{} missing: run `cargo build --locked --bin provision` (same profile) first", bin.display());
    bin
}

fn stats(v: &mut [f64]) -> String {
    v.sort_by(|a, b| a.total_cmp(b));
    format!("min {:.2}s  median {:.2}s  max {:.2}s", v[0], v[v.len() / 2], v[v.len() - 1])
}

fn main() {
    let runs: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(5).max(1);
    let lab = provision::lab::ensure_up_for_tests().expect("lab up");
    let inventory = lab.inventory.to_str().expect("utf-8 path").to_string();
    let bin = provision_bin();
    let apply = Command::new(&bin).args(["apply", "--no-verify", &inventory]).output().expect("apply");
    assert!(apply.status.success(), "apply failed: {}", String::from_utf8_lossy(&apply.stderr));

    println!("provision verify on the lab: 3 hosts, etcd 3.4.23, {runs} runs ({})", bin.display());
    let mut walls = Vec::new();
    let mut own = Vec::new();
    for _ in 0..runs {
        let start = Instant::now();
        let out = Command::new(&bin).args(["--output", "json", "verify", &inventory]).output().expect("verify");
        walls.push(start.elapsed().as_secs_f64());
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json report");
        own.push(report["seconds"].as_f64().unwrap_or(f64::NAN));
        if out.status.code() != Some(0) {
            println!("  note: a run exited {:?} ({} failed)", out.status.code(), report["failed"]);
        }
    }
    println!("  whole run (process wall time): {}", stats(&mut walls));
    println!("  whole run (verify's own clock): {}", stats(&mut own));

    let loaded = provision::inventory::load(Path::new(&inventory)).expect("inventory");
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    println!("  each group alone (library, includes SSH connects where the group needs them):");
    for g in [
        Group::Etcd,
        Group::Tls,
        Group::Encryption,
        Group::Snapshot,
        Group::Units,
        Group::Files,
        Group::Cis,
        Group::Rbac,
    ] {
        let opts = Options { timeout: Duration::from_secs(5), only: Some(BTreeSet::from([g])) };
        let mut times = Vec::new();
        let mut checks = 0;
        for _ in 0..runs.min(3) {
            let start = Instant::now();
            let report = rt.block_on(verify::run(&loaded, &opts)).expect("verify runs");
            times.push(start.elapsed().as_secs_f64());
            checks = report.checks.len();
        }
        println!("    {:<11} {checks:>2} checks  {}", format!("{g:?}"), stats(&mut times));
    }
}
