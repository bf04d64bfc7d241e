//! `diff(desired, facts)`: the actions that bring each host to its desired state.
//!
//! Rules that keep re-runs quiet and interrupted runs convergent:
//! - a file is rewritten only when its sha256 differs; a wrong mode/owner alone is a
//!   chmod/chown (same bytes, same mtime: nothing restarts for it);
//! - daemon-reload only when a unit file is rewritten, or systemd says it needs one;
//! - a unit restarts only when a watched file is rewritten, when it failed, or when a
//!   watched file is newer than its running process (an apply killed between the write
//!   and the restart: the next plan finishes the job).

use std::collections::{BTreeMap, BTreeSet};

use super::action::{Action, Content, HostUnits, Mode, Phase, RestartReason, Wait, WriteReason};
use super::facts::{HostFacts, PathState};
use super::phase_spec::{AfterStart, spec};
use super::{HostReport, HostSteps, PhasePlan, Plan, PlanKind};
use crate::desired::{Component, DesiredHost, DesiredState};

/// Where systemd reads unit files and drop-ins from: a write there needs a daemon-reload.
const UNIT_DIRS: [&str; 3] = ["/etc/systemd/system/", "/usr/lib/systemd/system/", "/lib/systemd/system/"];

pub fn is_unit_file(path: &str) -> bool {
    UNIT_DIRS.iter().any(|d| path.starts_with(d))
}

/// The apply plan. `facts` holds the hosts preflight could read; hosts missing from
/// it already carry their problem in `reports` and get no actions.
pub fn plan_apply(
    cluster: &str,
    mut reports: Vec<HostReport>,
    desired: &DesiredState,
    facts: &BTreeMap<String, HostFacts>,
) -> Plan {
    let mut per_phase: BTreeMap<Phase, Vec<HostSteps>> = BTreeMap::new();
    let mut unsettled: BTreeMap<Phase, Vec<HostUnits>> = BTreeMap::new();
    for host in &desired.hosts {
        let Some(f) = facts.get(&host.host) else { continue };
        let diff = diff_host(host, f);
        if let Some(r) = reports.iter_mut().find(|r| r.host == host.host) {
            r.problems.extend(diff.problems.iter().cloned());
            if !diff.problems.is_empty() {
                continue;
            }
        }
        for (phase, actions) in diff.actions {
            if !actions.is_empty() {
                per_phase.entry(phase).or_default().push(HostSteps { host: host.host.clone(), actions });
            }
        }
        for (phase, units) in diff.unsettled_units {
            unsettled.entry(phase).or_default().push(HostUnits { host: host.host.clone(), units });
        }
    }

    let mut phases = Vec::new();
    for phase in phases_of(desired) {
        let hosts = per_phase.remove(&phase).unwrap_or_default();
        let waits = waits_for(phase, desired, &hosts, unsettled.remove(&phase).unwrap_or_default());
        phases.push(PhasePlan { phase, hosts, waits, stages: Vec::new(), snapshot: None });
    }
    let mut plan = Plan { kind: PlanKind::Apply, cluster: cluster.to_string(), hosts: reports, phases, changes: 0 };
    plan.count_changes();
    plan
}

/// Preflight, then every phase some host has something in, in order.
pub fn phases_of(desired: &DesiredState) -> Vec<Phase> {
    let mut present: BTreeSet<Phase> = BTreeSet::from([Phase::Preflight]);
    for h in &desired.hosts {
        present.extend(h.users.iter().map(|u| Phase::of(u.component)));
        present.extend(h.dirs.iter().map(|d| Phase::of(d.component)));
        present.extend(h.files.iter().map(|f| Phase::of(f.component)));
        present.extend(h.units.iter().map(|u| Phase::of(u.component)));
    }
    Phase::ALL.into_iter().filter(|p| present.contains(p)).collect()
}

