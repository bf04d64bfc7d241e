//! load -> pki -> render -> connect -> facts -> plan: the one pipeline `plan`, `apply`
//! and `reset` share, so the three can never disagree on what the hosts should hold.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;

use super::Plan;
use super::action::Phase;
use super::api_objects;
use super::membership::{Membership, plan_membership};
use super::rollout::{self, EtcdNow};
use super::diff::plan_apply;
use super::reset::{ResetOptions, plan_reset};
use crate::apply::phases::preflight::{self, ExtraPaths, Gathered};
use crate::artifacts;
use crate::desired::{Component, DesiredState};
use crate::inventory::{self, Inventory};
use crate::kube::bootstrap::{self, Observation};
use crate::pki::Pki;
use crate::render::{self, Templates};
use crate::state::StateDir;

#[derive(Debug, Clone, Default)]
pub struct PipelineOptions {
    /// Directory of template overrides (`--templates`).
    pub templates: Option<PathBuf>,
    /// Only the binaries' paths, not their content: `reset` removes them and must not
    /// download anything.
    pub binary_paths_only: bool,
}

/// Everything up to (and including) the facts: a plan is a pure function of this.
pub struct Prepared {
    pub loaded: inventory::Loaded,
    pub state: StateDir,
    pub pki: Pki,
    pub desired: DesiredState,
    /// Parts render left out on purpose (e.g. artifacts.kubernetes = "skip"), as text.
    pub skipped: Vec<String>,
    /// What the binaries' resolution wants the operator to know (unverified files, ...).
    pub artifact_notes: Vec<String>,
    pub gathered: Gathered,
    /// Cluster objects apply owns, per phase of the table's `objects` (bootstrap RBAC,
    /// CoreDNS), with what the API held for each when the plan was made. Empty without a
    /// control plane, when the Kubernetes tier is skipped, and for reset.
    pub api: Vec<(Phase, Observation)>,
    /// The running etcd cluster as etcd-client saw it (its leader goes last in a rollout).
    pub etcd_now: EtcdNow,
    /// When the facts were read (UTC, `20261205T174500Z`): names what a plan moves aside.
    pub planned_at: String,
    pub timings: Timings,
}

/// Where the time went (the benchmark prints it).
#[derive(Debug, Clone, Default)]
pub struct Timings {
    pub load_pki_render: Duration,
    pub connect_and_facts: Duration,
    /// Downloading or reading and verifying the binaries.
    pub artifacts: Duration,
}

impl Prepared {
    pub fn inventory(&self) -> &Inventory {
        &self.loaded.inventory
    }

    /// The directory relative inventory paths are resolved against.
    pub fn inventory_dir(&self) -> PathBuf {
        inventory_dir(&self.loaded.path)
    }

    pub fn plan_apply(&self) -> Plan {
        let inv = self.inventory();
        let mut reports = self.gathered.reports.clone();
        // Render already assigned these (it fails on an inventory whose slices do not fit);
        // shown where something uses them: a kubelet or the runtime tier.
        let slices = crate::inventory::pod_slices::of_inventory(inv).unwrap_or_default();
        for r in &mut reports {
            let uses_slice = self.desired.hosts.iter().filter(|d| d.host == r.host).flat_map(|d| &d.units).any(|u| {
                matches!(u.component, crate::desired::Component::Kubelet | crate::desired::Component::Runtime)
            });
            r.pod_cidr = slices.iter().find(|s| s.host == r.host && uses_slice).map(|s| s.slice.to_string());
        }
        crate::apply::phases::runtime::refuse_unfit_hosts(&mut reports, &self.gathered.facts, &self.desired, &inv.kubelet);
        let mut plan = plan_apply(&inv.cluster.name, reports, &self.desired, &self.gathered.facts);
        for (phase, api) in &self.api {
            api_objects::add_phase(&mut plan, *phase, api);
        }
        let etcd_members = crate::etcd::members(inv);
        let members: Vec<String> = etcd_members.iter().map(|m| m.name.clone()).collect();
        let backups = self.backup_dir();
        let backup = Some((backups.to_str().unwrap_or_default(), inv.etcd.backup_retention.max(1) as usize));
        rollout::stage_restarts(&mut plan, &self.gathered.facts, &members, &self.etcd_now, backup);
        let peer_urls = etcd_members.into_iter().map(|m| (m.name, m.peer_url)).collect();
        let reachable = self.gathered.sessions.keys().cloned().collect();
        let membership = Membership {
            members: &members,
            peer_urls: &peer_urls,
            data_dir: &inv.etcd.data_dir,
            dropin: crate::render::paths::ETCD_BOOTSTRAP_DROPIN,
            desired: &self.desired,
            backup,
            reachable: &reachable,
            aside_suffix: &self.planned_at,
        };
        plan_membership(&mut plan, &self.gathered.facts, &self.etcd_now, &membership);
        rollout::refuse_etcd_ca_swap(&mut plan, &self.gathered.facts, &members, crate::render::paths::ETCD_CA_CRT);
        super::versions::judge_hosts(&mut plan, &self.gathered.facts, inv);
        plan
    }

