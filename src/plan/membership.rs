//! etcd membership follows the inventory, one member at a time, never below quorum.
//!
//! Planned from the member list etcd-client read (`EtcdNow::members`) and each host's
//! facts, as stages of the etcd phase (`rollout::Stage`), so `plan` shows every step:
//! - join: a listed member without data joins as a learner (`member add --learner`,
//!   first start with `--initial-cluster-state=existing`, caught up, promoted, gated);
//! - replace: a listed member whose data is gone while the cluster still lists its old
//!   id (wiped disk), or whose data belongs to a membership the cluster no longer has
//!   (removed by hand), has that id removed first (it is down: quorum is unchanged), its
//!   old data moved aside, then joins as above. Restarting it on an empty data dir under
//!   its old id would crash it ("tocommit is out of range") or fork its history;
//! - remove: a cluster member the inventory no longer lists is removed (leadership moved
//!   away from it first), and on its host, when reachable over SSH, etcd is stopped and
//!   disabled and its data moved aside (kept). Apply asks for `--yes` or a confirmation:
//!   a mistyped inventory must not delete a member.
//! Refused before anything changes, with what to do instead: two joins at once, a join
//! or a removal together with restarts of running members, a join together with a
//! removal of another member, and a removal that would leave fewer healthy members than
//! the smaller cluster's quorum.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::Serialize;

use super::action::{Action, Content, Mode, Phase, WriteReason};
use super::facts::{HostFacts, PathState};
use super::rollout::{EtcdNow, Gate, Snapshot, Stage, drop_staged_from_waits, etcd_active, etcd_quorum_running};
use super::{HostReport, Plan};
use crate::desired::DesiredState;
use crate::etcd::health::ListedMember;
use crate::render::ETCD_UNIT;

const BOOTSTRAP_NEW: &str = "--initial-cluster-state=new";
const BOOTSTRAP_EXISTING: &str = "--initial-cluster-state=existing";

/// A `member remove` in a stage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RemoveMember {
    /// Member id (hex).
    pub id: String,
    pub peer_urls: Vec<String>,
    pub why: RemoveWhy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RemoveWhy {
    /// The inventory no longer lists it: apply needs `--yes` (or a confirmation).
    NotInInventory,
    /// The stale id of a listed member whose data is gone: it is re-added right after.
    Replaced,
}

/// What membership planning needs besides the plan, the facts and the member list.
pub struct Membership<'a> {
    /// The inventory's etcd members, in order.
    pub members: &'a [String],
    /// Each inventory member's peer URL.
    pub peer_urls: &'a BTreeMap<String, String>,
    /// etcd's data dir (its `member/` subdirectory is the member's data).
    pub data_dir: &'a str,
    /// The bootstrap drop-in's path (rendered with `--initial-cluster-state=new`).
    pub dropin: &'a str,
    pub desired: &'a DesiredState,
    /// Where the snapshot goes before a membership change (None: `--no-backup`).
    pub backup: Option<(&'a str, usize)>,
    /// Hosts apply has an SSH session for: a removed member's host is retired (etcd
    /// stopped, disabled, data moved aside) only when reachable.
    pub reachable: &'a BTreeSet<String>,
    /// Appended to the names data is moved aside to (`member.removed-<suffix>`).
    pub aside_suffix: &'a str,
}

impl Membership<'_> {
    fn member_dir(&self) -> String {
        format!("{}/member", self.data_dir.trim_end_matches('/'))
    }

    fn aside(&self) -> String {
        format!("{}.removed-{}", self.member_dir(), self.aside_suffix)
    }

    fn listed<'l>(&self, live: &'l [ListedMember], name: &str) -> Option<&'l ListedMember> {
        let url = self.peer_urls.get(name)?;
        live.iter().find(|l| l.has_peer_url(url))
    }
}

/// A listed member that (re)joins, and what must go first.
struct Joiner<'l> {
    name: String,
    /// The cluster still lists this member under an old id (its data is gone).
    stale: Option<&'l ListedMember>,
    /// Its data is from a membership the cluster no longer has.
    move_data_aside: bool,
}

