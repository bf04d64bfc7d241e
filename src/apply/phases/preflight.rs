//! preflight: connect to every host, gather its facts in one round trip, and check
//! that provision can work there (root or sudo, systemd running, nothing foreign on
//! the ports the managed daemons need). As an apply phase it removes the temp files
//! an interrupted run left behind.
//!
//! A host that fails here fails the whole plan (the others' plan is still shown):
//! apply runs this phase on the others and stops before `base`.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;

use futures::future::join_all;
use tokio::sync::Semaphore;

use crate::apply::{ApplyContext, PhaseResult};
use crate::desired::{DesiredHost, DesiredState};
use crate::inventory::{Host, Inventory};
use crate::plan::facts::{self, FactsRequest, HostFacts};
use crate::plan::{HostReport, PhasePlan};
use crate::ssh::{Session, Target};
use crate::state::StateDir;

pub async fn run(plan: &PhasePlan, ctx: &ApplyContext<'_>) -> PhaseResult {
    super::run_step(plan.phase, &plan.hosts, super::Step::Prepare, ctx, &[]).await
}

/// What preflight learnt about every inventory host.
pub struct Gathered {
    pub sessions: BTreeMap<String, Session>,
    pub facts: BTreeMap<String, HostFacts>,
    /// In inventory order; `problems` non-empty for hosts that cannot be worked on.
    pub reports: Vec<HostReport>,
}

/// Extra paths to ask about beyond the desired state (e.g. the etcd data dir, which
/// reset --purge-data removes), per host.
pub type ExtraPaths = BTreeMap<String, Vec<String>>;

pub async fn gather(
    inventory: &Inventory,
    inventory_dir: &Path,
    state: &StateDir,
    desired: &DesiredState,
    extra: &ExtraPaths,
) -> Gathered {
    let limit = inventory.ssh.parallelism.unwrap_or(inventory.hosts.len()).max(1);
    let semaphore = Semaphore::new(limit);
    let tasks = inventory.hosts.iter().map(|host| {
        let semaphore = &semaphore;
        async move {
            let _permit = semaphore.acquire().await;
            let empty = DesiredHost { host: host.name.clone(), users: vec![], dirs: vec![], files: vec![], units: vec![] };
            let d = desired.hosts.iter().find(|d| d.host == host.name).unwrap_or(&empty);
            let mut req = FactsRequest::for_host(d);
            // The runtime's preinstalled binaries: `plan`/`apply` refuse a host without them.
            req.exist.extend(super::runtime::required_paths(d));
            // ... and what the runtime and a kubelet need of the kernel, swap and cgroups.
            req.node = super::runtime::has_runtime(d);
            for p in extra.get(&host.name).into_iter().flatten() {
                req.paths.insert(p.clone());
                req.list_dirs.insert(p.clone());
            }
            let ports = expected_ports(inventory, d);
            req.ports.extend(ports.iter().map(|(p, _)| *p));
            (host, connect_and_gather(inventory, host, inventory_dir, state, &req).await, ports)
        }
    });
    let mut out = Gathered { sessions: BTreeMap::new(), facts: BTreeMap::new(), reports: Vec::new() };
    for (host, result, ports) in join_all(tasks).await {
        let mut report = HostReport::new(&host.name, &host.address.to_string());
        match result {
            Ok((session, f)) => {
                report.os = Some(if f.os.pretty_name.is_empty() { f.os.id.clone() } else { f.os.pretty_name.clone() });
                report.arch = Some(f.arch.clone());
                report.systemd = f.systemd_version;
                let (problems, warnings) = check(&f, host.address, &ports);
                report.problems = problems;
                report.warnings = warnings;
                out.sessions.insert(host.name.clone(), session);
                out.facts.insert(host.name.clone(), f);
            }
            Err(e) => {
                // SSH errors start with the host name; the report is already the host's.
                let text = format!("{e:#}");
                let prefix = format!("{}: ", host.name);
                report.problems.push(text.strip_prefix(&prefix).unwrap_or(&text).to_string());
            }
        }
        out.reports.push(report);
    }
    out
}

async fn connect_and_gather(
    inventory: &Inventory,
    host: &Host,
    inventory_dir: &Path,
    state: &StateDir,
    req: &FactsRequest,
) -> anyhow::Result<(Session, HostFacts)> {
    let target = Target::for_host(inventory, host, state, inventory_dir)?;
    let session = Session::connect(&target).await?;
    let f = facts::gather(&session, req).await.map_err(|e| e.context(format!("{}: gathering facts", host.name)))?;
    Ok((session, f))
}

/// The TCP ports each managed unit's daemon listens on, from the phase table
/// (`phase_spec::daemon_ports`: only a component's daemon unit owns its ports).
pub fn expected_ports(inventory: &Inventory, host: &DesiredHost) -> Vec<(u16, String)> {
    let mut out = Vec::new();
    for u in &host.units {
        let ports = match crate::plan::phase_spec::daemon_ports(u.component, inventory) {
            Some((daemon, ports)) if daemon == u.name => ports,
            _ => Vec::new(),
        };
        out.extend(ports.iter().map(|p| (*p, u.name.clone())));
    }
    out
}

