//! Rolling restarts as data: restarts of units that are RUNNING become ordered stages,
//! one host each, every stage followed by a gate on that host; apply runs a stage only
//! after the previous gate passed, and a failed gate stops the rollout there (the
//! remaining hosts keep their old process; their new files are written, so the next
//! plan restarts them as `process-older-than` and the rollout continues).
//!
//! Why not for every restart: a unit that is down (failed, or not started) gains nothing
//! from waiting, and etcd members being created, or a cluster where a majority is down,
//! must start TOGETHER (a member waits for quorum before it reports ready, so one by one
//! would never regain quorum). Those keep the phase's start-together step.
//!
//! etcd's leader goes last, after `move-leader` to a member restarted (and caught up)
//! before it: one leader change instead of an election in the middle of the rollout.

use std::collections::BTreeMap;

use serde::Serialize;

use super::action::{Action, RestartReason, Wait, WriteReason};
use super::facts::HostFacts;
use super::phase_spec::{RollingGate, spec};
use super::{HostSteps, Plan};

/// One host's restarts and the gate that must pass before the next stage starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Stage {
    pub host: String,
    /// etcd only: hand leadership to this member before restarting this host (the leader).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub move_leader_to: Option<String>,
    /// etcd only: `member remove` this member (after the leader moved away from it,
    /// before the stage's actions): one the inventory no longer lists, or the stale entry
    /// of a listed member whose data is gone (then re-added as `add_learner` says).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remove_member: Option<super::membership::RemoveMember>,
    /// etcd only: `member add` this peer URL as a learner before the stage's start (a
    /// member joining a running cluster).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub add_learner: Option<String>,
    /// The restarts (or, for a joining member, its first start), in the host's plan order.
    pub actions: Vec<Action>,
    pub gate: Gate,
}

impl Stage {
    /// Its actions, and a `member remove` (a change even when the host is unreachable).
    pub fn changes(&self) -> usize {
        self.actions.len() + usize::from(self.remove_member.is_some())
    }
}

/// What must hold on the restarted host before the rollout moves on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "gate", rename_all = "kebab-case")]
pub enum Gate {
    /// The member answers a linearizable read, its applied raft index has reached the
    /// leader's index (read once it answers), and the cluster has a leader and quorum.
    /// On the last stage of a minor upgrade, also: the cluster version (etcd's
    /// `/version`, `etcdcluster`) has reached that minor, which the leader raises once
    /// every member runs it.
    EtcdMember {
        member: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        cluster_version: Option<String>,
    },
    /// The units are active (not activating, not restarting), then `/readyz` answers 200.
    ApiserverReady { units: Vec<String> },
    /// The units are active and stay so (not in a restart loop).
    UnitsActive { units: Vec<String> },
    /// A joining member: its learner's applied index reaches the leader's, it is promoted
    /// to a voting member, then as `EtcdMember`.
    EtcdJoin { member: String },
    /// A removed member: its id is gone from the member list, and the members the
    /// inventory lists hold quorum with a leader.
    EtcdRemoved { member: String, id: String },
}

impl Gate {
    pub fn describe(&self) -> String {
        match self {
            Gate::EtcdMember { member, cluster_version: None } => {
                format!("etcd member {member} healthy, caught up with the leader, quorum held")
            }
            Gate::EtcdMember { member, cluster_version: Some(v) } => format!(
                "etcd member {member} healthy, caught up with the leader, quorum held, cluster version {v}"
            ),
            Gate::ApiserverReady { units } => format!("{} active, /readyz 200", units.join(", ")),
            Gate::UnitsActive { units } => format!("{} active", units.join(", ")),
            Gate::EtcdJoin { member } => format!(
                "etcd learner {member} caught up with the leader, promoted to a voting member, healthy, quorum held"
            ),
            Gate::EtcdRemoved { member, id } => {
                format!("etcd member {member} ({id}) gone from the member list, the others hold quorum with a leader")
            }
        }
    }
}

/// A snapshot apply streams over etcd-client into `dir` (verified after writing, the
/// newest `keep` of the cluster kept) before the phase restarts any running member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Snapshot {
    pub dir: String,
    pub keep: usize,
    pub because: String,
}