/// After a phase started or restarted anything, the next phase waits for it: etcd for
/// a healthy quorum of ALL its members, the others for their units to be active.
fn waits_for(phase: Phase, desired: &DesiredState, hosts: &[HostSteps], unsettled: Vec<HostUnits>) -> Vec<Wait> {
    let mut started: Vec<HostUnits> = Vec::new();
    for h in hosts {
        let units: Vec<String> = h
            .actions
            .iter()
            .filter(|a| a.is_service_start())
            .map(|a| a.target().to_string())
            .collect();
        if !units.is_empty() {
            started.push(HostUnits { host: h.host.clone(), units });
        }
    }
    for u in unsettled {
        match started.iter_mut().find(|s| s.host == u.host) {
            Some(s) => {
                for n in u.units {
                    if !s.units.contains(&n) {
                        s.units.push(n);
                    }
                }
            }
            None => started.push(u),
        }
    }
    if started.is_empty() {
        return Vec::new();
    }
    match spec(phase).after_start {
        AfterStart::EtcdQuorum => {
            let members = desired
                .hosts
                .iter()
                .filter(|h| h.units.iter().any(|u| u.component == Component::Etcd))
                .map(|h| h.host.clone())
                .collect();
            vec![Wait::UnitsActive { hosts: started }, Wait::EtcdQuorum { members }]
        }
        AfterStart::ApiserverReady => {
            let hosts = started.iter().map(|h| h.host.clone()).collect();
            vec![Wait::UnitsActive { hosts: started }, Wait::ApiserverReady { hosts }]
        }
        AfterStart::UnitsActive => vec![Wait::UnitsActive { hosts: started }],
    }
}

#[derive(Debug, Default)]
pub struct HostDiff {
    pub actions: BTreeMap<Phase, Vec<Action>>,
    /// Units that are running but not yet settled (activating): the phase waits for them.
    pub unsettled_units: BTreeMap<Phase, Vec<String>>,
    /// Conflicts provision must not resolve on its own (a directory where a file goes).
    pub problems: Vec<String>,
}