/// Problems stop the host; warnings are shown with the plan.
pub fn check(f: &HostFacts, address: IpAddr, ports: &[(u16, String)]) -> (Vec<String>, Vec<String>) {
    let mut problems = Vec::new();
    let mut warnings = Vec::new();
    match f.uid {
        Some(0) => {}
        Some(uid) => problems.push(format!(
            "commands run as uid {uid}, not root: log in as root or give the ssh user passwordless sudo"
        )),
        None => problems.push("could not tell which user commands run as (`id -u` gave nothing)".into()),
    }
    if !f.systemd_running {
        problems.push("systemd is not running as init (/run/systemd/system is missing): provision manages systemd units".into());
    } else if let Some(e) = &f.units_error {
        problems.push(format!("systemctl cannot talk to systemd: {e}"));
    }
    match f.systemd_version {
        None => problems.push("systemctl is not installed".into()),
        Some(v) if v < 232 => {
            problems.push(format!("systemd {v} is too old: at least 232 is needed (Debian 10, RHEL 8, Ubuntu 18.04 or newer)"))
        }
        Some(v) if v < 248 => warnings.push(format!(
            "systemd {v} < 248: start times have second resolution, so a restart interrupted by a killed apply may go unnoticed"
        )),
        Some(_) => {}
    }
    if !matches!(f.arch.as_str(), "x86_64" | "aarch64") {
        warnings.push(format!("architecture {:?}: Kubernetes binaries are downloaded for amd64/arm64 only", f.arch));
    }
    for e in &f.errors {
        problems.push(format!("reading managed files: {e}"));
    }
    if !f.listeners_known && !ports.is_empty() {
        warnings.push("`ss` is not installed: port conflicts were not checked".into());
    }
    for (port, unit) in ports {
        let running = f.unit(unit).is_some_and(|s| matches!(s.active_state.as_str(), "active" | "activating" | "reloading"));
        if running {
            continue; // the listener is (most likely) our own daemon
        }
        for l in f.listeners.iter().filter(|l| l.port == *port) {
            let wildcard = matches!(l.address.as_str(), "0.0.0.0" | "::" | "*");
            if wildcard || l.address == address.to_string() {
                let who = if l.process.is_empty() { "another process".to_string() } else { l.process.clone() };
                problems.push(format!(
                    "port {port} on {} is taken by {who} while {unit} is not running: stop that process (or change the port in the inventory)",
                    l.address
                ));
            }
        }
    }
    (problems, warnings)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::facts::{Listener, UnitState};

    fn healthy() -> HostFacts {
        HostFacts { uid: Some(0), systemd_running: true, systemd_version: Some(252), arch: "x86_64".into(), listeners_known: true, ..HostFacts::default() }
    }

    #[test]
    fn healthy_host_passes() {
        let (p, w) = check(&healthy(), "127.0.1.1".parse().unwrap(), &[(2379, "etcd.service".into())]);
        assert!(p.is_empty() && w.is_empty(), "{p:?} {w:?}");
    }

    #[test]
    fn not_root_and_no_systemd_are_problems() {
        let mut f = healthy();
        f.uid = Some(1000);
        f.systemd_running = false;
        let (p, _) = check(&f, "127.0.1.1".parse().unwrap(), &[]);
        assert!(p[0].contains("uid 1000"), "{p:?}");
        assert!(p[1].contains("systemd is not running"), "{p:?}");
    }

    #[test]
    fn foreign_listener_is_a_conflict_only_when_our_unit_is_down() {
        let mut f = healthy();
        f.listeners.push(Listener { address: "0.0.0.0".into(), port: 2379, process: "users:((\"nc\",pid=9,fd=3))".into() });
        f.listeners.push(Listener { address: "127.0.1.2".into(), port: 2380, process: String::new() });
        let ports = [(2379, "etcd.service".to_string()), (2380, "etcd.service".to_string())];
        let (p, _) = check(&f, "127.0.1.1".parse().unwrap(), &ports);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].contains("port 2379 on 0.0.0.0 is taken by users:((\"nc\""), "{p:?}");
        f.units.insert("etcd.service".into(), UnitState { active_state: "active".into(), ..UnitState::default() });
        let (p, _) = check(&f, "127.0.1.1".parse().unwrap(), &ports);
        assert!(p.is_empty(), "{p:?}");
    }

    /// The ports belong to the daemon's own unit: the etcd backup timer (same component,
    /// listening on nothing) must not be blamed for etcd's ports while it is not running.
    #[test]
    fn ports_belong_to_the_listening_unit_not_its_siblings() {
        let inv: Inventory = toml::from_str(
            "[cluster]\nname = \"lab\"\nkubernetes_version = \"1.34.2\"\netcd_version = \"3.4.23\"\n\
             api_endpoint = \"10.0.0.1\"\nservice_cidr = \"10.32.0.0/24\"\npod_cidr = \"10.200.0.0/16\"\n\
             [[host]]\nname = \"n1\"\naddress = \"10.0.0.1\"\nroles = [\"etcd\"]\n",
        )
        .unwrap();
        let unit = |name: &str| crate::desired::ManagedUnit {
            name: name.into(),
            component: crate::desired::Component::Etcd,
            watches: vec![],
        };
        let host = DesiredHost {
            host: "n1".into(),
            users: vec![],
            dirs: vec![],
            files: vec![],
            units: vec![unit("etcd-backup.timer"), unit("etcd.service")],
        };
        let ports = expected_ports(&inv, &host);
        assert_eq!(ports, vec![(2379, "etcd.service".to_string()), (2380, "etcd.service".to_string())]);
    }
}
