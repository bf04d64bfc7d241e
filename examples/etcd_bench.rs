//! Benchmark: `provision etcd backup` and `provision etcd health` against etcdctl, on a
//! real local 3-member etcd 3.4 cluster (127.0.3.1-3, mTLS) filled to ~500 MB.
//!
//! Run (release, after building the binary it measures):
//!   cargo build --release --locked --bin provision
//!   cargo run --release --locked --example etcd_bench [-- MB]
//!
//! Prints figures; asserts nothing. Targets: backup throughput >= 0.9x etcdctl's
//! `snapshot save` (ours includes the health check that picks a member, the sha256 check
//! while streaming, and the re-read verification after writing), health wall time <= 1x
//! `etcdctl endpoint health --cluster` + `etcdctl endpoint status --cluster`.

#[path = "../tests/support/local_etcd.rs"]
mod local_etcd;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use provision::etcd::connect::connect;
use provision::etcd::credentials::ClientCredentials;
use provision::etcd::members;

fn provision_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    // target/release/examples/etcd_bench -> target/release/provision
    let bin = exe.parent().and_then(Path::parent).map(|d| d.join("provision")).expect("target dir");
    assert!(bin.exists(), "{} missing: run `cargo build --release --locked --bin provision` first", bin.display());
    bin
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn timed(cmd: &mut Command) -> (Duration, std::process::Output) {
    let start = Instant::now();
    let out = cmd.output().expect("run command");
    (start.elapsed(), out)
}