/// Plans joins, replacements and removals as stages of the etcd phase (see the module
/// comment). Nothing when the cluster is being created, a majority is down, or no member
/// answered the member list.
pub fn plan_membership(plan: &mut Plan, facts: &BTreeMap<String, HostFacts>, etcd: &EtcdNow, m: &Membership) {
    if !etcd_quorum_running(facts, m.members) {
        return;
    }
    let Some(live) = etcd.members.as_deref() else { return };
    let joiners = joiners(facts, live, m);
    let mut strangers: Vec<&ListedMember> = live
        .iter()
        .filter(|l| !m.members.iter().any(|n| m.peer_urls.get(n).is_some_and(|u| l.has_peer_url(u))))
        .collect();
    // A stable order the plan can promise (etcd lists members by id): learners first (they
    // hold no vote), then by name.
    strangers.sort_by(|a, b| (!a.is_learner, &a.name, &a.id).cmp(&(!b.is_learner, &b.name, &b.id)));
    if joiners.is_empty() && strangers.is_empty() {
        return;
    }
    // A joiner's own restart (its unit crash-looping on an empty data dir) is superseded
    // by its join stage.
    for phase in plan.phases.iter_mut().filter(|p| p.phase == Phase::Etcd) {
        phase.stages.retain(|s| !joiners.iter().any(|j| j.name == s.host));
    }
    for s in &strangers {
        let name = stranger_name(s);
        if !plan.hosts.iter().any(|h| h.host == name) {
            let address = s.peer_urls.first().map(|u| peer_host(u)).unwrap_or_default();
            plan.hosts.push(HostReport::new(&name, &address));
        }
    }
    if refused(plan, &joiners, &strangers, etcd, m) {
        return;
    }
    let mut stages = Vec::new();
    for s in &strangers {
        stages.push(removal_stage(s, etcd, m));
    }
    if let Some(j) = joiners.into_iter().next() {
        match join_stage(plan, &j, m) {
            Ok(stage) => stages.push(stage),
            Err(why) => {
                problem(plan, &j.name, why);
                return;
            }
        }
    }
    let Some(phase) = plan.phases.iter_mut().find(|p| p.phase == Phase::Etcd) else { return };
    let because = stages
        .iter()
        .map(|s| match (&s.remove_member, &s.add_learner) {
            (Some(r), None) if r.why == RemoveWhy::NotInInventory => format!("etcd member {} leaves", s.host),
            (Some(_), Some(_)) => format!("etcd member {} is replaced", s.host),
            _ => format!("etcd member {} joins", s.host),
        })
        .collect::<Vec<_>>()
        .join(", ");
    phase.stages.extend(stages);
    drop_staged_from_waits(&mut phase.waits, &phase.stages);
    phase.hosts.retain(|h| !h.actions.is_empty());
    phase.snapshot = m.backup.map(|(dir, keep)| Snapshot { dir: dir.to_string(), keep, because });
    plan.count_changes();
}

/// The removals in this plan that need the operator's yes: members the inventory no
/// longer lists.
pub fn removals_to_confirm(plan: &Plan) -> Vec<String> {
    plan.phases
        .iter()
        .flat_map(|p| &p.stages)
        .filter(|s| s.remove_member.as_ref().is_some_and(|r| r.why == RemoveWhy::NotInInventory))
        .map(|s| s.host.clone())
        .collect()
}

fn joiners<'l>(facts: &BTreeMap<String, HostFacts>, live: &'l [ListedMember], m: &Membership) -> Vec<Joiner<'l>> {
    let guard = m.member_dir();
    let mut out = Vec::new();
    for name in m.members {
        let Some(f) = facts.get(name) else { continue };
        if etcd_active(f) {
            continue;
        }
        let has_data = *f.path(&guard) != PathState::Missing;
        let joiner = match (has_data, m.listed(live, name)) {
            (false, None) => Joiner { name: name.clone(), stale: None, move_data_aside: false },
            // Added by an earlier apply that stopped before the start: continue from there.
            (false, Some(l)) if l.name.is_empty() => Joiner { name: name.clone(), stale: None, move_data_aside: false },
            (false, Some(l)) => Joiner { name: name.clone(), stale: Some(l), move_data_aside: false },
            (true, None) => Joiner { name: name.clone(), stale: None, move_data_aside: true },
            // A member that is down with its data: it restarts like any failed unit.
            (true, Some(_)) => continue,
        };
        out.push(joiner);
    }
    out
}

