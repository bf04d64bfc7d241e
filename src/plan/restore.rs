//! The restore plan (`provision etcd restore`): every member's data replaced from one
//! verified snapshot, as data printed before confirmation and executed by apply's
//! machinery like any plan.
//!
//! Phases, in order (nothing changes on a host before the snapshot is on every member):
//! 1. kube-apiserver stopped where it runs: it must not write to a cluster being replaced;
//! 2. etcd: the snapshot uploaded beside the data dir (0600, atomic) on every member,
//!    etcd stopped, the member's data dir rebuilt from it (sha256 checked on the host)
//!    with its name, peer URL, the initial cluster and a NEW cluster token, the old data
//!    dir kept; then every member started together (one by one would never reach
//!    quorum) and a wait for a healthy quorum;
//! 3. kube-apiserver started again where it was stopped, and waited for;
//! 4. etcd again: the uploaded snapshots and (unless `--keep-previous`) the previous data
//!    dirs removed, only after the quorum wait passed.
//!
//! When phase 2 fails, `rollback_plan` is the plan that undoes it: etcd stopped, every
//! member's previous data dir put back, etcd and kube-apiserver started again.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::action::{Action, Content, HostUnits, Mode, Phase, Wait, WriteReason};
use super::facts::HostFacts;
use super::{HostReport, HostSteps, PhasePlan, Plan, PlanKind};
use crate::etcd::Member;
use crate::etcd::restore_script::MemberRestore;
use crate::inventory::{Inventory, Role};

use crate::render::{APISERVER_UNIT, ETCD_UNIT};

/// What the operator chose to restore.
pub struct RestoreRequest {
    /// The verified snapshot's bytes and their sha256.
    pub snapshot: Arc<Vec<u8>>,
    pub sha256: String,
    /// Names this run's files and dirs, and the new cluster token.
    pub stamp: String,
    pub keep_previous: bool,
}

impl RestoreRequest {
    pub fn token(&self, cluster: &str) -> String {
        format!("{cluster}-restore-{}", self.stamp)
    }
}

/// Each member's restore, in member order.
pub fn member_restores(inv: &Inventory, members: &[Member], req: &RestoreRequest) -> Vec<MemberRestore> {
    let data_dir = inv.etcd.data_dir.trim_end_matches('/').to_string();
    let cluster = crate::etcd::members::initial_cluster(members);
    members
        .iter()
        .map(|m| MemberRestore {
            snapshot: format!("{data_dir}.provision-restore-{}.db", req.stamp),
            data_dir: data_dir.clone(),
            name: m.name.clone(),
            initial_cluster: cluster.clone(),
            peer_url: m.peer_url.clone(),
            token: req.token(&inv.cluster.name),
            stamp: req.stamp.clone(),
            owner: "etcd".into(),
            unit: Some(ETCD_UNIT.into()),
        })
        .collect()
}

/// The restore plan (see the module comment): `restores` from [`member_restores`] (one per
/// member), `apiservers` from [`running_apiservers`], as the rollback plan takes them.
pub fn plan_restore(
    inv: &Inventory,
    reports: Vec<HostReport>,
    restores: &[MemberRestore],
    apiservers: &[String],
    req: &RestoreRequest,
) -> Plan {
    let etcd_hosts: Vec<HostSteps> = restores
        .iter()
        .map(|r| HostSteps {
            host: r.name.clone(),
            actions: vec![
                upload(r, req),
                Action::StopUnit { unit: ETCD_UNIT.into() },
                Action::RestoreEtcdMember { restore: r.clone(), sha256: req.sha256.clone() },
                Action::StartUnit { unit: ETCD_UNIT.into() },
            ],
        })
        .collect();
    let cleanup: Vec<HostSteps> = restores
        .iter()
        .map(|r| {
            let mut actions = vec![Action::RemoveFile { path: r.snapshot.clone() }];
            if !req.keep_previous {
                actions.push(Action::PurgeDir { path: r.previous_dir() });
            }
            HostSteps { host: r.name.clone(), actions }
        })
        .collect();
    let names: Vec<String> = restores.iter().map(|r| r.name.clone()).collect();
    let phases = vec![
        phase(Phase::Preflight, vec![], vec![]),
        phase(Phase::KubeApiserver, each(apiservers, Action::StopUnit { unit: APISERVER_UNIT.into() }), vec![]),
        phase(Phase::Etcd, etcd_hosts, vec![Wait::EtcdQuorum { members: names }]),
        phase(
            Phase::KubeApiserver,
            each(apiservers, Action::StartUnit { unit: APISERVER_UNIT.into() }),
            apiservers_active(apiservers),
        ),
        phase(Phase::Etcd, cleanup, vec![]),
    ];
    finish(inv, reports, phases)
}