    /// Where apply's snapshots go: the same directory as `provision etcd backup`'s.
    pub fn backup_dir(&self) -> PathBuf {
        self.state.root().join("backups")
    }

    pub fn plan_reset(&self, purge_data: bool) -> Plan {
        let data_dir = self.inventory().etcd.data_dir.as_str();
        let opts = ResetOptions { purge_data_dir: purge_data.then_some(data_dir), data_dir };
        plan_reset(&self.inventory().cluster.name, self.gathered.reports.clone(), &self.desired, &self.gathered.facts, &opts)
    }

    /// Closes every SSH connection politely (the hosts' sshd logs a clean disconnect).
    pub async fn close(&self) {
        for s in self.gathered.sessions.values() {
            s.close().await;
        }
    }
}

pub async fn prepare(inventory_path: &Path, opts: &PipelineOptions) -> anyhow::Result<Prepared> {
    let t = Instant::now();
    let loaded = inventory::load(inventory_path).map_err(|d| anyhow::anyhow!("{d}"))?;
    let state = loaded.state_dir();
    let inv = &loaded.inventory;
    let pki = crate::pki::ensure(inv, &state)
        .with_context(|| format!("preparing the PKI in {}", state.root().display()))?;
    let templates = Templates::load(opts.templates.as_deref())?;
    let rendered = render::render(inv, &pki, &templates).context("rendering the hosts' files")?;
    // super-admin.conf is for the operator only: the state dir, never a host.
    state.keep_operator_files(&rendered)?;
    // The host whose kube-apiserver gets the cluster objects (none: no control plane).
    let api_host = bootstrap::api_host(inv).filter(|_| !rendered.kubernetes_skipped() && !opts.binary_paths_only);
    let mut api_objects = Vec::new();
    if api_host.is_some() {
        for (phase, template) in super::phase_spec::object_phases() {
            api_objects.push((phase, crate::kube::objects::render(&templates, template, inv)?));
        }
    }
    let skipped = rendered.skipped.iter().map(|s| format!("{}: {}", s.what, s.why)).collect();
    let mut desired = rendered.desired;
    // The binaries' paths join before the facts (so the facts cover them); their
    // content, which depends on each host's architecture, after.
    artifacts::add_placeholders(&mut desired, inv)?;
    let load_pki_render = t.elapsed();

    let t = Instant::now();
    let extra = extra_paths(inv, &desired);
    let gathered = preflight::gather(inv, &inventory_dir(&loaded.path), &state, &desired, &extra).await;
    let connect_and_facts = t.elapsed();

    let t = Instant::now();
    let artifact_notes = if opts.binary_paths_only || gathered.facts.is_empty() {
        // reset, or no host reached (the plan fails for all of them): nothing to fetch.
        Vec::new()
    } else {
        let machines = gathered.facts.iter().map(|(h, f)| (h.clone(), f.arch.clone())).collect();
        let arches = artifacts::arches_from_machines(inv, &machines)?;
        let for_resolve = loaded.clone();
        // Blocking downloads and hashing: off the async workers that hold the SSH sessions.
        let resolved = tokio::task::spawn_blocking(move || artifacts::resolve(&for_resolve, &arches))
            .await
            .context("resolving the binaries")??;
        artifacts::fill(&mut desired, &resolved, inv)?;
        resolved.notes
    };
    let artifacts_time = t.elapsed();
    let mut api = Vec::new();
    if let Some(host) = api_host {
        for (phase, objects) in api_objects {
            api.push((phase, bootstrap::observe(inv, &pki, host, gathered.facts.get(&host.name), objects).await));
        }
    }
    let mut gathered = gathered;
    let etcd_now = if opts.binary_paths_only { EtcdNow::default() } else { read_etcd(inv, &state, &pki, &gathered).await };
    connect_leaving_members(inv, &inventory_dir(&loaded.path), &state, &etcd_now, &mut gathered).await;
    let planned_at = utc_stamp(time::OffsetDateTime::now_utc());
    let timings = Timings { load_pki_render, connect_and_facts, artifacts: artifacts_time };
    if std::env::var_os("PROVISION_TIMINGS").is_some() {
        eprintln!(
            "timings: load+pki+render {:.0} ms, connect+facts {:.0} ms, binaries {:.0} ms",
            timings.load_pki_render.as_secs_f64() * 1000.0,
            timings.connect_and_facts.as_secs_f64() * 1000.0,
            timings.artifacts.as_secs_f64() * 1000.0
        );
    }
    Ok(Prepared { loaded, state, pki, desired, skipped, artifact_notes, gathered, api, etcd_now, planned_at, timings })
}