pub fn diff_host(d: &DesiredHost, f: &HostFacts) -> HostDiff {
    let mut out = HostDiff::default();
    let mut push = |phase: Phase, a: Action| out.actions.entry(phase).or_default().push(a);

    for path in &f.stale_temps {
        push(Phase::Preflight, Action::RemoveStaleTemp { path: path.clone() });
    }

    for u in &d.users {
        if !f.users.contains(&u.name) {
            push(
                Phase::of(u.component),
                Action::CreateUser { name: u.name.clone(), home: u.home.clone(), group_exists: f.groups.contains(&u.name) },
            );
        }
    }

    // Parents before children: sort by path.
    let mut dirs: Vec<_> = d.dirs.iter().collect();
    dirs.sort_by(|a, b| a.path.cmp(&b.path));
    for dir in dirs {
        let (mode, owner, group) = (Mode(dir.mode), dir.owner.clone(), dir.group.clone());
        match f.path(&dir.path) {
            PathState::Missing => {
                push(Phase::of(dir.component), Action::CreateDir { path: dir.path.clone(), mode, owner, group })
            }
            PathState::Dir(own) => {
                let mut why = Vec::new();
                if own.mode != dir.mode {
                    why.push(WriteReason::Mode);
                }
                if own.owner != dir.owner || own.group != dir.group {
                    why.push(WriteReason::Owner);
                }
                if !why.is_empty() {
                    push(Phase::of(dir.component), Action::FixDir { path: dir.path.clone(), mode, owner, group, why });
                }
            }
            other => out.problems.push(format!(
                "{} should be a directory but is {}: move it away, then run again",
                dir.path,
                describe(other)
            )),
        }
    }

    // Every path this plan rewrites (bytes, not just mode), for restarts and reloads.
    let mut rewritten: BTreeSet<String> = BTreeSet::new();
    let mut unit_files_written: BTreeMap<Phase, Vec<String>> = BTreeMap::new();
    for file in &d.files {
        // Once its guard exists (etcd's data), a bootstrap-only file is the host's own:
        // never rewritten, so nothing of a running member changes when the inventory grows.
        if file.only_while_missing.as_deref().is_some_and(|g| *f.path(g) != PathState::Missing) {
            continue;
        }
        let why = match f.path(&file.path) {
            PathState::Missing => vec![WriteReason::Create],
            // A symlink (e.g. a masked unit -> /dev/null) is replaced by the rename,
            // never written through.
            PathState::Link { .. } => vec![WriteReason::Content],
            PathState::File(st) => {
                let mut why = Vec::new();
                if st.sha256.as_deref() != Some(file.sha256_hex().as_str()) {
                    why.push(WriteReason::Content);
                }
                if st.own.mode != file.mode {
                    why.push(WriteReason::Mode);
                }
                if st.own.owner != file.owner || st.own.group != file.group {
                    why.push(WriteReason::Owner);
                }
                why
            }
            other => {
                out.problems.push(format!(
                    "{} should be a regular file but is {}: move it away, then run again",
                    file.path,
                    describe(other)
                ));
                continue;
            }
        };
        if why.is_empty() {
            continue;
        }
        let phase = Phase::of(file.component);
        if why.iter().any(|w| w.rewrites_content()) {
            rewritten.insert(file.path.clone());
            if is_unit_file(&file.path) {
                unit_files_written.entry(phase).or_default().push(file.path.clone());
            }
        }
        push(
            phase,
            Action::WriteFile {
                path: file.path.clone(),
                mode: Mode(file.mode),
                owner: file.owner.clone(),
                group: file.group.clone(),
                sha256: file.sha256_hex(),
                size: file.content.len(),
                secret: file.secret,
                why,
                content: Content(file.content.clone()),
            },
        );
    }

    // daemon-reload where unit files are written, or where systemd already wants one
    // (a unit file changed on disk without a reload: e.g. an interrupted apply).
    // In preflight (every plan has it, like the stale temps): nothing depends on them.
    for path in crate::desired::RETIRED_FILES {
        if matches!(f.path(path), PathState::File(_) | PathState::Link { .. }) {
            push(Phase::Preflight, Action::RemoveFile { path: path.to_string() });
        }
    }

    for u in &d.units {
        if f.unit(&u.name).is_some_and(|s| s.need_daemon_reload) {
            let files = unit_files_written.entry(Phase::of(u.component)).or_default();
            let why = format!("systemd reports {} changed on disk", u.name);
            if !files.contains(&why) {
                files.push(why);
            }
        }
    }
    for (phase, because) in unit_files_written {
        push(phase, Action::DaemonReload { because });
    }

    for u in &d.units {
        let phase = Phase::of(u.component);
        let state = f.unit(&u.name).cloned().unwrap_or_default();
        if state.unit_file_state != "enabled" {
            push(phase, Action::EnableUnit { unit: u.name.clone() });
        }
        let changed: Vec<String> = u.watches.iter().filter(|w| rewritten.contains(*w)).cloned().collect();
        let action = match state.active_state.as_str() {
            "active" | "reloading" | "activating" => {
                let newer = newer_than_process(u.watches.as_slice(), f, state.started_at);
                if !changed.is_empty() {
                    Some(RestartReason::WatchedFileChanged { paths: changed })
                } else if !newer.is_empty() {
                    Some(RestartReason::ProcessOlderThan { paths: newer })
                } else {
                    if state.active_state == "activating" {
                        out.unsettled_units.entry(phase).or_default().push(u.name.clone());
                    }
                    None
                }
                .map(|because| Action::RestartUnit { unit: u.name.clone(), because })
            }
            "failed" => Some(Action::RestartUnit {
                unit: u.name.clone(),
                because: if changed.is_empty() {
                    RestartReason::Failed
                } else {
                    RestartReason::WatchedFileChanged { paths: changed }
                },
            }),
            _ => Some(Action::StartUnit { unit: u.name.clone() }),
        };
        if let Some(a) = action {
            push(phase, a);
        }
    }
    out
}

/// Watched files modified after the unit's main process started.
fn newer_than_process(watches: &[String], f: &HostFacts, started_at: Option<i128>) -> Vec<String> {
    let Some(started) = started_at else { return Vec::new() };
    watches
        .iter()
        .filter(|w| matches!(f.path(w), PathState::File(st) if st.mtime.is_some_and(|m| m > started)))
        .cloned()
        .collect()
}