/// Undoes a restore that failed in its etcd phase: every member's previous data dir put
/// back (where the swap happened; nothing otherwise), etcd started, kube-apiserver too.
pub fn rollback_plan(
    inv: &Inventory,
    reports: Vec<HostReport>,
    restores: &[MemberRestore],
    apiservers: &[String],
) -> Plan {
    let etcd_hosts = restores
        .iter()
        .map(|r| HostSteps {
            host: r.name.clone(),
            actions: vec![
                Action::StopUnit { unit: ETCD_UNIT.into() },
                Action::RollBackEtcdRestore { restore: r.clone() },
                Action::RemoveFile { path: r.snapshot.clone() },
                Action::StartUnit { unit: ETCD_UNIT.into() },
            ],
        })
        .collect();
    let names = restores.iter().map(|r| r.name.clone()).collect();
    let phases = vec![
        phase(Phase::Preflight, vec![], vec![]),
        phase(Phase::Etcd, etcd_hosts, vec![Wait::EtcdQuorum { members: names }]),
        phase(
            Phase::KubeApiserver,
            each(apiservers, Action::StartUnit { unit: APISERVER_UNIT.into() }),
            apiservers_active(apiservers),
        ),
    ];
    finish(inv, reports, phases)
}

/// Control-plane hosts whose kube-apiserver is active now.
pub fn running_apiservers(inv: &Inventory, facts: &BTreeMap<String, HostFacts>) -> Vec<String> {
    inv.hosts_with(Role::ControlPlane)
        .filter(|h| facts.get(&h.name).and_then(|f| f.unit(APISERVER_UNIT)).is_some_and(|u| u.active_state == "active"))
        .map(|h| h.name.clone())
        .collect()
}

fn upload(r: &MemberRestore, req: &RestoreRequest) -> Action {
    Action::WriteFile {
        path: r.snapshot.clone(),
        mode: Mode(0o600),
        owner: "root".into(),
        group: "root".into(),
        sha256: req.sha256.clone(),
        size: req.snapshot.len(),
        // The whole key space (Secrets included): never printed.
        secret: true,
        why: vec![WriteReason::Create],
        content: Content(req.snapshot.clone()),
    }
}

fn each(hosts: &[String], action: Action) -> Vec<HostSteps> {
    hosts.iter().map(|h| HostSteps { host: h.clone(), actions: vec![action.clone()] }).collect()
}

fn apiservers_active(hosts: &[String]) -> Vec<Wait> {
    if hosts.is_empty() {
        return Vec::new();
    }
    let hosts = hosts.iter().map(|h| HostUnits { host: h.clone(), units: vec![APISERVER_UNIT.into()] }).collect();
    vec![Wait::UnitsActive { hosts }]
}

fn phase(phase: Phase, hosts: Vec<HostSteps>, waits: Vec<Wait>) -> PhasePlan {
    PhasePlan { phase, hosts, waits, stages: Vec::new(), snapshot: None }
}