/// The leader of the running etcd cluster, read over etcd-client when any member's etcd
/// runs (reads only: `plan` changes nothing). Unknown when etcd does not answer; the
/// rollout then keeps inventory order (the stage gates still hold quorum).
async fn read_etcd(inv: &Inventory, state: &StateDir, pki: &Pki, gathered: &Gathered) -> EtcdNow {
    let members = crate::etcd::members(inv);
    let running = members.iter().any(|m| {
        gathered.facts.get(&m.name).is_some_and(rollout::etcd_active)
    });
    if !running {
        return EtcdNow::default();
    }
    let Ok(creds) = crate::etcd::credentials::ClientCredentials::from_pki(pki, &state.pki_dir()) else {
        return EtcdNow::default();
    };
    let opts = crate::etcd::health::HealthOptions::for_cluster(inv, Duration::from_secs(3));
    let health = crate::etcd::health::check(&members, &creds, opts).await;
    let healthy = health.members.iter().filter(|m| m.healthy).map(|m| m.name.clone()).collect();
    EtcdNow { leader: health.leader, members: health.membership, healthy }
}

/// A cluster member the inventory no longer lists is retired on its host (etcd stopped,
/// disabled, data kept aside) when that host answers over SSH: as the inventory host of
/// that name when it is still one (another role), else at its peer address with the
/// inventory's [ssh] settings. Unreachable: the plan removes the member only, and says so.
async fn connect_leaving_members(
    inv: &Inventory,
    inventory_dir: &Path,
    state: &StateDir,
    etcd: &EtcdNow,
    gathered: &mut Gathered,
) {
    let Some(live) = &etcd.members else { return };
    let peers: Vec<String> = crate::etcd::members(inv).into_iter().map(|m| m.peer_url).collect();
    for l in live.iter().filter(|l| !l.name.is_empty() && !peers.iter().any(|p| l.has_peer_url(p))) {
        if gathered.sessions.contains_key(&l.name) {
            continue;
        }
        let Some(address) = l.peer_urls.first().and_then(|u| super::membership::peer_host(u).parse().ok()) else {
            continue;
        };
        let host = crate::inventory::Host {
            name: l.name.clone(),
            address,
            roles: Vec::new(),
            ssh_port: None,
            ssh_user: None,
            pod_cidr: None,
        };
        let Ok(target) = crate::ssh::Target::for_host(inv, &host, state, inventory_dir) else { continue };
        if let Ok(Ok(session)) = tokio::time::timeout(Duration::from_secs(10), crate::ssh::Session::connect(&target)).await {
            gathered.sessions.insert(l.name.clone(), session);
        }
    }
}

/// `20261205T174500Z` (UTC): how the state dir's other stamps read (restore's too).
pub fn utc_stamp(t: time::OffsetDateTime) -> String {
    crate::etcd::retention::stamp(t)
}
/// The etcd data dir on etcd members: reset --purge-data removes it, so its state is
/// gathered with the rest.
fn extra_paths(inv: &Inventory, desired: &DesiredState) -> ExtraPaths {
    let mut extra: ExtraPaths = BTreeMap::new();
    for h in &desired.hosts {
        if h.units.iter().any(|u| u.component == Component::Etcd) {
            extra.entry(h.host.clone()).or_default().push(inv.etcd.data_dir.clone());
        }
    }
    extra
}

fn inventory_dir(path: &Path) -> PathBuf {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf())
}

#[cfg(test)]
mod tests {
    #[test]
    fn utc_stamp_reads_like_the_state_dirs_other_stamps() {
        let t = time::OffsetDateTime::from_unix_timestamp(1_796_492_700).unwrap();
        assert_eq!(super::utc_stamp(t), "20261205T174500Z");
    }
}