/// Says why the membership change cannot be made as the inventory asks (on the hosts'
/// reports, so plan and apply stop before any change). True when refused.
fn refused(plan: &mut Plan, joiners: &[Joiner], strangers: &[&ListedMember], etcd: &EtcdNow, m: &Membership) -> bool {
    let joining: Vec<&str> = joiners.iter().map(|j| j.name.as_str()).collect();
    let leaving: Vec<String> = strangers.iter().map(|s| stranger_name(s)).collect();
    let mut why: Vec<(String, String)> = Vec::new();
    if joining.len() > 1 {
        for name in &joining {
            why.push((
                name.to_string(),
                format!(
                    "{} etcd members would join at once ({}): membership changes one member at a time; keep one of \
                     them in the inventory, apply, then add the next (nothing was changed)",
                    joining.len(),
                    joining.join(", ")
                ),
            ));
        }
    }
    if !joining.is_empty() && !leaving.is_empty() {
        for name in &leaving {
            why.push((
                name.clone(),
                format!(
                    "{name} would leave while {} joins: one membership change at a time; keep {name} in the \
                     inventory until {} has joined (apply), then remove it (nothing was changed)",
                    joining.join(", "),
                    joining.join(", ")
                ),
            ));
        }
    }
    let restarting: Vec<String> = plan
        .phases
        .iter()
        .filter(|p| p.phase == Phase::Etcd)
        .flat_map(|p| p.stages.iter().map(|s| s.host.clone()))
        .collect();
    if !restarting.is_empty() {
        for name in joining.iter().map(|s| s.to_string()).chain(leaving.iter().cloned()) {
            why.push((
                name.clone(),
                format!(
                    "the membership of {name} would change while running members restart ({}): one change at a \
                     time; apply the other change first with the inventory's etcd members as they are now, then \
                     this one (nothing was changed)",
                    restarting.join(", ")
                ),
            ));
        }
    }
    // Each removal in turn: the members left must still hold the smaller cluster's quorum
    // with the healthy members the inventory lists (a stranger's health is not counted).
    let mut voters = etcd.members.as_deref().unwrap_or_default().iter().filter(|l| !l.is_learner).count();
    let healthy = m.members.iter().filter(|n| etcd.healthy.contains(n)).count();
    for s in strangers.iter().filter(|s| !s.is_learner) {
        voters -= 1;
        let quorum = crate::etcd::members::quorum(voters);
        if healthy < quorum {
            let name = stranger_name(s);
            why.push((
                name.clone(),
                format!(
                    "removing {name} would leave {voters} members with {healthy} healthy, and quorum needs {quorum}: \
                     bring the inventory's members back to health first ({} healthy now), or remove fewer at once \
                     (nothing was changed)",
                    if etcd.healthy.is_empty() { "none".to_string() } else { etcd.healthy.join(", ") }
                ),
            ));
        }
    }
    let any = !why.is_empty();
    for (host, text) in why {
        problem(plan, &host, text);
    }
    any
}

/// Remove a member the inventory no longer lists: leadership away first, then `member
/// remove`, then (when its host answers over SSH) etcd stopped, disabled, data kept aside.
fn removal_stage(s: &ListedMember, etcd: &EtcdNow, m: &Membership) -> Stage {
    let name = stranger_name(s);
    let move_leader_to = if etcd.leader.as_deref() == Some(name.as_str()) {
        m.members.iter().find(|n| etcd.healthy.contains(n)).cloned()
    } else {
        None
    };
    let actions = if m.reachable.contains(&name) {
        vec![
            Action::StopUnit { unit: ETCD_UNIT.into() },
            Action::DisableUnit { unit: ETCD_UNIT.into() },
            Action::MoveAside { path: m.member_dir(), to: m.aside() },
        ]
    } else {
        Vec::new()
    };
    Stage {
        host: name.clone(),
        move_leader_to,
        remove_member: Some(RemoveMember {
            id: s.id.clone(),
            peer_urls: s.peer_urls.clone(),
            why: RemoveWhy::NotInInventory,
        }),
        add_learner: None,
        actions,
        gate: Gate::EtcdRemoved { member: name, id: s.id.clone() },
    }
}

