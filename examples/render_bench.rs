//! Render benchmark (prints figures; not a test).
//!
//!     cargo run --release --locked --example render_bench
//!
//! cold: fresh state directory, so every key and certificate is generated, then render
//!       and write the tree (what a first `provision render` does);
//! warm: the state directory exists, the PKI is loaded and reused; a new output directory;
//! again: warm, into the previous output directory (every file already up to date).
//! Inventory: tests/fixtures/vagrant.toml (3 hosts, each etcd + control-plane + worker).
//! Wall-clock time depends on machine load; CPU time (this thread's time on a CPU, from
//! /proc/thread-self/schedstat) much less, so both are printed, per phase.

use std::path::Path;
use std::time::{Duration, Instant};

use provision::inventory::Inventory;
use provision::render::{Templates, output::write_tree, render};
use provision::state::StateDir;

const PHASES: [&str; 5] = ["parse", "pki", "templates", "render", "write"];

/// Nanoseconds this thread has spent on a CPU.
fn cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|n| n.parse().ok()))
        .unwrap_or(0)
}

#[derive(Default, Clone, Copy)]
struct Sample {
    wall: [Duration; 5],
    cpu: [Duration; 5],
}

fn once(inv_path: &Path, state: &StateDir, out: &Path) -> anyhow::Result<Sample> {
    let mut s = Sample::default();
    let mut mark = (Instant::now(), cpu_ns());
    let mut lap = |i: usize, s: &mut Sample| {
        let now = (Instant::now(), cpu_ns());
        s.wall[i] = now.0 - mark.0;
        s.cpu[i] = Duration::from_nanos(now.1.saturating_sub(mark.1));
        mark = now;
    };
    let inv: Inventory = toml::from_str(&std::fs::read_to_string(inv_path)?)?;
    lap(0, &mut s);
    let pki = provision::pki::ensure(&inv, state)?;
    lap(1, &mut s);
    let templates = Templates::embedded()?;
    lap(2, &mut s);
    let rendered = render(&inv, &pki, &templates)?;
    lap(3, &mut s);
    write_tree(&rendered, out)?;
    lap(4, &mut s);
    Ok(s)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn report(name: &str, samples: &[Sample]) {
    let total_wall: Vec<Duration> = samples.iter().map(|s| s.wall.iter().sum()).collect();
    let total_cpu: Vec<Duration> = samples.iter().map(|s| s.cpu.iter().sum()).collect();
    let min_wall = total_wall.iter().min().copied().unwrap_or_default();
    println!(
        "{name:<5} total: wall min {:>7.2} ms, median {:>7.2} ms | cpu median {:>7.2} ms",
        ms(min_wall),
        ms(median(total_wall.clone())),
        ms(median(total_cpu))
    );
    for (i, phase) in PHASES.iter().enumerate() {
        let w = median(samples.iter().map(|s| s.wall[i]).collect());
        let c = median(samples.iter().map(|s| s.cpu[i]).collect());
        println!("        {phase:<10} wall median {:>7.2} ms | cpu median {:>7.2} ms", ms(w), ms(c));
    }
}

fn main() -> anyhow::Result<()> {
    let inv_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/vagrant.toml");
    let runs = 15;
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("render benchmark: {} (3 hosts, all roles), {runs} runs", inv_path.display());
    println!("machine load average: {}", load.split_whitespace().take(3).collect::<Vec<_>>().join(" "));
    // State and output on the disk (as an operator runs it), then on tmpfs (to separate
    // what render computes from what the disk costs).
    let mut bases = vec![("disk", std::env::temp_dir())];
    if Path::new("/dev/shm").is_dir() {
        bases.push(("tmpfs", Path::new("/dev/shm").to_path_buf()));
    }
    for (label, base) in bases {
        let (mut cold, mut warm, mut again) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..runs {
            let tmp = tempfile::tempdir_in(&base)?;
            let state = StateDir::at(tmp.path().join("state"));
            cold.push(once(&inv_path, &state, &tmp.path().join("out-cold"))?);
            warm.push(once(&inv_path, &state, &tmp.path().join("out-warm"))?);
            // The same state rendered again into the same directory: nothing differs, so
            // nothing is written.
            again.push(once(&inv_path, &state, &tmp.path().join("out-warm"))?);
        }
        println!("-- state and output on {label} ({})", base.display());
        report("cold", &cold);
        report("warm", &warm);
        report("again", &again);
    }
    println!("targets: cold < 300 ms, warm < 50 ms");
    Ok(())
}
