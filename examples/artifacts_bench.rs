//! Figures for the binaries' path through a plan, with release-sized files served from a
//! loopback mirror: cold download + verify, warm cache (re-verify only), and what the
//! plan's sha256 comparisons cost for three control-plane hosts (digests remembered from
//! verification, versus hashing every host's copy).
//!
//! `cargo run --release --example artifacts_bench` (debug builds hash ~10x slower).
//! ARTIFACTS_BENCH_SCALE=0.1 shrinks every file (default 1.0: ~530 MB in all).

#[path = "../tests/support/mirror.rs"]
mod mirror;

use std::collections::BTreeMap;
use std::time::Instant;

use mirror::{ETCD, Mirror};
use provision::artifacts::{self, Arch, Options, Progress, elf, etcd_tarball, sha256_hex};

/// Sizes of the linux/amd64 v1.34 binaries and etcd 3.5 (MB, rounded).
const SIZES_MB: &[(&str, f64)] = &[
    ("kube-apiserver", 97.0),
    ("kube-controller-manager", 90.0),
    ("kube-scheduler", 66.0),
    ("kubectl", 60.0),
    ("kubelet", 82.0),
    ("kube-proxy", 70.0),
    ("etcd", 24.0),
    ("etcdctl", 18.0),
    ("etcdutl", 16.0),
];

fn body(name: &str, bytes: usize) -> Vec<u8> {
    // Not compressible (like real binaries), deterministic.
    let mut state = name.bytes().fold(0x9e37_79b9_7f4a_7c15u64, |h, b| h.rotate_left(5) ^ u64::from(b));
    let mut out = Vec::with_capacity(bytes);
    while out.len() < bytes {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(bytes);
    elf::fake_binary(Arch::Amd64, &out)
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

fn main() -> anyhow::Result<()> {
    let scale: f64 = std::env::var("ARTIFACTS_BENCH_SCALE").ok().and_then(|s| s.parse().ok()).unwrap_or(1.0);
    let m = Mirror::start();
    let mut etcd_members = Vec::new();
    let mut total = 0u64;
    for (name, size) in SIZES_MB {
        let bytes = body(name, (size * scale * 1e6) as usize);
        total += bytes.len() as u64;
        if name.starts_with("etcd") {
            etcd_members.push((name.to_string(), bytes));
        } else {
            m.put(&Mirror::k8s_path(Arch::Amd64, &format!("{name}.sha256")), sha256_hex(&bytes).into_bytes());
            m.put(&Mirror::k8s_path(Arch::Amd64, name), bytes);
        }
    }
    let refs: Vec<(&str, &[u8])> = etcd_members.iter().map(|(n, b)| (n.as_str(), b.as_slice())).collect();
    let tgz = etcd_tarball::build(&format!("etcd-v{ETCD}-linux-amd64"), &refs)?;
    let tar_name = format!("etcd-v{ETCD}-linux-amd64.tar.gz");
    m.put(&Mirror::etcd_path("SHA256SUMS"), format!("{}  {tar_name}\n", sha256_hex(&tgz)).into_bytes());
    m.put(&Mirror::etcd_path(&tar_name), tgz);

    let dir = tempfile::tempdir()?;
    let inv = dir.path().join("bench.toml");
    let hosts: String = (1..=3)
        .map(|i| format!("[[host]]\nname = \"cp{i}\"\naddress = \"10.0.0.{i}\"\nroles = [\"etcd\", \"control-plane\"]\n"))
        .collect();
    std::fs::write(
        &inv,
        format!(
            "[cluster]\nname = \"bench\"\nkubernetes_version = \"{}\"\netcd_version = \"{ETCD}\"\napi_endpoint = \"10.0.0.1\"\n\
             service_cidr = \"10.32.0.0/24\"\npod_cidr = \"10.200.0.0/16\"\n[artifacts]\ncache_dir = \"cache\"\n\
             kubernetes_base_url = \"{}\"\netcd_base_url = \"{}\"\n{hosts}",
            mirror::K8S,
            m.k8s_base(),
            m.etcd_base()
        ),
    )?;
    let loaded = provision::inventory::load(&inv).map_err(|d| anyhow::anyhow!("{d}"))?;
    let arches: BTreeMap<String, Arch> = (1..=3).map(|i| (format!("cp{i}"), Arch::Amd64)).collect();
    let opts = Options { progress: Progress::silent(), ..Options::default() };

    println!("binaries: {:.0} MB in all (scale {scale})", mb(total));
    let t = Instant::now();
    let a = artifacts::resolve_with(&loaded, &arches, &opts)?;
    let cold = t.elapsed().as_secs_f64();
    println!("cold: download + verify + extract   {cold:7.2} s  ({:.0} MB/s)", mb(total) / cold);

    let t = Instant::now();
    let warm_a = artifacts::resolve_with(&loaded, &arches, &opts)?;
    let warm = t.elapsed().as_secs_f64();
    println!("warm: cache re-verify + extract     {warm:7.2} s  ({:.0} MB/s), {} requests", mb(total) / warm, m.hit_count());
    drop(warm_a);

    // What the plan's diff does: a sha256 per desired file per host, twice (compare, action).
    let files: Vec<_> = loaded.inventory.hosts.iter().flat_map(|h| artifacts::files_for(&a, h)).collect();
    let t = Instant::now();
    for _ in 0..2 {
        for f in &files {
            std::hint::black_box(f.sha256_hex());
        }
    }
    let memo = t.elapsed().as_secs_f64();
    let t = Instant::now();
    for _ in 0..2 {
        for f in &files {
            std::hint::black_box(sha256_hex(&f.content));
        }
    }
    let plain = t.elapsed().as_secs_f64();
    let mut unique: Vec<*const Vec<u8>> = files.iter().map(|f| std::sync::Arc::as_ptr(&f.content)).collect();
    unique.sort();
    unique.dedup();
    let unique_bytes: u64 = unique
        .iter()
        .filter_map(|p| files.iter().find(|f| std::sync::Arc::as_ptr(&f.content) == *p))
        .map(|f| f.content.len() as u64)
        .sum();
    let all_bytes: u64 = files.iter().map(|f| f.content.len() as u64).sum::<u64>() * 2;
    println!(
        "plan: sha256 of {} host files, x2:  {memo:7.2} s with the digests from verification ({:.0} MB of distinct content), {plain:.2} s hashing each ({:.0} MB)",
        files.len(),
        mb(unique_bytes),
        mb(all_bytes)
    );
    Ok(())
}