/// A listed member's (re)join: its stale id removed first when the cluster still lists
/// it, old data moved aside when it has some, the bootstrap drop-in written with
/// `--initial-cluster-state=existing`, `member add --learner`, its first start, and the
/// join gate. The host's start (and any drop-in write) leave its prepare step.
fn join_stage(plan: &mut Plan, j: &Joiner, m: &Membership) -> Result<Stage, String> {
    let dropin = existing_dropin(m, &j.name)?;
    let mut actions = Vec::new();
    if j.move_data_aside {
        actions.push(Action::MoveAside { path: m.member_dir(), to: m.aside() });
    }
    actions.push(dropin);
    actions.push(Action::DaemonReload { because: vec![m.dropin.to_string()] });
    actions.push(Action::StartUnit { unit: ETCD_UNIT.into() });
    if let Some(phase) = plan.phases.iter_mut().find(|p| p.phase == Phase::Etcd)
        && let Some(host) = phase.hosts.iter_mut().find(|h| h.host == j.name)
    {
        host.actions.retain(|a| match a {
            Action::WriteFile { path, .. } => path != m.dropin,
            Action::StartUnit { unit } | Action::RestartUnit { unit, .. } => unit != ETCD_UNIT,
            _ => true,
        });
    }
    Ok(Stage {
        host: j.name.clone(),
        move_leader_to: None,
        remove_member: j.stale.map(|l| RemoveMember {
            id: l.id.clone(),
            peer_urls: l.peer_urls.clone(),
            why: RemoveWhy::Replaced,
        }),
        add_learner: m.peer_urls.get(&j.name).cloned(),
        actions,
        gate: Gate::EtcdJoin { member: j.name.clone() },
    })
}

/// The host's rendered bootstrap drop-in with `--initial-cluster-state=existing`: it
/// names every inventory member, as a member joining the running cluster needs.
fn existing_dropin(m: &Membership, host: &str) -> Result<Action, String> {
    let file = m
        .desired
        .hosts
        .iter()
        .filter(|h| h.host == host)
        .flat_map(|h| &h.files)
        .find(|f| f.path == m.dropin)
        .ok_or_else(|| format!("{host} has no rendered {} to join the etcd cluster with", m.dropin))?;
    let text = String::from_utf8_lossy(&file.content);
    if !text.contains(BOOTSTRAP_NEW) {
        return Err(format!(
            "{host} cannot join the running etcd cluster: its bootstrap drop-in {} (template etcd-bootstrap.conf) has \
             no `{BOOTSTRAP_NEW}` to switch to `{BOOTSTRAP_EXISTING}`; keep that flag in a --templates override \
             (nothing was changed)",
            m.dropin
        ));
    }
    let bytes = text.replace(BOOTSTRAP_NEW, BOOTSTRAP_EXISTING).into_bytes();
    Ok(Action::WriteFile {
        path: file.path.clone(),
        mode: Mode(file.mode),
        owner: file.owner.clone(),
        group: file.group.clone(),
        sha256: crate::artifacts::checksum::sha256_hex(&bytes),
        size: bytes.len(),
        secret: file.secret,
        why: vec![WriteReason::Content],
        content: Content(Arc::new(bytes)),
    })
}

/// A member's name, or for one added but never started, its id.
fn stranger_name(s: &ListedMember) -> String {
    if s.name.is_empty() { format!("unstarted-{}", s.id) } else { s.name.clone() }
}

