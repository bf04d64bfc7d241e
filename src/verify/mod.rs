//! `provision verify`: prove the cluster is what we claim, check by named check.
//!
//! ```ignore
//! let loaded = inventory::load(Path::new("inventories/lab.toml"))?;
//! let report = verify::run(&loaded, &verify::Options::default()).await?; // Err: could not run at all
//! if !report.ok { for c in report.failures() { eprintln!("{} {:?}: {}", c.check, c.hosts, c.evidence) } }
//! ```
//!
//! The checks (each pass, fail, or skip with the reason; see report.rs):
//! - `etcd.health`: every member serves a linearizable read, no alarm, membership as in the inventory
//! - `units.active`: every unit provision installs is active on its host
//! - `tls.certificate` / `tls.min-version` / `tls.plaintext` / `tls.client-cert` (tls/)
//! - `encryption.stored-secrets` / `encryption.new-secret` (encryption/)
//! - `snapshot.take` / `snapshot.restore` (snapshot.rs)
//! - `rbac.anonymous` / `rbac.authorization-mode` / `rbac.unbound-identity` / `rbac.admin` (rbac.rs)
//! - `files.private`: keys, kubeconfigs and the encryption config are owner-only
//! - `cis.<id>`: the CIS Kubernetes Benchmark checks on the running processes and files
//! - `runtime.pods`: containerd's CRI answers v1 and is ready, runc, CNI plugins, the
//!   node's slice and pod routes (runtime.rs; CRI over SSH via src/cri/)
//! - `cluster.nodes-ready` / `cluster.dns` / `cluster.smoke`: every kubelet host a Ready
//!   Node, CoreDNS available at the kubelets' clusterDNS, a pod reached through a Service
//!   and DNS (cluster/)
//!
//! Nothing on the hosts or in the state directory is changed, except what a check needs
//! for a moment and removes: a scratch restore directory, one Secret named
//! provision-verify-<random>, one namespace provision-smoke-<random> with the smoke
//! test's pods, Service and Job (when a kube-apiserver runs).

pub mod cis_hosts;
pub mod cluster;
pub mod encryption;
pub mod host_checks;
pub mod host_facts;
pub mod material;
pub mod rbac;
pub mod report;
pub mod runtime;
pub mod snapshot;
pub mod snapshot_script;
pub mod tls;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use futures::future::join_all;

use crate::etcd::health::{self, ClusterHealth, HealthOptions, Verdict};
use crate::etcd::members::{Member, members};
use crate::inventory::Loaded;
use crate::ssh::{Session, Target};
use cis_hosts::Gathered;
use material::Material;
pub use report::{CheckResult, HostOutcome, Report, Status};

/// Groups of checks, for `--only`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, clap::ValueEnum)]
pub enum Group {
    Etcd,
    Units,
    Tls,
    Encryption,
    Snapshot,
    Rbac,
    Files,
    Cis,
    /// The runtime tier (containerd, runc, CNI plugins, the node's slice and pod routes).
    Runtime,
    /// The cluster through the API: nodes Ready, CoreDNS, the smoke test.
    Cluster,
}

#[derive(Debug, Clone)]
pub struct Options {
    /// Limit for each network step (a TLS handshake, an etcd call, an API request).
    pub timeout: Duration,
    /// Only these groups (None: all).
    pub only: Option<BTreeSet<Group>>,
}

impl Default for Options {
    fn default() -> Self {
        Options { timeout: Duration::from_secs(5), only: None }
    }
}

impl Options {
    fn wants(&self, g: Group) -> bool {
        self.only.as_ref().is_none_or(|set| set.contains(&g))
    }
}

/// Runs every check (or those of `opts.only`). Err only when verify cannot run at all
/// (no PKI in the state directory); everything else is a failed check in the report.
pub async fn run(loaded: &Loaded, opts: &Options) -> anyhow::Result<Report> {
    run_with_sessions(loaded, opts, None).await
}