fn main() {
    let target_mb: u64 = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(500);
    let bin = provision_bin();
    eprintln!("starting a local 3-member etcd 3.4 cluster on 127.0.3.1-3 ...");
    let c = local_etcd::LocalEtcd::start("bench", 22879, 22880);
    let inv = c.load_inventory();
    let ms = members(&inv);
    let creds =
        ClientCredentials::from_files(&c.ca_file, &c.client_cert_file, &c.client_key_file).expect("credentials");

    // Fill: 100 kB values, 10 per transaction (1 MB < etcd's 1.5 MiB request limit),
    // 4 writers in parallel.
    let fill_start = Instant::now();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let total_txns = target_mb; // 1 MB each
    rt.block_on(async {
        let writers = 4u64;
        let mut tasks = Vec::new();
        for w in 0..writers {
            let m = ms[(w as usize) % ms.len()].clone();
            let creds = creds.clone();
            tasks.push(tokio::spawn(async move {
                let mut client = connect(&m, &creds, Duration::from_secs(30)).await.expect("connect").client;
                let value: Vec<u8> = (0..100_000u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
                let mut t = w;
                while t < total_txns {
                    let ops: Vec<etcd_client::TxnOp> = (0..10)
                        .map(|k| {
                            let mut v = value.clone();
                            v[..8].copy_from_slice(&(t * 10 + k).to_be_bytes());
                            etcd_client::TxnOp::put(format!("/bench/{t:06}/{k}"), v, None)
                        })
                        .collect();
                    client.txn(etcd_client::Txn::new().and_then(ops)).await.expect("txn");
                    t += writers;
                }
            }));
        }
        for t in tasks {
            t.await.expect("writer");
        }
    });
    let status = rt.block_on(async {
        let mut cl = connect(&ms[0], &creds, Duration::from_secs(10)).await.expect("connect").client;
        cl.status().await.expect("status")
    });
    println!(
        "filled: {} MB of values in {:.1}s; db size {} bytes ({:.0} MB)",
        target_mb,
        fill_start.elapsed().as_secs_f64(),
        status.db_size(),
        status.db_size() as f64 / 1e6
    );

    // The follower our backup prefers is any non-leader; give etcdctl a follower too.
    let leader = status.leader();
    let follower_endpoint = {
        let mut ep = c.endpoint(0);
        for (i, m) in ms.iter().enumerate() {
            let mut cl = rt.block_on(connect(m, &creds, Duration::from_secs(10))).expect("connect").client;
            let s = rt.block_on(cl.status()).expect("status");
            if s.header().map(|h| h.member_id()) != Some(leader) {
                ep = c.endpoint(i);
                break;
            }
        }
        ep
    };

    let out_dir = c.dir.path().join("bench-backups");
    let ctl_file = c.dir.path().join("etcdctl.db");
    let mut ours_tp = Vec::new();
    let mut ctl_tp = Vec::new();
    let mut ours_s = Vec::new();
    let mut ctl_s = Vec::new();
    for round in 1..=3 {
        let _ = std::fs::remove_file(&ctl_file);
        let (t_ctl, out) = timed(Command::new(local_etcd::ETCDCTL_BIN).env("ETCDCTL_API", "3").args([
            &format!("--endpoints={follower_endpoint}"),
            &format!("--cacert={}", c.ca_file.display()),
            &format!("--cert={}", c.client_cert_file.display()),
            &format!("--key={}", c.client_key_file.display()),
            "--command-timeout=600s",
            "snapshot",
            "save",
            ctl_file.to_str().expect("utf-8"),
        ]));
        assert!(out.status.success(), "etcdctl snapshot save: {}", String::from_utf8_lossy(&out.stderr));
        let ctl_size = std::fs::metadata(&ctl_file).expect("etcdctl file").len();

        let _ = std::fs::remove_dir_all(&out_dir);
        let (t_ours, out) = timed(Command::new(&bin).args([
            "--output",
            "json",
            "etcd",
            "backup",
            c.inventory().to_str().expect("utf-8"),
            &format!("--out={}", out_dir.display()),
            "--keep=1",
            "--timeout=60s",
        ]));
        assert!(out.status.success(), "provision etcd backup: {}", String::from_utf8_lossy(&out.stderr));
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        let size = report["size"].as_u64().expect("size");
        let tp_ours = size as f64 / t_ours.as_secs_f64() / 1e6;
        let tp_ctl = ctl_size as f64 / t_ctl.as_secs_f64() / 1e6;
        println!(
            "backup round {round}: provision {:.2}s ({size} bytes, {tp_ours:.0} MB/s, member {}, of which re-read verification {:.2}s) | etcdctl snapshot save {:.2}s ({ctl_size} bytes, {tp_ctl:.0} MB/s) | ratio {:.2}x",
            t_ours.as_secs_f64(),
            report["member"].as_str().unwrap_or("?"),
            report["verify_seconds"].as_f64().unwrap_or(f64::NAN),
            t_ctl.as_secs_f64(),
            tp_ours / tp_ctl
        );
        ours_tp.push(tp_ours);
        ctl_tp.push(tp_ctl);
        ours_s.push(t_ours.as_secs_f64());
        ctl_s.push(t_ctl.as_secs_f64());
    }
    let (mo, mc) = (median(ours_tp), median(ctl_tp));
    println!(
        "backup median: provision {:.2}s = {mo:.0} MB/s, etcdctl {:.2}s = {mc:.0} MB/s, ratio {:.2}x (target >= 0.90x)",
        median(ours_s),
        median(ctl_s),
        mo / mc
    );

    let endpoints = c.endpoint(0);
    let ctl = |args: &[&str]| {
        let mut cmd = Command::new(local_etcd::ETCDCTL_BIN);
        cmd.env("ETCDCTL_API", "3").args([
            &format!("--endpoints={endpoints}"),
            &format!("--cacert={}", c.ca_file.display()),
            &format!("--cert={}", c.client_cert_file.display()),
            &format!("--key={}", c.client_key_file.display()),
        ]);
        cmd.args(args);
        cmd
    };
    let mut ours_h = Vec::new();
    let mut ctl_h = Vec::new();
    for round in 1..=5 {
        let (t1, o1) = timed(&mut ctl(&["endpoint", "health", "--cluster"]));
        let (t2, o2) = timed(&mut ctl(&["endpoint", "status", "--cluster", "-w", "table"]));
        assert!(o1.status.success() && o2.status.success(), "etcdctl health/status failed");
        let (t_ours, out) = timed(Command::new(&bin).args(["etcd", "health", c.inventory().to_str().expect("utf-8")]));
        assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
        let ctl_total = (t1 + t2).as_secs_f64();
        println!(
            "health round {round}: provision etcd health {:.0} ms | etcdctl endpoint health --cluster {:.0} ms + endpoint status --cluster {:.0} ms = {:.0} ms | ratio {:.2}x",
            t_ours.as_secs_f64() * 1e3,
            t1.as_secs_f64() * 1e3,
            t2.as_secs_f64() * 1e3,
            ctl_total * 1e3,
            t_ours.as_secs_f64() / ctl_total
        );
        ours_h.push(t_ours.as_secs_f64());
        ctl_h.push(ctl_total);
    }
    let (ho, hc) = (median(ours_h), median(ctl_h));
    println!(
        "health median: provision {:.0} ms, etcdctl health+status {:.0} ms, ratio {:.2}x (target <= 1.00x)",
        ho * 1e3,
        hc * 1e3,
        ho / hc
    );
}