/// "https://10.0.0.5:2380" -> "10.0.0.5" ("[fd00::5]" -> "fd00::5").
pub fn peer_host(url: &str) -> String {
    let rest = url.split("://").nth(1).unwrap_or(url);
    let hostport = rest.split('/').next().unwrap_or(rest);
    if let Some(v6) = hostport.strip_prefix('[') {
        return v6.split(']').next().unwrap_or(v6).to_string();
    }
    hostport.rsplit_once(':').map(|(h, _)| h).unwrap_or(hostport).to_string()
}

fn problem(plan: &mut Plan, host: &str, why: String) {
    if let Some(report) = plan.hosts.iter_mut().find(|h| h.host == host) {
        report.problems.push(why);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::{Component, DesiredHost, ManagedFile};
    use crate::plan::facts::{Ownership, UnitState};
    use crate::plan::{HostSteps, PhasePlan, PlanKind};

    const DROPIN: &str = "/etc/systemd/system/etcd.service.d/10-bootstrap.conf";
    const DATA: &str = "/var/lib/etcd";

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    fn url(h: &str) -> String {
        format!("https://{h}:2380")
    }

    fn listed(h: &str, id: &str) -> ListedMember {
        ListedMember {
            id: id.into(),
            name: h.into(),
            peer_urls: vec![url(h)],
            client_urls: vec![format!("https://{h}:2379")],
            is_learner: false,
        }
    }

    /// Facts: (host, etcd unit state, has data).
    fn facts(hosts: &[(&str, &str, bool)]) -> BTreeMap<String, HostFacts> {
        hosts
            .iter()
            .map(|(h, state, data)| {
                let mut f = HostFacts::default();
                f.units.insert(ETCD_UNIT.into(), UnitState { active_state: state.to_string(), ..Default::default() });
                if *data {
                    let own = Ownership { mode: 0o700, owner: "etcd".into(), group: "etcd".into() };
                    f.paths.insert(format!("{DATA}/member"), PathState::Dir(own));
                }
                (h.to_string(), f)
            })
            .collect()
    }

    fn desired(hosts: &[&str], text: &str) -> DesiredState {
        let file = |h: &str| ManagedFile {
            path: DROPIN.into(),
            mode: 0o600,
            owner: "root".into(),
            group: "root".into(),
            content: Arc::new(format!("Environment=\"FLAGS=--initial-cluster=all-of-{h} {text}\"").into_bytes()),
            secret: false,
            component: Component::Etcd,
            only_while_missing: Some(format!("{DATA}/member")),
        };
        DesiredState {
            hosts: hosts
                .iter()
                .map(|h| DesiredHost {
                    host: h.to_string(),
                    users: vec![],
                    dirs: vec![],
                    files: vec![file(h)],
                    units: vec![],
                })
                .collect(),
        }
    }

    fn plan(reports: &[&str], etcd_hosts: Vec<HostSteps>) -> Plan {
        let mut p = Plan {
            kind: PlanKind::Apply,
            cluster: "c".into(),
            hosts: reports.iter().map(|h| HostReport::new(h, "")).collect(),
            phases: vec![PhasePlan {
                phase: Phase::Etcd,
                hosts: etcd_hosts,
                waits: vec![],
                stages: vec![],
                snapshot: None,
            }],
            changes: 0,
        };
        p.count_changes();
        p
    }

    struct Case {
        members: Vec<String>,
        urls: BTreeMap<String, String>,
        desired: DesiredState,
        reachable: BTreeSet<String>,
    }

    impl Case {
        fn new(members: &[&str], reachable: &[&str]) -> Case {
            Case {
                members: names(members),
                urls: members.iter().map(|h| (h.to_string(), url(h))).collect(),
                desired: desired(members, "--initial-cluster-state=new"),
                reachable: reachable.iter().map(|s| s.to_string()).collect(),
            }
        }

        fn run(&self, p: &mut Plan, f: &BTreeMap<String, HostFacts>, now: &EtcdNow) {
            let m = Membership {
                members: &self.members,
                peer_urls: &self.urls,
                data_dir: DATA,
                dropin: DROPIN,
                desired: &self.desired,
                backup: Some(("/b", 3)),
                reachable: &self.reachable,
                aside_suffix: "20261205T174500Z",
            };
            plan_membership(p, f, now, &m);
        }
    }

    fn now(live: &[(&str, &str)], leader: &str, healthy: &[&str]) -> EtcdNow {
        EtcdNow {
            leader: Some(leader.into()),
            members: Some(live.iter().map(|(h, id)| listed(h, id)).collect()),
            healthy: names(healthy),
        }
    }

    #[test]
    fn a_new_member_joins_as_a_learner_with_an_existing_state_dropin_and_two_at_once_are_refused() {
        let case = Case::new(&["n1", "n2", "n3", "n4"], &["n1", "n2", "n3", "n4"]);
        let f =
            facts(&[("n1", "active", true), ("n2", "active", true), ("n3", "active", true), ("n4", "inactive", false)]);
        let live = now(&[("n1", "a1"), ("n2", "a2"), ("n3", "a3")], "n1", &["n1", "n2", "n3"]);
        let start = Action::StartUnit { unit: ETCD_UNIT.into() };
        let mut p = plan(
            &["n1", "n2", "n3", "n4"],
            vec![HostSteps {
                host: "n4".into(),
                actions: vec![Action::EnableUnit { unit: ETCD_UNIT.into() }, start.clone()],
            }],
        );
        case.run(&mut p, &f, &live);
        assert!(p.failed_hosts().is_empty(), "{:?}", p.hosts);
        let etcd = &p.phases[0];
        assert_eq!(etcd.stages.len(), 1);
        let s = &etcd.stages[0];
        assert_eq!(
            (s.host.as_str(), s.add_learner.as_deref(), s.remove_member.as_ref()),
            ("n4", Some("https://n4:2380"), None)
        );
        assert_eq!(s.gate, Gate::EtcdJoin { member: "n4".into() });
        let Action::WriteFile { path, content, sha256, .. } = &s.actions[0] else { panic!("{s:?}") };
        assert_eq!(path, DROPIN);
        let text = String::from_utf8_lossy(&content.0);
        assert!(text.contains(BOOTSTRAP_EXISTING) && !text.contains(BOOTSTRAP_NEW), "{text}");
        assert_eq!(sha256, &crate::artifacts::checksum::sha256_hex(content.0.as_slice()));
        assert!(matches!(s.actions[1], Action::DaemonReload { .. }));
        assert_eq!(s.actions[2], start);
        // The start moved into the stage; the enable stays in the prepare step.
        assert_eq!(etcd.hosts[0].actions, vec![Action::EnableUnit { unit: ETCD_UNIT.into() }]);
        assert!(etcd.snapshot.as_ref().is_some_and(|s| s.because == "etcd member n4 joins"));
        assert!(removals_to_confirm(&p).is_empty(), "a join needs no --yes");

        let case = Case::new(&["n1", "n2", "n3", "n4", "n5"], &[]);
        let mut f5 = f.clone();
        f5.insert("n5".into(), f["n4"].clone());
        let mut p = plan(&["n1", "n2", "n3", "n4", "n5"], vec![]);
        case.run(&mut p, &f5, &live);
        assert_eq!(p.failed_hosts(), vec!["n4", "n5"]);
        assert!(p.hosts[3].problems[0].contains("one member at a time"), "{:?}", p.hosts[3]);
        assert!(p.phases[0].stages.is_empty());
    }

    #[test]
    fn a_member_no_longer_listed_is_removed_leader_moved_first_retired_when_reachable() {
        let case = Case::new(&["n1", "n2", "n3"], &["n1", "n2", "n3", "n4"]);
        let f = facts(&[("n1", "active", true), ("n2", "active", true), ("n3", "active", true)]);
        let live = now(&[("n1", "a1"), ("n2", "a2"), ("n3", "a3"), ("n4", "a4")], "n4", &["n1", "n2", "n3"]);
        let mut p = plan(&["n1", "n2", "n3"], vec![]);
        case.run(&mut p, &f, &live);
        assert!(p.failed_hosts().is_empty(), "{:?}", p.hosts);
        assert!(p.hosts.iter().any(|h| h.host == "n4"), "the leaving member is shown with the hosts");
        let s = &p.phases[0].stages[0];
        assert_eq!(s.host, "n4");
        assert_eq!(s.move_leader_to.as_deref(), Some("n1"));
        assert_eq!(
            s.remove_member,
            Some(RemoveMember { id: "a4".into(), peer_urls: vec![url("n4")], why: RemoveWhy::NotInInventory })
        );
        assert_eq!(
            s.actions,
            vec![
                Action::StopUnit { unit: ETCD_UNIT.into() },
                Action::DisableUnit { unit: ETCD_UNIT.into() },
                Action::MoveAside {
                    path: "/var/lib/etcd/member".into(),
                    to: "/var/lib/etcd/member.removed-20261205T174500Z".into()
                },
            ]
        );
        assert_eq!(s.gate, Gate::EtcdRemoved { member: "n4".into(), id: "a4".into() });
        assert_eq!(removals_to_confirm(&p), vec!["n4"]);
        assert_eq!(p.changes, 4);

        // Unreachable: the member is still removed (a change), nothing runs on its host.
        let case = Case::new(&["n1", "n2", "n3"], &["n1", "n2", "n3"]);
        let mut p = plan(&["n1", "n2", "n3"], vec![]);
        case.run(
            &mut p,
            &f,
            &now(&[("n1", "a1"), ("n2", "a2"), ("n3", "a3"), ("n4", "a4")], "n1", &["n1", "n2", "n3"]),
        );
        let s = &p.phases[0].stages[0];
        assert!(s.actions.is_empty() && s.move_leader_to.is_none());
        assert_eq!(p.changes, 1);
        assert!(!p.is_empty());
    }

    #[test]
    fn five_to_three_removes_two_in_turn_but_never_below_quorum() {
        let case = Case::new(&["n1", "n2", "n3"], &[]);
        let f = facts(&[("n1", "active", true), ("n2", "active", true), ("n3", "active", true)]);
        let five = [("n1", "a1"), ("n2", "a2"), ("n3", "a3"), ("n5", "a0"), ("n4", "a9")];
        let mut p = plan(&["n1", "n2", "n3"], vec![]);
        case.run(&mut p, &f, &now(&five, "n1", &["n1", "n2", "n3"]));
        let order: Vec<&str> = p.phases[0].stages.iter().map(|s| s.host.as_str()).collect();
        assert_eq!(order, ["n4", "n5"]);
        // One of the three unhealthy: the first removal would leave 4 members with 2 known
        // healthy (the leaving ones' health is not counted), and quorum needs 3: refused
        // before anything changes.
        let mut p = plan(&["n1", "n2", "n3"], vec![]);
        case.run(&mut p, &f, &now(&five, "n1", &["n1", "n2"]));
        assert!(p.phases[0].stages.is_empty());
        let n4 = p.hosts.iter().find(|h| h.host == "n4").unwrap();
        assert!(n4.problems[0].contains("quorum needs 3"), "{:?}", n4.problems);
    }

    #[test]
    fn a_wiped_member_is_replaced_and_stale_data_is_moved_aside_without_any_yes() {
        let case = Case::new(&["n1", "n2", "n3"], &["n1", "n2", "n3"]);
        let live = now(&[("n1", "a1"), ("n2", "a2"), ("n3", "a3")], "n1", &["n1", "n2"]);
        // Data gone, the old id still listed: removed, then added again.
        let f = facts(&[("n1", "active", true), ("n2", "active", true), ("n3", "activating", false)]);
        let restart = Action::RestartUnit {
            unit: ETCD_UNIT.into(),
            because: crate::plan::action::RestartReason::ProcessOlderThan { paths: vec![] },
        };
        let mut p = plan(&["n1", "n2", "n3"], vec![HostSteps { host: "n3".into(), actions: vec![restart.clone()] }]);
        p.phases[0].stages.push(Stage {
            host: "n3".into(),
            move_leader_to: None,
            remove_member: None,
            add_learner: None,
            actions: vec![restart],
            gate: Gate::EtcdMember { member: "n3".into(), cluster_version: None },
        });
        case.run(&mut p, &f, &live);
        assert!(p.failed_hosts().is_empty(), "{:?}", p.hosts);
        assert_eq!(p.phases[0].stages.len(), 1, "its own restart is replaced by the join: {:?}", p.phases[0].stages);
        let s = &p.phases[0].stages[0];
        assert_eq!(s.remove_member.as_ref().map(|r| (r.id.as_str(), r.why)), Some(("a3", RemoveWhy::Replaced)));
        assert_eq!(s.add_learner.as_deref(), Some("https://n3:2380"));
        assert!(removals_to_confirm(&p).is_empty());
        assert!(p.phases[0].hosts.is_empty());
        // Data there but the cluster no longer lists it (removed by hand): moved aside, joins.
        let f = facts(&[("n1", "active", true), ("n2", "active", true), ("n3", "failed", true)]);
        let mut p = plan(&["n1", "n2", "n3"], vec![]);
        case.run(&mut p, &f, &now(&[("n1", "a1"), ("n2", "a2")], "n1", &["n1", "n2"]));
        let s = &p.phases[0].stages[0];
        assert!(s.remove_member.is_none());
        assert!(matches!(&s.actions[0], Action::MoveAside { path, .. } if path == "/var/lib/etcd/member"), "{s:?}");
        // Down with its data and still listed: an ordinary failed member, no membership change.
        let mut p = plan(&["n1", "n2", "n3"], vec![]);
        case.run(&mut p, &f, &live);
        assert!(p.phases[0].stages.is_empty());
    }

    #[test]
    fn mixed_changes_and_a_template_without_the_state_flag_are_refused() {
        let f =
            facts(&[("n1", "active", true), ("n2", "active", true), ("n3", "active", true), ("n4", "inactive", false)]);
        // n4 joins while n5 (no longer listed) would leave.
        let case = Case::new(&["n1", "n2", "n3", "n4"], &[]);
        let mut p = plan(&["n1", "n2", "n3", "n4"], vec![]);
        let live = now(&[("n1", "a1"), ("n2", "a2"), ("n3", "a3"), ("n5", "a5")], "n1", &["n1", "n2", "n3"]);
        case.run(&mut p, &f, &live);
        assert_eq!(p.failed_hosts(), vec!["n5"]);
        assert!(p.phases[0].stages.is_empty());
        // A removal while running members restart.
        let case = Case::new(&["n1", "n2", "n3"], &[]);
        let mut p = plan(&["n1", "n2", "n3"], vec![]);
        p.phases[0].stages.push(Stage {
            host: "n2".into(),
            move_leader_to: None,
            remove_member: None,
            add_learner: None,
            actions: vec![],
            gate: Gate::EtcdMember { member: "n2".into(), cluster_version: None },
        });
        case.run(&mut p, &f, &live);
        assert!(p.hosts.iter().find(|h| h.host == "n5").unwrap().problems[0].contains("running members restart"));
        // An override template without --initial-cluster-state=new cannot be switched.
        let mut case = Case::new(&["n1", "n2", "n3", "n4"], &[]);
        case.desired = desired(&["n1", "n2", "n3", "n4"], "--initial-cluster-token=x");
        let mut p = plan(&["n1", "n2", "n3", "n4"], vec![]);
        case.run(&mut p, &f, &now(&[("n1", "a1"), ("n2", "a2"), ("n3", "a3")], "n1", &["n1", "n2", "n3"]));
        assert_eq!(p.failed_hosts(), vec!["n4"]);
        assert!(p.hosts[3].problems[0].contains("--templates"), "{:?}", p.hosts[3]);
    }

    #[test]
    fn peer_hosts() {
        assert_eq!(peer_host("https://10.0.0.5:2380"), "10.0.0.5");
        assert_eq!(peer_host("https://[fd00::5]:2380/"), "fd00::5");
    }
}