/// What the plan knows about the running etcd cluster (read over etcd-client; nothing
/// when etcd does not answer).
#[derive(Debug, Clone, Default)]
pub struct EtcdNow {
    /// Name of the current leader.
    pub leader: Option<String>,
    /// The member list (None: no member answered, so membership is not planned).
    pub members: Option<Vec<crate::etcd::health::ListedMember>>,
    /// The inventory's members that answered a linearizable read.
    pub healthy: Vec<String>,
}

/// Moves the restarts of running units out of each rolling phase's host steps into
/// stages. `etcd_members`: the inventory's etcd members, in order.
/// `backup`: where the snapshot goes before running etcd members restart (None: `--no-backup`).
pub fn stage_restarts(
    plan: &mut Plan,
    facts: &BTreeMap<String, HostFacts>,
    etcd_members: &[String],
    etcd: &EtcdNow,
    backup: Option<(&str, usize)>,
) {
    for phase in plan.phases.iter_mut() {
        let Some(kind) = spec(phase.phase).rolling else { continue };
        if kind == RollingGate::EtcdMember && !etcd_quorum_running(facts, etcd_members) {
            continue;
        }
        let mut stages = Vec::new();
        for h in &mut phase.hosts {
            let (rolling, rest): (Vec<Action>, Vec<Action>) =
                std::mem::take(&mut h.actions).into_iter().partition(restarts_running_unit);
            h.actions = rest;
            if rolling.is_empty() {
                continue;
            }
            let units: Vec<String> = rolling.iter().map(|a| a.target().to_string()).collect();
            let gate = match kind {
                RollingGate::EtcdMember => Gate::EtcdMember { member: h.host.clone(), cluster_version: None },
                RollingGate::ApiserverReady => Gate::ApiserverReady { units },
                RollingGate::UnitsActive => Gate::UnitsActive { units },
            };
            stages.push(Stage {
                host: h.host.clone(),
                move_leader_to: None,
                remove_member: None,
                add_learner: None,
                actions: rolling,
                gate,
            });
        }
        phase.hosts.retain(|h: &HostSteps| !h.actions.is_empty());
        drop_staged_from_waits(&mut phase.waits, &stages);
        if kind == RollingGate::EtcdMember && !stages.is_empty() {
            leader_last(&mut stages, etcd, etcd_members);
            phase.snapshot = backup.map(|(dir, keep)| Snapshot {
                dir: dir.to_string(),
                keep,
                because: "running etcd members restart".into(),
            });
        }
        phase.stages = stages;
    }
    plan.count_changes();
}

/// A new etcd CA on members that are running is not a restart a rollout can make safe:
/// a member restarted with peer certificates of the new CA is refused by the members
/// still on the old one (and the snapshot before the rollout cannot even authenticate
/// with the new client certificate). It happens when the state dir was lost or replaced,
/// or another copy of it made a PKI of its own. Until CA rotation through a trust bundle
/// is planned, it is a problem of the plan: apply stops after preflight, nothing changes.
/// Only when the CA differs on a majority of the running members: a CA file damaged on a
/// minority is drift, and restoring it there is what the rest of the cluster trusts.
pub fn refuse_etcd_ca_swap(plan: &mut Plan, facts: &BTreeMap<String, HostFacts>, etcd_members: &[String], ca_path: &str) {
    if !etcd_quorum_running(facts, etcd_members) {
        return;
    }
    let running = |host: &str| facts.get(host).is_some_and(etcd_active);
    let running_members = etcd_members.iter().filter(|m| running(m)).count();
    let swapped: Vec<String> = plan
        .phases
        .iter()
        .flat_map(|p| &p.hosts)
        .filter(|h| etcd_members.contains(&h.host) && running(&h.host))
        .filter(|h| {
            h.actions.iter().any(|a| {
                matches!(a, Action::WriteFile { path, why, .. } if path == ca_path && why.contains(&WriteReason::Content))
            })
        })
        .map(|h| h.host.clone())
        .collect();
    if swapped.len() * 2 <= running_members {
        return;
    }
    for name in &swapped {
        if let Some(report) = plan.hosts.iter_mut().find(|h| &h.host == name) {
            report.problems.push(format!(
                "the etcd CA of this state dir differs from the one the running cluster trusts ({ca_path} on \
                 {name}): \
                 a rolling restart onto a new CA would split the members and cannot keep quorum. Use the state dir \
                 (.provision/<cluster>/) that built this cluster; CA rotation is not planned by this version \
                 (nothing was changed)"
            ));
        }
    }
}