/// Like [`run`], reusing already open SSH sessions (apply's) by host name; hosts
/// without one are connected to (and disconnected afterwards).
pub async fn run_with_sessions(
    loaded: &Loaded,
    opts: &Options,
    sessions: Option<&BTreeMap<String, Session>>,
) -> anyhow::Result<Report> {
    let started = Instant::now();
    let inv = &loaded.inventory;
    let material = Material::load(loaded)?;
    let limit = opts.timeout;

    // The API checks and the encryption keys need the hosts only when Kubernetes runs there.
    let kubernetes = inv.artifacts.kubernetes != crate::inventory::KubernetesSource::Skip;
    let needs_ssh =
        [Group::Units, Group::Files, Group::Cis, Group::Snapshot, Group::Runtime].iter().any(|g| opts.wants(*g))
            || (kubernetes && (opts.wants(Group::Rbac) || opts.wants(Group::Encryption)));
    let (sessions, opened, unreachable) =
        if needs_ssh { connect_all(loaded, sessions).await } else { (BTreeMap::new(), Vec::new(), BTreeMap::new()) };
    let etcd_members = members(inv);

    let tls_checks = async { if opts.wants(Group::Tls) { tls::run(inv, &material, limit).await } else { Vec::new() } };
    let etcd_side = async {
        let health = health::check(&etcd_members, &material.etcd_client, health_options(inv, limit)).await;
        let healthy = pick_member(&etcd_members, &health);
        let snapshot = async {
            if opts.wants(Group::Snapshot) {
                snapshot::run(&inv.cluster.name, &etcd_members, &health, &material, &sessions, limit).await
            } else {
                Vec::new()
            }
        };
        let encryption = async {
            if !opts.wants(Group::Encryption) {
                return Vec::new();
            }
            let ring = encryption::load_keyring(inv, &material, &sessions).await;
            let (stored, new) = tokio::join!(
                encryption::stored_secrets(&ring, healthy.as_ref(), &material, limit),
                encryption::new_secret(inv, &ring, healthy.as_ref(), &material, limit),
            );
            vec![stored, new]
        };
        let (snapshot, encryption) = tokio::join!(snapshot, encryption);
        (health, encryption, snapshot)
    };
    let wants_facts = [Group::Units, Group::Files, Group::Cis, Group::Rbac].iter().any(|g| opts.wants(*g));
    let host_side = async {
        let hosts = inv.hosts.iter().filter(|_| wants_facts);
        let gathered: Gathered = join_all(hosts.map(|h| async {
            let facts = match sessions.get(&h.name) {
                Some(s) => host_facts::gather(s, inv).await.map_err(|e| format!("{e:#}")),
                None => Err(format!("no SSH session (see {SSH_CONNECT})")),
            };
            (h.name.clone(), facts)
        }))
        .await;
        let rbac = async {
            if opts.wants(Group::Rbac) { rbac::run(inv, &material, &gathered, limit).await } else { Vec::new() }
        }
        .await;
        (gathered, rbac)
    };
    let cluster_side =
        async { if opts.wants(Group::Cluster) { cluster::run(inv, &material, limit).await } else { Vec::new() } };
    // Beside the others, not after them: its CRI calls and script are a round trip per host.
    let runtime_side =
        async { if opts.wants(Group::Runtime) { runtime::run(inv, &sessions, limit).await } else { None } };
    let (
        tls_results,
        (health, encryption_results, snapshot_results),
        (gathered, rbac_results),
        cluster_results,
        runtime_result,
    ) = tokio::join!(tls_checks, etcd_side, host_side, cluster_side, runtime_side);

    let mut checks = Vec::new();
    if needs_ssh {
        checks.push(ssh_result(inv, &sessions, &unreachable));
    }
    if opts.wants(Group::Etcd) {
        checks.push(health_result(&health));
    }
    if opts.wants(Group::Units) {
        checks.push(host_checks::units_active(inv, &gathered));
    }
    checks.extend(tls_results);
    checks.extend(encryption_results);
    checks.extend(snapshot_results);
    checks.extend(rbac_results);
    if opts.wants(Group::Files) {
        checks.push(host_checks::files_private(inv, &gathered));
    }
    if opts.wants(Group::Cis) {
        checks.extend(cis_hosts::run(inv, &gathered));
    }
    checks.extend(runtime_result);
    checks.extend(cluster_results);
    for s in &opened {
        s.close().await;
    }
    Ok(Report::new(&inv.cluster.name, &loaded.path.display().to_string(), checks, started.elapsed().as_secs_f64()))
}

type Connected = (BTreeMap<String, Session>, Vec<Session>, BTreeMap<String, String>);

/// Sessions for every host: the given ones, the rest connected now (in parallel).
async fn connect_all(loaded: &Loaded, given: Option<&BTreeMap<String, Session>>) -> Connected {
    let inv = &loaded.inventory;
    let state = loaded.state_dir();
    let dir = inventory_dir(&loaded.path);
    let attempts = join_all(inv.hosts.iter().map(|h| {
        let existing = given.and_then(|g| g.get(&h.name)).cloned();
        let (state, dir) = (&state, &dir);
        async move {
            if let Some(s) = existing {
                return (h.name.clone(), Ok((s, false)));
            }
            // SshError messages start with the host name; the report names the host already.
            let plain = |e: crate::ssh::SshError| {
                let text = e.to_string();
                text.strip_prefix(&format!("{}: ", h.name)).map(str::to_string).unwrap_or(text)
            };
            let target = match Target::for_host(inv, h, state, dir) {
                Ok(t) => t,
                Err(e) => return (h.name.clone(), Err(plain(e))),
            };
            (h.name.clone(), Session::connect(&target).await.map(|s| (s, true)).map_err(plain))
        }
    }))
    .await;
    let mut sessions = BTreeMap::new();
    let mut opened = Vec::new();
    let mut unreachable = BTreeMap::new();
    for (name, attempt) in attempts {
        match attempt {
            Ok((s, ours)) => {
                if ours {
                    opened.push(s.clone());
                }
                sessions.insert(name, s);
            }
            Err(e) => {
                unreachable.insert(name, e);
            }
        }
    }
    (sessions, opened, unreachable)
}

