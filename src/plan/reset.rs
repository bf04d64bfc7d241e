//! The reset plan: undo what apply installed, as data, printed before confirmation.
//!
//! Exactly the managed paths of the desired state are removed (never a recursive
//! delete, except the etcd data dir with --purge-data). A directory is removed only
//! when nothing but provision's own files is in it, so a second reset finds nothing
//! left to do, and files someone else put there survive. Users are kept: provision
//! cannot tell a user it created from one that existed (the etcd package makes one).

use std::collections::{BTreeMap, BTreeSet};

use super::action::{Action, Phase};
use super::diff::{is_unit_file, phases_of};
use super::facts::{HostFacts, PathState};
use super::{HostReport, HostSteps, PhasePlan, Plan, PlanKind};
use crate::desired::{DesiredHost, DesiredState};

pub struct ResetOptions<'a> {
    /// The etcd data dir, removed with everything in it (`--purge-data`); None keeps it.
    pub purge_data_dir: Option<&'a str>,
    /// The etcd data dir path, always kept without --purge-data.
    pub data_dir: &'a str,
}

pub fn plan_reset(
    cluster: &str,
    mut reports: Vec<HostReport>,
    desired: &DesiredState,
    facts: &BTreeMap<String, HostFacts>,
    opts: &ResetOptions<'_>,
) -> Plan {
    let mut per_phase: BTreeMap<Phase, Vec<HostSteps>> = BTreeMap::new();
    for host in &desired.hosts {
        let Some(f) = facts.get(&host.host) else { continue };
        let (actions, notes) = reset_host(host, f, opts);
        if let Some(r) = reports.iter_mut().find(|r| r.host == host.host) {
            r.warnings.extend(notes);
        }
        for (phase, actions) in actions {
            if !actions.is_empty() {
                per_phase.entry(phase).or_default().push(HostSteps { host: host.host.clone(), actions });
            }
        }
    }
    // Reverse dependency order: kubelet first, base (shared files, directories) last.
    // Directories are removed in the base phase even when the desired state has no base
    // component (etcd only): every phase with actions is kept.
    let present = phases_of(desired);
    let mut order: Vec<Phase> = Phase::ALL
        .into_iter()
        .filter(|p| *p != Phase::Preflight && (present.contains(p) || per_phase.contains_key(p)))
        .collect();
    order.reverse();
    order.insert(0, Phase::Preflight);
    let phases = order
        .into_iter()
        .map(|phase| PhasePlan {
            phase,
            hosts: per_phase.remove(&phase).unwrap_or_default(),
            waits: Vec::new(),
            stages: Vec::new(),
            snapshot: None,
        })
        .collect();
    let mut plan = Plan { kind: PlanKind::Reset, cluster: cluster.to_string(), hosts: reports, phases, changes: 0 };
    plan.count_changes();
    plan
}