/// The phase's waits were computed for every start and restart; the staged ones are
/// gated by their stage instead. No unit left to wait for: no wait at all.
pub(super) fn drop_staged_from_waits(waits: &mut Vec<Wait>, stages: &[Stage]) {
    let staged = |host: &str, unit: &String| {
        stages.iter().any(|s| s.host == host && s.actions.iter().any(|a| a.target() == unit))
    };
    let mut any_left = false;
    for w in waits.iter_mut() {
        if let Wait::UnitsActive { hosts } = w {
            for h in hosts.iter_mut() {
                let host = h.host.clone();
                h.units.retain(|u| !staged(&host, u));
            }
            hosts.retain(|h| !h.units.is_empty());
            any_left |= !hosts.is_empty();
        }
    }
    if !any_left {
        waits.clear();
    }
}

/// A restart of a unit that is serving now. A failed unit is down already: it restarts
/// with the phase's start step, like a start.
fn restarts_running_unit(a: &Action) -> bool {
    matches!(a, Action::RestartUnit { because, .. } if *because != RestartReason::Failed)
}

/// A majority of the members run etcd: the cluster is up and a rolling restart keeps it
/// so. Otherwise (being created, or a majority down) the members start together.
pub(super) fn etcd_quorum_running(facts: &BTreeMap<String, HostFacts>, members: &[String]) -> bool {
    let running = members
        .iter()
        .filter(|m| facts.get(*m).is_some_and(etcd_active))
        .count();
    !members.is_empty() && running >= crate::etcd::members::quorum(members.len())
}

/// etcd serves on this host now (its unit is active).
pub fn etcd_active(f: &HostFacts) -> bool {
    f.unit(crate::render::ETCD_UNIT).is_some_and(|u| u.active_state == "active")
}