fn inventory_dir(path: &Path) -> std::path::PathBuf {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf())
}

/// verify judges what is broken, not what is slow: a member is "no answer" only after
/// two election timeouts (or `limit`, if longer). A slower read is still reported, as slow
/// with its figure. Seen on the Vagrant VMs under load: reads of 3.7 and 4.2 s (election
/// timeout 5 s) were healthy, and the third member's failed at a flat 5 s limit.
fn health_options(inv: &crate::inventory::Inventory, limit: Duration) -> HealthOptions {
    let two_elections = Duration::from_millis(2 * u64::from(inv.etcd.election_timeout_ms));
    HealthOptions::for_cluster(inv, limit.max(two_elections))
}

/// A member that served a linearizable read, else one that answered at all.
fn pick_member(members: &[Member], health: &ClusterHealth) -> Option<Member> {
    let find = |pred: &dyn Fn(&health::MemberHealth) -> bool| {
        health.members.iter().find(|m| pred(m)).and_then(|mh| members.iter().find(|m| m.name == mh.name)).cloned()
    };
    find(&|m| m.healthy).or_else(|| find(&|m| m.status.is_some()))
}

pub const ETCD_HEALTH: &str = "etcd.health";
pub const SSH_CONNECT: &str = "ssh.connect";

/// One row for the SSH connections, so that the checks that needed one can just point here.
fn ssh_result(
    inv: &crate::inventory::Inventory,
    sessions: &BTreeMap<String, Session>,
    unreachable: &BTreeMap<String, String>,
) -> CheckResult {
    let outcomes = inv
        .hosts
        .iter()
        .map(|h| match (sessions.get(&h.name), unreachable.get(&h.name)) {
            (Some(s), _) => HostOutcome::pass(&h.name, format!("connected as {}", s.user())),
            (None, Some(e)) => HostOutcome::fail(&h.name, e.clone()),
            (None, None) => HostOutcome::fail(&h.name, "not connected"),
        })
        .collect();
    CheckResult::from_hosts(SSH_CONNECT, "every host is reachable over SSH (host key checked, login works)", outcomes)
}

fn health_result(h: &ClusterHealth) -> CheckResult {
    let title = "every etcd member serves linearizable reads, without alarms, as the inventory lists them";
    // Fails only on what breaks the cluster; a slow member is a warning with its figure.
    let bad: Vec<&health::MemberHealth> = h.members.iter().filter(|m| !m.healthy || !m.problems.is_empty()).collect();
    let mut evidence = h.summary();
    for m in &bad {
        let why = if m.problems.is_empty() { m.health.to_string() } else { m.problems.join("; ") };
        evidence.push_str(&format!("; {}: {why}", m.name));
    }
    for note in &h.notes {
        evidence.push_str(&format!("; {note}"));
    }
    for warning in &h.warnings {
        evidence.push_str(&format!("; warning: {warning}"));
    }
    let (status, hosts) = match h.verdict {
        Verdict::Healthy if h.warnings.is_empty() => (Status::Pass, h.members.iter().map(|m| m.name.clone()).collect()),
        Verdict::Healthy => {
            (Status::Warn, h.members.iter().filter(|m| !m.warnings.is_empty()).map(|m| m.name.clone()).collect())
        }
        _ => (Status::Fail, bad.iter().map(|m| m.name.clone()).collect()),
    };
    CheckResult::cluster(ETCD_HEALTH, title, status, evidence).with_hosts(hosts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_member_is_given_two_election_timeouts_before_it_counts_as_not_answering() {
        let mut inv: crate::inventory::Inventory =
            toml::from_str(include_str!("../../inventories/example-ha.toml")).unwrap();
        inv.etcd.election_timeout_ms = 5000;
        assert_eq!(health_options(&inv, Duration::from_secs(5)).timeout, Duration::from_secs(10));
        inv.etcd.election_timeout_ms = 1000;
        assert_eq!(health_options(&inv, Duration::from_secs(5)).timeout, Duration::from_secs(5));
    }
}
