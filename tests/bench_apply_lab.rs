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

/// The host counts of `var` ("10,30"), or `default` when it is not set.
fn host_counts(var: &str, default: &str) -> Vec<usize> {
    std::env::var(var).unwrap_or_else(|_| default.into()).split(',').filter_map(|n| n.trim().parse().ok()).collect()
}

/// A scratch directory holding a copy of the lab's state (PKI, keys): grown inventories
/// beside it share the lab's CA.
fn state_copy(lab: &TestLab) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let status = Command::new("cp")
        .arg("-a")
        .arg(lab.inventory.parent().unwrap().join(".provision"))
        .arg(tmp.path())
        .status()
        .unwrap();
    assert!(status.success());
    tmp
}

/// `text` (the lab inventory) with workers node4..node`n`, written to `path`, and the lab
/// grown to `n` hosts for it; returns the hosts' addresses and the lab's SSH files.
fn grow_lab(path: &Path, text: &str, n: usize) -> (Vec<String>, std::path::PathBuf, std::path::PathBuf) {
    let mut text = text.to_string();
    for i in 4..=n {
        text.push_str(&format!("\n[[host]]\nname = \"node{i}\"\naddress = \"127.0.1.{i}\"\nroles = [\"worker\"]\n"));
    }
    std::fs::write(path, text).unwrap();
    let t = Instant::now();
    let report = provision::lab::up(
        &Lab::system(),
        &UpOptions { hosts: n as u32, inventory: path.to_path_buf() },
        &Progress::for_stderr(),
    )
    .unwrap_or_else(|e| panic!("lab up --hosts {n}: {e:#}"));
    println!("lab up to {n} hosts: {:.1}s", t.elapsed().as_secs_f64());
    (report.hosts.iter().map(|h| h.host.address.to_string()).collect(), report.key, report.known_hosts)
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
    measure_with(inventory, &[], key, known_hosts, addresses)
}

/// `extra`: arguments for every apply and plan (`--templates DIR`). With extra arguments
/// the `with verify` figure is not taken (it stays 0): see `bench_noop_apply_with_runtime_workers`.
fn measure_with(inventory: &Path, extra: &[&str], key: &Path, known_hosts: &Path, addresses: &[String]) -> Figures {
    let inv = inventory.to_str().unwrap();
    let args = |cmd: &[&str]| -> Vec<String> { cmd.iter().chain(extra).chain([&inv]).map(|s| s.to_string()).collect() };
    let run = |cmd: &[&str]| -> Duration {
        let a = args(cmd);
        timed(&a.iter().map(String::as_str).collect::<Vec<_>>(), 0)
    };
    let desired = desired(inventory);
    // --no-verify: these figures are about finding and making changes; the verify run at
    // the end of an apply is measured on its own (`with verify`).
    let cold = run(&["apply", "--no-verify"]);
    let mut noop = Vec::new();
    let mut noop_verify = Vec::new();
    let mut plan = Vec::new();
    let mut floor = Vec::new();
    // Interleaved, so background load on this shared machine hits all three alike.
    for _ in 0..RUNS {
        noop.push(run(&["apply", "--no-verify"]));
        noop_verify.push(if extra.is_empty() { run(&["apply"]) } else { Duration::ZERO });
        plan.push(run(&["plan"]));
        floor.push(floor_once(key, known_hosts, &desired, addresses));
    }
    let a = args(&["apply", "--no-verify"]);
    let out = provision(&a.iter().map(String::as_str).collect::<Vec<_>>());
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
        if f.noop_verify.is_zero() { "   n/a".to_string() } else { ms(f.noop_verify) },
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
    let sizes = host_counts("BENCH_HOSTS", "10,30");
    let tmp = state_copy(&lab);
    let lab_text = std::fs::read_to_string(&lab.inventory).unwrap();
    for n in sizes {
        let inventory = tmp.path().join(format!("lab{n}.toml"));
        let (addresses, key, known_hosts) = grow_lab(&inventory, &lab_text, n);
        let figures = measure(&inventory, &key, &known_hosts, &addresses);
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

/// Stand-ins for the two runtime units the nspawn lab hosts cannot run (docs/runtime.md):
/// they share this machine's kernel (no modprobe, read-only /proc/sys/net) and its routing
/// table (the pod routes would change this machine's). Same unit shape, so apply installs,
/// enables and starts them like the real ones; the files and units to compare stay the same.
const LAB_STAND_INS: [(&str, &str); 2] = [
    ("provision-k8s-kernel.service", "the lab hosts share this machine's kernel"),
    ("provision-pod-routes.service", "the lab hosts share this machine's routing table"),
];

fn stand_in_templates(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    for (unit, why) in LAB_STAND_INS {
        let text = format!(
            "# Benchmark stand-in ({why}).\n[Unit]\nDescription={unit} stand-in\nBefore=containerd.service\n\n\
             [Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/bin/true\n\n[Install]\nWantedBy=multi-user.target\n"
        );
        std::fs::write(dir.join(unit), text).unwrap();
    }
}

/// The no-op apply of a cluster with workers: every host (3 etcd + control-plane, the
/// rest workers) carries the runtime tier (artifacts.runtime = "preinstalled": the lab
/// image's containerd, runc and CNI plugins; containerd runs from the rendered config and
/// unit), so each worker holds managed files and running units. At 3, 10 and 30 hosts
/// (BENCH_RUNTIME_HOSTS), against the same parallel-ssh floor. Without `with verify`:
/// verify's runtime.pods rightly fails where no pod routes exist.
#[test]
#[ignore = "benchmark: run with --ignored --nocapture (uses the lab hosts)"]
fn bench_noop_apply_with_runtime_workers() {
    let lab: TestLab = ensure_fresh_for_tests().expect("lab up");
    let sizes = host_counts("BENCH_RUNTIME_HOSTS", "3,10,30");
    let tmp = state_copy(&lab);
    let templates = tmp.path().join("templates");
    stand_in_templates(&templates);
    let lab_text = std::fs::read_to_string(&lab.inventory).unwrap();
    let text = lab_text.replace("\netcd = \"preinstalled\"", "\netcd = \"preinstalled\"\nruntime = \"preinstalled\"");
    assert!(text.contains("runtime = \"preinstalled\""), "the lab inventory's [artifacts] changed: {text}");
    let mut first: Option<Figures> = None;
    for n in sizes {
        let inventory = tmp.path().join(format!("runtime{n}.toml"));
        let (addresses, key, known_hosts) = grow_lab(&inventory, &text, n);
        let extra = ["--templates", templates.to_str().unwrap()];
        let figures = measure_with(&inventory, &extra, &key, &known_hosts, &addresses);
        // The runtime really runs on every host: containerd from the rendered unit.
        for a in &addresses {
            let out = ssh_with(&key, &known_hosts, a, "root", "systemctl is-active containerd.service");
            assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "active", "{a}: containerd");
        }
        println!("with the runtime tier on every host:");
        print(&figures);
        if let Some(base) = &first {
            println!(
                "growth {} -> {n} hosts: no-op apply x{:.2}, plan x{:.2}, floor x{:.2} (hosts x{:.1}, files x{:.1})",
                base.hosts,
                figures.noop.as_secs_f64() / base.noop.as_secs_f64(),
                figures.plan.as_secs_f64() / base.plan.as_secs_f64(),
                figures.floor.as_secs_f64() / base.floor.as_secs_f64(),
                n as f64 / base.hosts as f64,
                figures.files as f64 / base.files as f64
            );
        } else {
            first = Some(figures);
        }
    }
    provision::lab::destroy(&Lab::system(), false, &Progress::for_stderr()).expect("lab destroy");
}
