//! `provision etcd health|backup|verify|restore`: the operator's etcd tools.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use serde::Serialize;

use super::output::{OutputFormat, print_json, table};
use super::{ExitCode, Failure};
use crate::etcd::backup::{self, BackupOptions};
use crate::etcd::credentials::ClientCredentials;
use crate::etcd::health::{self, ClusterHealth, HealthOptions};
use crate::etcd::snapshot_file::{self, Depth};
use crate::etcd::{Member, members};
use crate::inventory::Inventory;
use crate::state::StateDir;

#[derive(Debug, Args)]
pub struct EtcdArgs {
    #[command(subcommand)]
    pub command: EtcdCommand,
}

#[derive(Debug, Subcommand)]
pub enum EtcdCommand {
    /// Health and status of every member, probed in parallel.
    ///
    /// Exit status: 0 healthy (every member answers a linearizable read, has a leader and
    /// no alarm, membership as the inventory lists it); 1 degraded (quorum held, but a
    /// member is unreachable, leaderless or alarmed, or membership differs from the
    /// inventory); 2 no quorum (no member could serve a read). A slow member is a warning
    /// with its figure (exit 0): slowness measures the machine, not the cluster.
    Health(HealthArgs),
    /// Stream a snapshot from a healthy member (a follower if possible) to this machine.
    ///
    /// The file `<cluster>-<UTC time>-rev<revision>.db` keeps etcd's sha256 trailer (so
    /// `etcdctl snapshot restore` accepts it), is verified after writing, and is 0600.
    Backup(BackupArgs),
    /// Check a snapshot file: length, sha256 trailer and bbolt structure; print what it holds.
    Verify(VerifyArgs),
    /// Replace every member's data with a snapshot (disaster recovery), over SSH.
    ///
    /// Verifies the snapshot first, then plans the restore and shows the plan: kube-apiserver
    /// stopped where it runs; on every member the snapshot uploaded, etcd stopped, the data
    /// dir rebuilt with a new cluster token (the old one kept); etcd started on all members
    /// together, a wait for quorum; kube-apiserver started again; the uploads and old data
    /// dirs removed (--keep-previous keeps them). Asks for confirmation (--yes for scripts).
    /// A member failing to restore rolls every member back to its previous data.
    Restore(RestoreArgs),
}

/// The client identity; by default the PKI in the state directory beside the inventory.
#[derive(Debug, Args)]
pub struct TlsArgs {
    /// etcd CA certificate (instead of the PKI's etcd-ca.crt).
    #[arg(long, value_name = "FILE", requires_all = ["cert", "key"])]
    pub cacert: Option<PathBuf>,
    /// Client certificate signed by the etcd CA (instead of apiserver-etcd-client.crt).
    #[arg(long, value_name = "FILE", requires_all = ["cacert", "key"])]
    pub cert: Option<PathBuf>,
    /// Private key of --cert.
    #[arg(long, value_name = "FILE", requires_all = ["cacert", "cert"])]
    pub key: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct HealthArgs {
    /// The inventory file.
    pub inventory: PathBuf,
    /// Longest time one member may take to answer (e.g. 5s, 1500ms).
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// A member whose health read takes longer than this is reported slow, as a warning
    /// that does not change the exit status [default: 1s, or half the inventory's
    /// etcd.election_timeout_ms when that is longer].
    #[arg(long, value_parser = parse_duration)]
    pub slow: Option<Duration>,
    #[command(flatten)]
    pub tls: TlsArgs,
}

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// The inventory file.
    pub inventory: PathBuf,
    /// Directory for the snapshot (default: .provision/<cluster>/backups beside the inventory).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Keep the newest N snapshots of this cluster in the directory (default: etcd.backup_retention).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub keep: Option<u32>,
    /// Per-member deadline to answer, and longest pause allowed in the stream.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub timeout: Duration,
    #[command(flatten)]
    pub tls: TlsArgs,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The snapshot file.
    pub snapshot: PathBuf,
    /// Also read every value and compute etcdctl's hash (as `etcdctl snapshot status` prints it).
    #[arg(long)]
    pub full: bool,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The inventory file.
    pub inventory: PathBuf,
    /// The snapshot file (as written by `provision etcd backup` or `etcdctl snapshot save`).
    pub snapshot: PathBuf,
    /// Do not ask for confirmation (required when there is no terminal to ask on).
    #[arg(long)]
    pub yes: bool,
    /// Keep each member's previous data dir (<data_dir>.before-restore-<time>) after success.
    #[arg(long)]
    pub keep_previous: bool,
    /// How long the restored cluster may take to reach quorum.
    #[arg(long, default_value = "120s", value_parser = parse_duration)]
    pub quorum_timeout: Duration,
    /// Per-member deadline for health checks.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub timeout: Duration,
    #[command(flatten)]
    pub tls: TlsArgs,
}