fn finish(inv: &Inventory, reports: Vec<HostReport>, phases: Vec<PhasePlan>) -> Plan {
    let mut plan =
        Plan { kind: PlanKind::Restore, cluster: inv.cluster.name.clone(), hosts: reports, phases, changes: 0 };
    plan.count_changes();
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::facts::UnitState;

    /// The lab fixture: node1..3, each etcd + control-plane, on 127.0.1.1..3.
    fn inventory() -> Inventory {
        toml::from_str(include_str!("../../tests/fixtures/lab.toml")).expect("the lab fixture parses")
    }

    fn request(keep_previous: bool) -> RestoreRequest {
        RestoreRequest {
            snapshot: Arc::new(b"not really a snapshot".to_vec()),
            sha256: "ab".repeat(32),
            stamp: "20261205T180000Z".into(),
            keep_previous,
        }
    }

    fn kinds(p: &PhasePlan, host: &str) -> Vec<String> {
        let h = p.hosts.iter().find(|h| h.host == host).unwrap();
        h.actions.iter().map(|a| serde_json::to_value(a).unwrap()["action"].as_str().unwrap().to_string()).collect()
    }

    #[test]
    fn apiservers_stop_first_members_restore_and_start_together_then_cleanup_after_quorum() {
        let inv = inventory();
        let members = crate::etcd::members(&inv);
        let mut facts = BTreeMap::new();
        let mut running = HostFacts::default();
        running.units.insert(APISERVER_UNIT.into(), UnitState { active_state: "active".into(), ..Default::default() });
        facts.insert("node1".to_string(), running);
        facts.insert("node2".to_string(), HostFacts::default());
        let apiservers = running_apiservers(&inv, &facts);
        let restores = member_restores(&inv, &members, &request(false));
        let plan = plan_restore(&inv, vec![], &restores, &apiservers, &request(false));
        assert_eq!(plan.kind, PlanKind::Restore);
        let order: Vec<Phase> = plan.phases.iter().map(|p| p.phase).collect();
        assert_eq!(order, [Phase::Preflight, Phase::KubeApiserver, Phase::Etcd, Phase::KubeApiserver, Phase::Etcd]);
        assert_eq!(kinds(&plan.phases[1], "node1"), ["stop-unit"]);
        assert!(plan.phases[1].hosts.iter().all(|h| h.host == "node1"), "only where kube-apiserver runs");
        for m in ["node1", "node2", "node3"] {
            assert_eq!(kinds(&plan.phases[2], m), ["write-file", "stop-unit", "restore-etcd-member", "start-unit"]);
            assert_eq!(kinds(&plan.phases[4], m), ["remove-file", "purge-dir"]);
        }
        assert_eq!(
            plan.phases[2].waits,
            vec![Wait::EtcdQuorum { members: vec!["node1".into(), "node2".into(), "node3".into()] }]
        );
        let json = serde_json::to_string(&plan).unwrap();
        assert!(!json.contains("not really a snapshot"), "the snapshot's content is never printed");
        assert!(json.contains("\"token\":\"lab-restore-20261205T180000Z\""), "{json}");
        assert!(
            json.contains("node1=https://127.0.1.1:2380,node2=https://127.0.1.2:2380,node3=https://127.0.1.3:2380")
        );
        let Action::WriteFile { secret, mode, path, .. } = &plan.phases[2].hosts[0].actions[0] else { panic!() };
        assert!(*secret && mode.0 == 0o600 && path == "/var/lib/etcd.provision-restore-20261205T180000Z.db");
        // --keep-previous: the old data dirs stay.
        let plan =
            plan_restore(&inv, vec![], &member_restores(&inv, &members, &request(true)), &apiservers, &request(true));
        assert_eq!(kinds(&plan.phases[4], "node3"), ["remove-file"]);
        // The rollback: previous data back, started together, the apiservers started.
        let rb = rollback_plan(&inv, vec![], &restores, &["node1".into()]);
        assert_eq!(kinds(&rb.phases[1], "node2"), ["stop-unit", "roll-back-etcd-restore", "remove-file", "start-unit"]);
        assert_eq!(kinds(&rb.phases[2], "node1"), ["start-unit"]);
    }
}