fn reset_host(d: &DesiredHost, f: &HostFacts, opts: &ResetOptions<'_>) -> (BTreeMap<Phase, Vec<Action>>, Vec<String>) {
    let mut out: BTreeMap<Phase, Vec<Action>> = BTreeMap::new();
    let mut notes = Vec::new();

    for path in &f.stale_temps {
        out.entry(Phase::Preflight).or_default().push(Action::RemoveStaleTemp { path: path.clone() });
    }

    for u in &d.units {
        let Some(state) = f.unit(&u.name) else { continue };
        let phase = Phase::of(u.component);
        if !matches!(state.active_state.as_str(), "inactive" | "") {
            out.entry(phase).or_default().push(Action::StopUnit { unit: u.name.clone() });
        }
        if state.unit_file_state.starts_with("enabled") || state.unit_file_state == "linked" {
            out.entry(phase).or_default().push(Action::DisableUnit { unit: u.name.clone() });
        }
    }

    // What will be gone once this plan ran: decides which directories end up empty.
    let mut removed: BTreeSet<String> = f.stale_temps.iter().cloned().collect();
    let mut reload: BTreeMap<Phase, Vec<String>> = BTreeMap::new();
    for path in crate::desired::RETIRED_FILES {
        if matches!(f.path(path), PathState::File(_) | PathState::Link { .. }) {
            out.entry(Phase::Preflight).or_default().push(Action::RemoveFile { path: path.to_string() });
            removed.insert(path.to_string());
        }
    }
    for file in &d.files {
        if matches!(f.path(&file.path), PathState::File(_) | PathState::Link { .. }) {
            let phase = Phase::of(file.component);
            out.entry(phase).or_default().push(Action::RemoveFile { path: file.path.clone() });
            removed.insert(file.path.clone());
            if is_unit_file(&file.path) {
                reload.entry(phase).or_default().push(file.path.clone());
            }
        }
    }

    if let Some(data) = opts.purge_data_dir {
        if matches!(f.path(data), PathState::Dir(_)) {
            let phase = if d.units.iter().any(|u| u.component == crate::desired::Component::Etcd) {
                Phase::Etcd
            } else {
                Phase::Base
            };
            out.entry(phase).or_default().push(Action::PurgeDir { path: data.to_string() });
            removed.insert(data.to_string());
        }
    }

    for (phase, because) in reload {
        out.entry(phase).or_default().push(Action::DaemonReload { because });
    }

    // Directories last, deepest first, all in the base phase (files of every component
    // live in them).
    let mut dirs: Vec<&str> = d.dirs.iter().map(|x| x.path.as_str()).collect();
    dirs.sort_by(|a, b| b.cmp(a));
    for dir in dirs {
        if removed.contains(dir) || !matches!(f.path(dir), PathState::Dir(_)) {
            continue;
        }
        if dir == opts.data_dir && opts.purge_data_dir.is_none() {
            notes.push(format!("kept {dir}: etcd data (--purge-data removes it)"));
            continue;
        }
        let foreign: Vec<&String> = f
            .dir_entries
            .get(dir)
            .map(|entries| entries.iter().filter(|e| !removed.contains(*e)).collect())
            .unwrap_or_default();
        if foreign.is_empty() {
            out.entry(Phase::Base).or_default().push(Action::RemoveDir { path: dir.to_string() });
            removed.insert(dir.to_string());
        } else {
            let shown: Vec<&str> = foreign.iter().take(3).map(|s| s.as_str()).collect();
            let more = if foreign.len() > 3 { format!(" and {} more", foreign.len() - 3) } else { String::new() };
            notes.push(format!("kept {dir}: holds what provision did not install ({}{more})", shown.join(", ")));
        }
    }
    (out, notes)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::desired::{Component, ManagedDir, ManagedFile, ManagedUnit};
    use crate::plan::facts::{FileStat, Ownership, UnitState};

    fn desired() -> DesiredHost {
        let dir = |p: &str| ManagedDir { path: p.into(), mode: 0o700, owner: "etcd".into(), group: "etcd".into(), component: Component::Etcd };
        let file = |p: &str| ManagedFile {
            path: p.into(),
            mode: 0o600,
            owner: "etcd".into(),
            group: "etcd".into(),
            content: Arc::new(vec![1]),
            secret: false,
            component: Component::Etcd,
            only_while_missing: None,
        };
        DesiredHost {
            host: "node1".into(),
            users: vec![],
            dirs: vec![dir("/etc/etcd"), dir("/etc/etcd/pki"), dir("/var/lib/etcd")],
            files: vec![file("/etc/etcd/pki/server.key"), file("/etc/systemd/system/etcd.service")],
            units: vec![ManagedUnit { name: "etcd.service".into(), component: Component::Etcd, watches: vec![] }],
        }
    }

    fn installed() -> HostFacts {
        let own = Ownership { mode: 0o700, owner: "etcd".into(), group: "etcd".into() };
        let st = FileStat { own: own.clone(), size: 1, mtime: None, sha256: None };
        let mut f = HostFacts::default();
        for d in ["/etc/etcd", "/etc/etcd/pki", "/var/lib/etcd"] {
            f.paths.insert(d.into(), PathState::Dir(own.clone()));
        }
        for p in ["/etc/etcd/pki/server.key", "/etc/systemd/system/etcd.service"] {
            f.paths.insert(p.into(), PathState::File(st.clone()));
        }
        f.dir_entries.insert("/etc/etcd".into(), vec!["/etc/etcd/pki".into()]);
        f.dir_entries.insert("/etc/etcd/pki".into(), vec!["/etc/etcd/pki/server.key".into()]);
        f.dir_entries.insert("/var/lib/etcd".into(), vec!["/var/lib/etcd/member".into()]);
        f.units.insert(
            "etcd.service".into(),
            UnitState { active_state: "active".into(), unit_file_state: "enabled".into(), ..UnitState::default() },
        );
        f
    }

    /// In reset execution order: preflight, then the phases in reverse.
    fn flat(a: &BTreeMap<Phase, Vec<Action>>) -> Vec<String> {
        let mut phases: Vec<(&Phase, &Vec<Action>)> = a.iter().collect();
        phases.sort_by_key(|(p, _)| if **p == Phase::Preflight { 0 } else { 10 - **p as i32 });
        phases.into_iter().flat_map(|(_, v)| v).map(|a| format!("{}:{}", serde_json::to_value(a).unwrap()["action"].as_str().unwrap(), a.target())).collect()
    }

    #[test]
    fn removes_exactly_what_was_installed_and_keeps_data() {
        let opts = ResetOptions { purge_data_dir: None, data_dir: "/var/lib/etcd" };
        let (a, notes) = reset_host(&desired(), &installed(), &opts);
        assert_eq!(
            flat(&a),
            [
                "stop-unit:etcd.service",
                "disable-unit:etcd.service",
                "remove-file:/etc/etcd/pki/server.key",
                "remove-file:/etc/systemd/system/etcd.service",
                "daemon-reload:systemd",
                "remove-dir:/etc/etcd/pki",
                "remove-dir:/etc/etcd",
            ]
        );
        assert!(notes[0].starts_with("kept /var/lib/etcd"), "{notes:?}");
    }

    #[test]
    fn purge_removes_the_data_dir() {
        let opts = ResetOptions { purge_data_dir: Some("/var/lib/etcd"), data_dir: "/var/lib/etcd" };
        let (a, notes) = reset_host(&desired(), &installed(), &opts);
        assert!(flat(&a).contains(&"purge-dir:/var/lib/etcd".to_string()));
        assert!(notes.is_empty());
    }

    #[test]
    fn foreign_files_keep_their_directory() {
        let mut f = installed();
        f.dir_entries.get_mut("/etc/etcd/pki").unwrap().push("/etc/etcd/pki/operator-notes.txt".into());
        let opts = ResetOptions { purge_data_dir: None, data_dir: "/var/lib/etcd" };
        let (a, notes) = reset_host(&desired(), &f, &opts);
        let acts = flat(&a);
        assert!(!acts.iter().any(|s| s.starts_with("remove-dir")), "{acts:?}");
        assert!(notes.iter().any(|n| n.contains("operator-notes.txt")), "{notes:?}");
    }

    #[test]
    fn directories_are_removed_even_without_a_base_component() {
        let d = desired();
        assert!(d.dirs.iter().all(|x| x.component == Component::Etcd));
        let facts = BTreeMap::from([("node1".to_string(), installed())]);
        let opts = ResetOptions { purge_data_dir: None, data_dir: "/var/lib/etcd" };
        let plan = plan_reset("lab", vec![], &DesiredState { hosts: vec![d] }, &facts, &opts);
        let phases: Vec<Phase> = plan.phases.iter().map(|p| p.phase).collect();
        assert_eq!(phases, [Phase::Preflight, Phase::Etcd, Phase::Base]);
        let base = &plan.phases[2].hosts[0].actions;
        assert_eq!(base.len(), 2, "{base:?}");
        assert_eq!(plan.changes, 7);
    }

    #[test]
    fn second_reset_is_a_no_op() {
        let mut f = HostFacts::default();
        f.units.insert(
            "etcd.service".into(),
            UnitState { active_state: "inactive".into(), unit_file_state: "disabled".into(), ..UnitState::default() },
        );
        f.paths.insert("/var/lib/etcd".into(), PathState::Dir(Ownership { mode: 0o700, owner: "etcd".into(), group: "etcd".into() }));
        let opts = ResetOptions { purge_data_dir: None, data_dir: "/var/lib/etcd" };
        let (a, _) = reset_host(&desired(), &f, &opts);
        assert!(a.is_empty(), "{a:?}");
    }
}