pub fn run(args: EtcdArgs, format: OutputFormat) -> anyhow::Result<ExitCode> {
    match args.command {
        EtcdCommand::Health(a) => runtime()?.block_on(health_cmd(a, format)),
        EtcdCommand::Backup(a) => runtime()?.block_on(backup_cmd(a, format)),
        EtcdCommand::Verify(a) => verify_cmd(a, format),
        EtcdCommand::Restore(a) => super::etcd_restore::run(a, format),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// "5s", "1500ms", "2m" or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, "s"),
    };
    let n: f64 = num.parse().map_err(|_| format!("{s:?} is not a duration (use e.g. 5s or 1500ms)"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (use ms, s or m)")),
    };
    if !(secs > 0.0 && secs < 86_400.0) {
        return Err(format!("{s:?} must be more than 0 and less than a day"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// The inventory, parsed and validated (every problem reported with file:line, exit 2).
fn load_inventory(path: &Path, format: OutputFormat) -> anyhow::Result<Inventory> {
    Ok(super::validate::load_or_report(path, format)?.inventory)
}

/// The inventory's etcd members; an inventory without any is an input error.
pub(super) fn etcd_members(inventory: &Inventory, path: &Path) -> anyhow::Result<Vec<Member>> {
    let m = members(inventory);
    if m.is_empty() {
        return Err(Failure::new(
            ExitCode::INVALID,
            format!("inventory {}: no host has the \"etcd\" role", path.display()),
        )
        .into());
    }
    Ok(m)
}

pub(super) fn credentials(tls: &TlsArgs, inventory: &Inventory, inventory_path: &Path) -> anyhow::Result<ClientCredentials> {
    if let (Some(ca), Some(cert), Some(key)) = (&tls.cacert, &tls.cert, &tls.key) {
        return ClientCredentials::from_files(ca, cert, key);
    }
    let state = StateDir::beside(inventory_path, &inventory.cluster.name);
    ClientCredentials::from_state(&state.pki_dir())
}

async fn health_cmd(a: HealthArgs, format: OutputFormat) -> anyhow::Result<ExitCode> {
    let inventory = load_inventory(&a.inventory, format)?;
    let members = etcd_members(&inventory, &a.inventory)?;
    let creds = credentials(&a.tls, &inventory, &a.inventory)?;
    let mut opts = HealthOptions::for_cluster(&inventory, a.timeout);
    if let Some(slow) = a.slow {
        opts.slow_after = slow;
    }
    let report = health::check(&members, &creds, opts).await;
    match format {
        OutputFormat::Json => print_json(&report)?,
        OutputFormat::Text => print!("{}", render_health(&report)),
    }
    Ok(ExitCode(report.exit_code))
}

/// The table (like `etcdctl endpoint status --cluster -w table`, plus health and alarms),
/// then each member's problems, cluster notes and the verdict.
pub fn render_health(h: &ClusterHealth) -> String {
    let header = [
        "MEMBER",
        "ENDPOINT",
        "ID",
        "HEALTH",
        "TOOK",
        "LEADER",
        "VERSION",
        "DB SIZE",
        "IN USE",
        "RAFT TERM",
        "RAFT INDEX",
        "APPLIED",
        "LEARNER",
        "ALARMS",
    ];
    let dash = || "-".to_string();
    let rows = h
        .members
        .iter()
        .map(|m| {
            let s = m.status.as_ref();
            vec![
                m.name.clone(),
                m.endpoint.clone(),
                s.map(|s| s.id.clone()).unwrap_or_else(dash),
                m.health.to_string(),
                m.read_ms.map(|ms| format!("{ms}ms")).unwrap_or_else(dash),
                s.map(|s| s.is_leader.to_string()).unwrap_or_else(dash),
                s.map(|s| s.version.clone()).unwrap_or_else(dash),
                s.map(|s| human_bytes(s.db_size)).unwrap_or_else(dash),
                s.map(|s| human_bytes(s.db_size_in_use)).unwrap_or_else(dash),
                s.map(|s| s.raft_term.to_string()).unwrap_or_else(dash),
                s.map(|s| s.raft_index.to_string()).unwrap_or_else(dash),
                s.map(|s| s.raft_applied_index.to_string()).unwrap_or_else(dash),
                s.map(|s| s.is_learner.to_string()).unwrap_or_else(dash),
                if m.alarms.is_empty() { dash() } else { m.alarms.join(",") },
            ]
        })
        .collect();
    let mut out = table(&header, rows);
    out.push('\n');
    let mut extra = String::new();
    for m in &h.members {
        for p in &m.problems {
            extra.push_str(&format!("{} ({}): {p}\n", m.name, m.endpoint));
        }
    }
    for n in &h.notes {
        extra.push_str(&format!("note: {n}\n"));
    }
    for w in &h.warnings {
        extra.push_str(&format!("warning: {w}\n"));
    }
    if !extra.is_empty() {
        out.push('\n');
        out.push_str(&extra);
    }
    out.push('\n');
    out.push_str(&h.summary());
    out.push('\n');
    out
}

/// Sizes as etcdctl prints them (SI units: kB, MB, GB).
pub fn human_bytes(n: i64) -> String {
    let mut v = n as f64;
    for unit in ["B", "kB", "MB", "GB", "TB"] {
        if v < 1000.0 || unit == "TB" {
            return if unit == "B" || v >= 10.0 { format!("{v:.0} {unit}") } else { format!("{v:.1} {unit}") };
        }
        v /= 1000.0;
    }
    unreachable!("the loop returns at TB")
}

async fn backup_cmd(a: BackupArgs, format: OutputFormat) -> anyhow::Result<ExitCode> {
    let inventory = load_inventory(&a.inventory, format)?;
    let members = etcd_members(&inventory, &a.inventory)?;
    let creds = credentials(&a.tls, &inventory, &a.inventory)?;
    let cluster = inventory.cluster.name.clone();
    // Snapshots hold every secret of the cluster: only into a directory of ours.
    let dir = match &a.out {
        Some(out) => crate::trust::owned_dir(out)?,
        None => StateDir::beside(&a.inventory, &cluster).private_subdir("backups")?,
    };
    let keep = a.keep.unwrap_or(inventory.etcd.backup_retention).max(1) as usize;

    let health = health::check(&members, &creds, HealthOptions::for_cluster(&inventory, a.timeout)).await;
    let candidates = backup::candidates(&members, &health);
    if candidates.is_empty() {
        let why: Vec<String> =
            health.members.iter().flat_map(|m| m.problems.iter().map(move |p| format!("  {}: {p}", m.name))).collect();
        return Err(Failure::new(
            ExitCode(2),
            format!("no etcd member of cluster {cluster} answered; nothing to back up from:\n{}", why.join("\n")),
        )
        .into());
    }
    let opts =
        BackupOptions { cluster, dir, keep: Some(keep), timeout: a.timeout, progress: format == OutputFormat::Text };
    let report = backup::backup(&candidates, &creds, &opts).await?;
    match format {
        OutputFormat::Json => print_json(&report)?,
        OutputFormat::Text => {
            for f in &report.failed_attempts {
                eprintln!("warning: {} failed, tried the next member: {}", f.member, f.error);
            }
            for w in &report.warnings {
                eprintln!("warning: {w}");
            }
            println!(
                "snapshot saved: {}\n  {} bytes ({}), revision {}, from {}, {:.2}s ({}/s)\n  sha256 {} (verified after writing)",
                report.path.display(),
                report.size,
                human_bytes(report.size as i64),
                report.revision,
                report.member,
                report.seconds,
                human_bytes(report.bytes_per_second as i64),
                report.sha256
            );
            for p in &report.pruned {
                println!("  removed old snapshot {} (keeping the newest {keep})", p.display());
            }
        }
    }
    Ok(ExitCode::OK)
}

#[derive(Serialize)]
struct VerifyReport<'a> {
    ok: bool,
    #[serde(flatten)]
    info: &'a snapshot_file::SnapshotInfo,
}

fn verify_cmd(a: VerifyArgs, format: OutputFormat) -> anyhow::Result<ExitCode> {
    let depth = if a.full { Depth::Full } else { Depth::Structure };
    let info = snapshot_file::verify(&a.snapshot, depth)?;
    match format {
        OutputFormat::Json => print_json(&VerifyReport { ok: true, info: &info })?,
        OutputFormat::Text => {
            println!("snapshot {} is intact", info.path.display());
            println!("  revision     {}", info.revision);
            println!("  total keys   {}", info.total_keys);
            println!("  database     {} bytes ({})", info.db_size, human_bytes(info.db_size as i64));
            println!("  sha256       {} (matches the trailer)", info.sha256);
            if let Some(h) = info.kv_hash {
                println!("  hash         {h:x} (as etcdctl snapshot status prints it: {h})");
            }
        }
    }
    Ok(ExitCode::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_and_reject_nonsense() {
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("1500ms"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("5h").unwrap_err().contains("unknown unit"));
        assert!(parse_duration("abc").is_err());
    }

    #[test]
    fn sizes_read_like_etcdctl() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(167_936), "168 kB");
        assert_eq!(human_bytes(2_500_000), "2.5 MB");
        assert_eq!(human_bytes(524_288_000), "524 MB");
    }
}