/// The leader's stage goes last and first hands leadership to a member restarted before
/// it (or, when only the leader restarts, to the first other member).
fn leader_last(stages: &mut Vec<Stage>, etcd: &EtcdNow, members: &[String]) {
    let Some(leader) = etcd.leader.as_deref() else { return };
    let Some(i) = stages.iter().position(|s| s.host == leader) else { return };
    let mut last = stages.remove(i);
    let target = stages.first().map(|s| s.host.clone()).or_else(|| members.iter().find(|m| *m != leader).cloned());
    last.move_leader_to = target;
    stages.push(last);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::action::{HostUnits, Phase};
    use crate::plan::facts::UnitState;
    use crate::plan::{PhasePlan, PlanKind};

    fn restart(unit: &str, because: RestartReason) -> Action {
        Action::RestartUnit { unit: unit.into(), because }
    }

    fn changed() -> RestartReason {
        RestartReason::WatchedFileChanged { paths: vec!["/etc/systemd/system/etcd.service".into()] }
    }

    fn facts(active: &[(&str, &str)]) -> BTreeMap<String, HostFacts> {
        active
            .iter()
            .map(|(h, state)| {
                let mut f = HostFacts::default();
                f.units
                    .insert("etcd.service".into(), UnitState { active_state: state.to_string(), ..Default::default() });
                (h.to_string(), f)
            })
            .collect()
    }

    fn plan(phase: Phase, hosts: &[(&str, Vec<Action>)]) -> Plan {
        let hosts = hosts.iter().map(|(h, a)| HostSteps { host: h.to_string(), actions: a.clone() }).collect();
        let mut p = Plan {
            kind: PlanKind::Apply,
            cluster: "c".into(),
            hosts: vec![],
            phases: vec![PhasePlan { phase, hosts, waits: Vec::<Wait>::new(), stages: vec![], snapshot: None }],
            changes: 0,
        };
        p.count_changes();
        p
    }

    fn write(path: &str) -> Action {
        Action::DaemonReload { because: vec![path.into()] }
    }

    const MEMBERS: [&str; 3] = ["n1", "n2", "n3"];

    fn members() -> Vec<String> {
        MEMBERS.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn running_members_restart_one_by_one_leader_last_after_move_leader() {
        let mut p = plan(
            Phase::Etcd,
            &[
                ("n1", vec![write("u"), restart("etcd.service", changed())]),
                ("n2", vec![write("u"), restart("etcd.service", changed())]),
                ("n3", vec![write("u"), restart("etcd.service", changed())]),
            ],
        );
        let before = p.changes;
        // diff's waits for the three restarts: replaced by the stages' gates.
        let all = |u: &str| ["n1", "n2", "n3"].map(|h| HostUnits { host: h.into(), units: vec![u.into()] }).to_vec();
        p.phases[0].waits =
            vec![Wait::UnitsActive { hosts: all("etcd.service") }, Wait::EtcdQuorum { members: members() }];
        let f = facts(&[("n1", "active"), ("n2", "active"), ("n3", "active")]);
        stage_restarts(&mut p, &f, &members(), &EtcdNow { leader: Some("n1".into()), ..Default::default() }, Some(("/b", 3)));
        let phase = &p.phases[0];
        let order: Vec<&str> = phase.stages.iter().map(|s| s.host.as_str()).collect();
        assert_eq!(order, ["n2", "n3", "n1"]);
        assert_eq!(phase.stages[2].move_leader_to.as_deref(), Some("n2"));
        assert!(phase.stages[..2].iter().all(|s| s.move_leader_to.is_none()));
        assert!(phase.stages.iter().all(|s| s.gate == Gate::EtcdMember { member: s.host.clone(), cluster_version: None }));
        // The writes stay in the prepare step of every host; no restart is left there.
        assert!(phase.hosts.iter().all(|h| h.actions == vec![write("u")]));
        assert_eq!(p.changes, before, "stages count as changes");
        assert!(phase.waits.is_empty(), "{:?}", phase.waits);
        let json = serde_json::to_value(&phase.stages[2]).unwrap();
        assert_eq!(json["gate"]["gate"], "etcd-member");
        assert_eq!(json["move_leader_to"], "n2");
        assert_eq!(
            phase.snapshot,
            Some(Snapshot { dir: "/b".into(), keep: 3, because: "running etcd members restart".into() })
        );
    }

    #[test]
    fn a_cluster_being_created_or_without_a_majority_starts_together() {
        for states in [
            [("n1", "inactive"), ("n2", "inactive"), ("n3", "inactive")],
            [("n1", "active"), ("n2", "failed"), ("n3", "inactive")],
        ] {
            let acts = |_: &str| vec![restart("etcd.service", changed())];
            let mut p = plan(Phase::Etcd, &[("n1", acts("n1")), ("n2", acts("n2")), ("n3", acts("n3"))]);
            stage_restarts(&mut p, &facts(&states), &members(), &EtcdNow::default(), Some(("/b", 3)));
            assert!(p.phases[0].stages.is_empty(), "{states:?}");
            assert!(p.phases[0].snapshot.is_none(), "nothing runs: nothing to back up");
            assert_eq!(p.phases[0].hosts.len(), 3);
        }
    }

    #[test]
    fn a_failed_unit_is_not_staged_and_only_the_leader_moves_leadership() {
        let mut p = plan(
            Phase::Etcd,
            &[
                ("n1", vec![restart("etcd.service", changed())]),
                ("n2", vec![restart("etcd.service", RestartReason::Failed)]),
            ],
        );
        let f = facts(&[("n1", "active"), ("n2", "failed"), ("n3", "active")]);
        stage_restarts(&mut p, &f, &members(), &EtcdNow { leader: Some("n1".into()), ..Default::default() }, Some(("/b", 3)));
        let phase = &p.phases[0];
        assert_eq!(phase.stages.len(), 1);
        // Only the leader restarts: leadership goes to the first other member.
        assert_eq!(phase.stages[0].move_leader_to.as_deref(), Some("n2"));
        assert_eq!(phase.hosts.len(), 1);
        assert_eq!(phase.hosts[0].host, "n2");
    }

    #[test]
    fn a_new_etcd_ca_on_running_members_is_refused_a_mode_change_is_not() {
        let ca = "/etc/etcd/pki/ca.crt";
        let write = |why: WriteReason| Action::WriteFile {
            path: ca.into(),
            mode: crate::plan::action::Mode(0o600),
            owner: "etcd".into(),
            group: "etcd".into(),
            sha256: String::new(),
            size: 0,
            secret: false,
            why: vec![why],
            content: crate::plan::action::Content(std::sync::Arc::new(Vec::new())),
        };
        let report = |h: &str| crate::plan::HostReport::new(h, "");
        let running = facts(&[("n1", "active"), ("n2", "active"), ("n3", "active")]);
        let mut p = plan(Phase::Etcd, &[("n1", vec![write(WriteReason::Content)]), ("n2", vec![write(WriteReason::Mode)])]);
        p.hosts = ["n1", "n2", "n3"].iter().map(|h| report(h)).collect();
        refuse_etcd_ca_swap(&mut p, &running, &members(), ca);
        assert!(p.failed_hosts().is_empty(), "one damaged CA file of three is drift, repaired by the rollout");
        let mut p = plan(
            Phase::Etcd,
            &[("n1", vec![write(WriteReason::Content)]), ("n2", vec![write(WriteReason::Content)]), ("n3", vec![])],
        );
        p.hosts = ["n1", "n2", "n3"].iter().map(|h| report(h)).collect();
        refuse_etcd_ca_swap(&mut p, &running, &members(), ca);
        assert_eq!(p.failed_hosts(), vec!["n1", "n2"]);
        assert!(p.hosts[0].problems[0].contains("differs from the one the running cluster trusts"), "{:?}", p.hosts[0]);
        // A cluster being created gets its CA like any file.
        let mut p = plan(Phase::Etcd, &[("n1", vec![write(WriteReason::Content)])]);
        p.hosts = ["n1", "n2", "n3"].iter().map(|h| report(h)).collect();
        refuse_etcd_ca_swap(&mut p, &facts(&[("n1", "inactive"), ("n2", "inactive"), ("n3", "inactive")]), &members(), ca);
        assert!(p.failed_hosts().is_empty());
    }

    #[test]
    fn apiservers_and_other_tiers_get_their_own_gates() {
        let mut p = plan(
            Phase::KubeApiserver,
            &[
                ("cp1", vec![restart("kube-apiserver.service", changed())]),
                ("cp2", vec![restart("kube-apiserver.service", changed())]),
            ],
        );
        stage_restarts(&mut p, &BTreeMap::new(), &[], &EtcdNow::default(), Some(("/b", 3)));
        let gates: Vec<&Gate> = p.phases[0].stages.iter().map(|s| &s.gate).collect();
        assert_eq!(gates, vec![&Gate::ApiserverReady { units: vec!["kube-apiserver.service".into()] }; 2]);
        let mut p = plan(Phase::Kubelet, &[("w1", vec![restart("kubelet.service", changed())])]);
        stage_restarts(&mut p, &BTreeMap::new(), &[], &EtcdNow::default(), Some(("/b", 3)));
        assert_eq!(p.phases[0].stages[0].gate, Gate::UnitsActive { units: vec!["kubelet.service".into()] });
    }

    #[test]
    fn a_running_container_runtime_restarts_one_host_at_a_time_like_the_other_daemons() {
        let kernel = "provision-k8s-kernel.service";
        let mut p = plan(
            Phase::Runtime,
            &[
                ("w1", vec![restart("containerd.service", changed()), restart(kernel, RestartReason::Failed)]),
                ("w2", vec![restart("containerd.service", changed())]),
            ],
        );
        stage_restarts(&mut p, &BTreeMap::new(), &[], &EtcdNow::default(), Some(("/b", 3)));
        let phase = &p.phases[0];
        let staged: Vec<(&str, &Gate)> = phase.stages.iter().map(|s| (s.host.as_str(), &s.gate)).collect();
        let gate = Gate::UnitsActive { units: vec!["containerd.service".into()] };
        assert_eq!(staged, vec![("w1", &gate), ("w2", &gate)]);
        assert!(phase.snapshot.is_none(), "only etcd's rollout takes a snapshot");
        // A failed oneshot is down already: it restarts with the phase's start step.
        assert_eq!(phase.hosts.len(), 1);
        assert_eq!(phase.hosts[0].actions, vec![restart(kernel, RestartReason::Failed)]);
    }
}