fn describe(state: &PathState) -> String {
    match state {
        PathState::Missing => "missing".into(),
        PathState::File(_) => "a regular file".into(),
        PathState::Dir(_) => "a directory".into(),
        PathState::Link { target } => format!("a symlink to {target}"),
        PathState::Other { raw_mode } => format!("a special file (mode {raw_mode:o})"),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::desired::{ManagedDir, ManagedFile, ManagedUnit, SystemUser};
    use crate::plan::facts::{FileStat, Ownership, UnitState};

    fn file(path: &str, content: &str, mode: u32, component: Component) -> ManagedFile {
        ManagedFile {
            path: path.into(),
            mode,
            owner: "etcd".into(),
            group: "etcd".into(),
            content: Arc::new(content.as_bytes().to_vec()),
            secret: path.ends_with(".key"),
            component,
            only_while_missing: None,
        }
    }

    fn etcd_host() -> DesiredHost {
        DesiredHost {
            host: "node1".into(),
            users: vec![SystemUser { name: "etcd".into(), home: "/var/lib/etcd".into(), component: Component::Base }],
            dirs: vec![
                ManagedDir { path: "/etc/etcd/pki".into(), mode: 0o700, owner: "etcd".into(), group: "etcd".into(), component: Component::Etcd },
                ManagedDir { path: "/etc/etcd".into(), mode: 0o755, owner: "root".into(), group: "root".into(), component: Component::Etcd },
            ],
            files: vec![
                file("/etc/etcd/pki/server.key", "KEY", 0o600, Component::Etcd),
                file("/etc/etcd/pki/server.crt", "CRT", 0o644, Component::Etcd),
                file("/etc/systemd/system/etcd.service", "[Unit]", 0o644, Component::Etcd),
            ],
            units: vec![ManagedUnit {
                name: "etcd.service".into(),
                component: Component::Etcd,
                watches: vec!["/etc/etcd/pki/server.key".into(), "/etc/etcd/pki/server.crt".into(), "/etc/systemd/system/etcd.service".into()],
            }],
        }
    }

    /// Facts of a host on which `d` is fully applied, unit started after every write.
    fn converged(d: &DesiredHost) -> HostFacts {
        let mut f = HostFacts { systemd_running: true, ..HostFacts::default() };
        for u in &d.users {
            f.users.insert(u.name.clone());
            f.groups.insert(u.name.clone());
        }
        for dir in &d.dirs {
            f.paths.insert(dir.path.clone(), PathState::Dir(Ownership { mode: dir.mode, owner: dir.owner.clone(), group: dir.group.clone() }));
        }
        for file in &d.files {
            f.paths.insert(
                file.path.clone(),
                PathState::File(FileStat {
                    own: Ownership { mode: file.mode, owner: file.owner.clone(), group: file.group.clone() },
                    size: file.content.len() as u64,
                    mtime: Some(100),
                    sha256: Some(file.sha256_hex()),
                }),
            );
        }
        for u in &d.units {
            f.units.insert(
                u.name.clone(),
                UnitState {
                    load_state: "loaded".into(),
                    active_state: "active".into(),
                    sub_state: "running".into(),
                    unit_file_state: "enabled".into(),
                    need_daemon_reload: false,
                    started_at: Some(200),
                },
            );
        }
        f
    }

    fn file_mut<'a>(f: &'a mut HostFacts, path: &str) -> &'a mut FileStat {
        match f.paths.get_mut(path) {
            Some(PathState::File(st)) => st,
            _ => panic!("no file {path}"),
        }
    }

    fn all(diff: &HostDiff) -> Vec<&Action> {
        diff.actions.values().flatten().collect()
    }

    /// etcd's bootstrap drop-in: written on a fresh member, left alone (whatever its
    /// content, and never a restart or reload) once the member has data.
    #[test]
    fn a_bootstrap_only_file_is_written_only_before_the_data_exists() {
        let mut d = etcd_host();
        let dropin = "/etc/systemd/system/etcd.service.d/10-bootstrap.conf";
        let mut boot = file(dropin, "--initial-cluster=a", 0o600, Component::Etcd);
        boot.only_while_missing = Some("/var/lib/etcd/member".into());
        d.files.push(boot);
        let mut f = converged(&d);
        // The inventory grew: the rendered drop-in now names another member.
        let grown = Arc::new(b"--initial-cluster=a,b".to_vec());
        d.files.last_mut().unwrap().content = grown.clone();
        let fresh = diff_host(&d, &f);
        let acts = all(&fresh);
        assert_eq!(acts.len(), 2, "{acts:?}");
        assert!(matches!(acts[0], Action::WriteFile { path, content, .. } if path == dropin && content.0 == grown));
        // A drop-in needs a reload; it is not watched, so nothing restarts.
        assert!(matches!(acts[1], Action::DaemonReload { because } if because == &[dropin.to_string()]));
        f.paths.insert("/var/lib/etcd/member".into(), PathState::Dir(Ownership { mode: 0o700, owner: "etcd".into(), group: "etcd".into() }));
        let with_data = diff_host(&d, &f);
        assert!(all(&with_data).is_empty(), "a member with data must not change: {:?}", with_data.actions);
        // Even a missing drop-in is not written back once the member has data.
        f.paths.remove(dropin);
        assert!(all(&diff_host(&d, &f)).is_empty());
    }

    #[test]
    fn a_converged_host_has_nothing_to_do() {
        let d = etcd_host();
        let diff = diff_host(&d, &converged(&d));
        assert!(all(&diff).is_empty(), "{:?}", diff.actions);
        assert!(diff.problems.is_empty());
    }

    #[test]
    fn a_retired_super_admin_conf_is_removed_and_then_nothing_is_left_to_do() {
        let d = etcd_host();
        let mut f = converged(&d);
        f.paths.insert(
            crate::render::paths::SUPER_ADMIN_CONF.into(),
            PathState::File(FileStat {
                sha256: Some("00".into()),
                own: Ownership { mode: 0o600, owner: "root".into(), group: "root".into() },
                size: 10,
                mtime: None,
            }),
        );
        let diff = diff_host(&d, &f);
        let acts = all(&diff);
        assert!(
            matches!(acts[..], [Action::RemoveFile { path }] if path == "/etc/kubernetes/super-admin.conf"),
            "{acts:?}"
        );
        assert!(diff.actions.contains_key(&Phase::Preflight));
        let req = crate::plan::facts::FactsRequest::for_host(&d);
        assert!(req.paths.contains("/etc/kubernetes/super-admin.conf"), "asked of every host");
    }

    #[test]
    fn an_empty_host_gets_everything_in_order() {
        let d = etcd_host();
        let f = HostFacts::default();
        let diff = diff_host(&d, &f);
        let base = &diff.actions[&Phase::Base];
        assert!(matches!(&base[0], Action::CreateUser { name, group_exists: false, .. } if name == "etcd"));
        let etcd: Vec<&str> = diff.actions[&Phase::Etcd]
            .iter()
            .map(|a| match a {
                Action::CreateDir { .. } => "mkdir",
                Action::WriteFile { .. } => "write",
                Action::DaemonReload { .. } => "reload",
                Action::EnableUnit { .. } => "enable",
                Action::StartUnit { .. } => "start",
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(etcd, ["mkdir", "mkdir", "write", "write", "write", "reload", "enable", "start"]);
        // parents first
        assert!(matches!(&diff.actions[&Phase::Etcd][0], Action::CreateDir { path, .. } if path == "/etc/etcd"));
    }

    #[test]
    fn content_change_rewrites_and_restarts_only_for_watched_files() {
        let d = etcd_host();
        let mut f = converged(&d);
        file_mut(&mut f, "/etc/etcd/pki/server.crt").sha256 = Some("00".into());
        let diff = diff_host(&d, &f);
        let acts = all(&diff);
        assert_eq!(acts.len(), 2, "{acts:?}");
        assert!(matches!(acts[0], Action::WriteFile { why, .. } if why == &[WriteReason::Content]));
        assert!(matches!(acts[1], Action::RestartUnit { because: RestartReason::WatchedFileChanged { paths }, .. }
            if paths == &["/etc/etcd/pki/server.crt".to_string()]));
    }

    #[test]
    fn mode_only_change_does_not_restart() {
        let d = etcd_host();
        let mut f = converged(&d);
        file_mut(&mut f, "/etc/etcd/pki/server.key").own.mode = 0o644;
        let diff = diff_host(&d, &f);
        let acts = all(&diff);
        assert_eq!(acts.len(), 1, "{acts:?}");
        assert!(matches!(acts[0], Action::WriteFile { why, .. } if why == &[WriteReason::Mode]));
    }

    #[test]
    fn unit_file_change_reloads_then_restarts() {
        let d = etcd_host();
        let mut f = converged(&d);
        file_mut(&mut f, "/etc/systemd/system/etcd.service").sha256 = None;
        let acts: Vec<_> = all(&diff_host(&d, &f)).into_iter().cloned().collect();
        assert!(matches!(&acts[1], Action::DaemonReload { because } if because == &["/etc/systemd/system/etcd.service".to_string()]));
        assert!(matches!(&acts[2], Action::RestartUnit { .. }));
    }

    #[test]
    fn interrupted_apply_is_finished_by_the_next_plan() {
        let d = etcd_host();
        let mut f = converged(&d);
        // The file was written (content right) after the process started; systemd has
        // an old copy of the unit file.
        file_mut(&mut f, "/etc/etcd/pki/server.key").mtime = Some(300);
        f.units.get_mut("etcd.service").unwrap().need_daemon_reload = true;
        let acts: Vec<_> = all(&diff_host(&d, &f)).into_iter().cloned().collect();
        assert_eq!(acts.len(), 2, "{acts:?}");
        assert!(matches!(&acts[0], Action::DaemonReload { .. }));
        assert!(matches!(&acts[1], Action::RestartUnit { because: RestartReason::ProcessOlderThan { paths }, .. }
            if paths == &["/etc/etcd/pki/server.key".to_string()]));
    }

    #[test]
    fn failed_unit_restarts_and_disabled_unit_is_enabled() {
        let d = etcd_host();
        let mut f = converged(&d);
        let u = f.units.get_mut("etcd.service").unwrap();
        u.active_state = "failed".into();
        u.unit_file_state = "disabled".into();
        let acts: Vec<_> = all(&diff_host(&d, &f)).into_iter().cloned().collect();
        assert!(matches!(&acts[0], Action::EnableUnit { .. }));
        assert!(matches!(&acts[1], Action::RestartUnit { because: RestartReason::Failed, .. }));
    }

    #[test]
    fn stale_temps_are_removed_in_preflight() {
        let d = etcd_host();
        let mut f = converged(&d);
        f.stale_temps.push("/etc/etcd/pki/.provision-tmp.abc".into());
        let diff = diff_host(&d, &f);
        assert_eq!(diff.actions[&Phase::Preflight], vec![Action::RemoveStaleTemp { path: "/etc/etcd/pki/.provision-tmp.abc".into() }]);
    }

    #[test]
    fn a_directory_where_a_file_goes_is_a_problem_not_an_action() {
        let d = etcd_host();
        let mut f = converged(&d);
        f.paths.insert("/etc/etcd/pki/server.crt".into(), PathState::Dir(Ownership { mode: 0o755, owner: "root".into(), group: "root".into() }));
        let diff = diff_host(&d, &f);
        assert_eq!(diff.problems.len(), 1);
        assert!(diff.problems[0].contains("/etc/etcd/pki/server.crt should be a regular file but is a directory"));
    }

    #[test]
    fn masked_unit_symlink_is_replaced() {
        let d = etcd_host();
        let mut f = converged(&d);
        f.paths.insert("/etc/systemd/system/etcd.service".into(), PathState::Link { target: "/dev/null".into() });
        let acts: Vec<_> = all(&diff_host(&d, &f)).into_iter().cloned().collect();
        assert!(matches!(&acts[0], Action::WriteFile { why, .. } if why == &[WriteReason::Content]));
    }

    #[test]
    fn plan_waits_for_etcd_quorum_of_all_members_after_a_start() {
        let mut d1 = etcd_host();
        let mut d2 = etcd_host();
        d1.host = "node1".into();
        d2.host = "node2".into();
        let desired = DesiredState { hosts: vec![d1.clone(), d2.clone()] };
        let mut facts = BTreeMap::new();
        facts.insert("node1".to_string(), converged(&d1));
        let mut f2 = converged(&d2);
        f2.units.get_mut("etcd.service").unwrap().active_state = "inactive".into();
        facts.insert("node2".to_string(), f2);
        let reports = ["node1", "node2"]
            .iter()
            .map(|h| HostReport::new(h, ""))
            .collect();
        let plan = plan_apply("lab", reports, &desired, &facts);
        assert_eq!(plan.changes, 1);
        let etcd = plan.phases.iter().find(|p| p.phase == Phase::Etcd).unwrap();
        assert_eq!(etcd.hosts.len(), 1);
        assert_eq!(etcd.waits[1], Wait::EtcdQuorum { members: vec!["node1".into(), "node2".into()] });
        let names: Vec<Phase> = plan.phases.iter().map(|p| p.phase).collect();
        assert_eq!(names, [Phase::Preflight, Phase::Base, Phase::Etcd]);
    }

    #[test]
    fn a_started_apiserver_is_waited_for_until_ready() {
        let hosts = vec![HostSteps { host: "cp1".into(), actions: vec![Action::StartUnit { unit: "kube-apiserver.service".into() }] }];
        let waits = waits_for(Phase::KubeApiserver, &DesiredState { hosts: vec![] }, &hosts, vec![]);
        assert_eq!(waits[1], Wait::ApiserverReady { hosts: vec!["cp1".into()] });
        assert!(waits_for(Phase::KubeApiserver, &DesiredState { hosts: vec![] }, &[], vec![]).is_empty());
    }
}
