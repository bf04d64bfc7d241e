//! The plan for people: per host, one line per change, terraform style.
//!
//! `+` creates, `~` updates in place, `-` removes, `↻` restarts, `▶` starts, `■` stops.
//! Secret files show their path, sha256 prefix and size only: the plan never holds
//! their bytes in a printable form.

use std::fmt::Write;

use super::membership::RemoveWhy;
use super::action::{Action, ObjectReason, RestartReason, Wait, WriteReason};
use super::{Plan, PlanKind};

pub fn render(plan: &Plan) -> String {
    let mut out = String::new();
    for host in &plan.hosts {
        let mut facts: Vec<String> = vec![host.address.clone()];
        facts.extend(host.os.clone());
        facts.extend(host.arch.clone());
        facts.extend(host.systemd.map(|v| format!("systemd {v}")));
        facts.extend(host.pod_cidr.as_ref().map(|c| format!("pods {c}")));
        let _ = writeln!(out, "{} ({})", host.host, facts.join(", "));
        for p in &host.problems {
            let _ = writeln!(out, "  ! {p}");
        }
        for w in &host.warnings {
            let _ = writeln!(out, "  note: {w}");
        }
        for v in &host.version_changes {
            let _ = writeln!(out, "  ↑ upgrade {v}");
        }
        if !host.problems.is_empty() {
            out.push('\n');
            continue;
        }
        let mut last_phase = None;
        let mut any = false;
        for (phase, action) in plan.host_actions(&host.host) {
            if last_phase != Some(phase) {
                let _ = writeln!(out, "  [{phase}]");
                last_phase = Some(phase);
            }
            let _ = writeln!(out, "    {}", line(action));
            any = true;
        }
        if !any {
            let _ = writeln!(
                out,
                "  {}",
                match plan.kind {
                    PlanKind::Apply => "up to date",
                    PlanKind::Reset => "nothing to remove",
                    PlanKind::Restore => "nothing to restore",
                }
            );
        }
        out.push('\n');
    }
    let waits: Vec<String> = plan
        .phases
        .iter()
        .flat_map(|p| p.waits.iter().map(move |w| format!("  after {}: {}", p.phase, wait_line(w))))
        .collect();
    if !waits.is_empty() {
        out.push_str("Waits between phases:\n");
        for w in waits {
            out.push_str(&w);
            out.push('\n');
        }
        out.push('\n');
    }
    let stages = stages_text(plan);
    if !stages.is_empty() {
        out.push_str("Rolling restarts (one host at a time; each waits for its gate, a failed gate stops the rollout):\n");
        out.push_str(&stages);
        out.push('\n');
    }
    out.push_str(&summary(plan));
    out.push('\n');
    out
}

/// One line per stage: order, host, what restarts, and the gate after it.
fn stages_text(plan: &Plan) -> String {
    let mut out = String::new();
    for p in &plan.phases {
        if let Some(s) = &p.snapshot {
            let _ = writeln!(
                out,
                "  {} first: etcd snapshot to {} (verified, newest {} kept; --no-backup skips it), because {}",
                p.phase, s.dir, s.keep, s.because
            );
        }
        let n = p.stages.len();
        for (i, s) in p.stages.iter().enumerate() {
            let restarts: Vec<String> = s.actions.iter().map(line).collect();
            let leader = s.move_leader_to.as_deref().map(|to| format!("move etcd leadership to {to}, then ")).unwrap_or_default();
            let leader = match &s.remove_member {
                Some(r) if r.why == RemoveWhy::NotInInventory => format!(
                    "{leader}etcd member remove {} (id {}, {}: not in the inventory; apply needs --yes), then ",
                    s.host,
                    r.id,
                    r.peer_urls.join(",")
                ),
                Some(r) => format!("{leader}etcd member remove {}'s stale id {} (its data is gone), then ", s.host, r.id),
                None => leader,
            };
            let leader = match &s.add_learner {
                Some(url) => format!("{leader}etcd member add {} ({url}) as a learner, then ", s.host),
                None => leader,
            };
            let restarts = if restarts.is_empty() && s.remove_member.is_some() {
                vec![format!("nothing on {} (not reachable over SSH: stop its etcd there by hand)", s.host)]
            } else {
                restarts
            };
            let _ = writeln!(
                out,
                "  {} {}/{n} {}: {leader}{}; gate: {}",
                p.phase,
                i + 1,
                s.host,
                restarts.join(", "),
                s.gate.describe()
            );
        }
    }
    out
}

/// The last line: what the run amounts to.
pub fn summary(plan: &Plan) -> String {
    let failed = plan.failed_hosts();
    let mut s = if plan.changes == 0 && !failed.is_empty() {
        "no changes planned on the hosts that answered".to_string()
    } else if plan.changes == 0 {
        match plan.kind {
            PlanKind::Apply if plan.is_empty() => "0 changes: hosts are up to date".to_string(),
            PlanKind::Apply => "0 changes; waiting for units that are still starting".to_string(),
            PlanKind::Reset => "nothing to remove".to_string(),
            PlanKind::Restore => "nothing to restore".to_string(),
        }
    } else {
        let per_host: Vec<String> = plan
            .hosts
            .iter()
            .map(|h| (h.host.as_str(), plan.host_actions(&h.host).count()))
            .filter(|(_, n)| *n > 0)
            .map(|(h, n)| format!("{h}: {n}"))
            .collect();
        format!("{} changes ({})", plan.changes, per_host.join(", "))
    };
    if !failed.is_empty() {
        let _ = write!(s, "; FAILED hosts: {}", failed.join(", "));
    }
    s
}

pub fn line(a: &Action) -> String {
    match a {
        Action::CreateUser { name, home, group_exists } => {
            let g = if *group_exists { format!(", joins existing group {name}") } else { String::new() };
            format!("+ create user {name} (system, home {home}{g})")
        }
        Action::CreateDir { path, mode, owner, group } => format!("+ create dir {path} ({mode} {owner}:{group})"),
        Action::FixDir { path, mode, owner, group, why } => {
            format!("~ fix dir {path} ({}: {mode} {owner}:{group})", reasons(why))
        }
        Action::RemoveStaleTemp { path } => format!("- remove {path} (temp file of an interrupted apply)"),
        Action::WriteFile { path, mode, owner, group, sha256, size, secret, why, .. } => {
            let secret = if *secret { ", secret" } else { "" };
            let short = sha256.get(..12).unwrap_or(sha256);
            if why.contains(&WriteReason::Create) {
                format!("+ create {path} ({mode} {owner}:{group}{secret}, {size} bytes, sha256 {short})")
            } else {
                format!("~ update {path} ({}{secret}: {mode} {owner}:{group}, sha256 {short})", reasons(why))
            }
        }
        Action::DaemonReload { because } => format!("~ systemctl daemon-reload (unit file changed: {})", because.join(", ")),
        Action::EnableUnit { unit } => format!("+ enable {unit}"),
        Action::StartUnit { unit } => format!("▶ start {unit}"),
        Action::RestartUnit { unit, because } => format!("↻ restart {unit} ({})", restart_reason(because)),
        Action::StopUnit { unit } => format!("■ stop {unit}"),
        Action::DisableUnit { unit } => format!("- disable {unit}"),
        Action::RemoveFile { path } => format!("- remove {path}"),
        Action::RemoveDir { path } => format!("- remove dir {path}"),
        Action::PurgeDir { path } => format!("- purge {path} (and everything in it: --purge-data)"),
        Action::MoveAside { path, to } => format!("> move {path} aside to {to} (kept, not deleted)"),
        Action::RestoreEtcdMember { restore: r, sha256, .. } => format!(
            "↺ restore {} from {} (sha256 {}) as member {} of a new cluster (token {}); the old data kept as {}",
            r.data_dir,
            r.snapshot,
            sha256.get(..12).unwrap_or(sha256),
            r.name,
            r.token,
            r.previous_dir()
        ),
        Action::RollBackEtcdRestore { restore: r } => {
            format!("↺ put {} back from {} (undo the restore)", r.data_dir, r.previous_dir())
        }
        Action::ApplyObject { kind, name, why, detail, .. } => match why {
            ObjectReason::Create => format!("+ create {kind} {name} (via kube-apiserver)"),
            ObjectReason::Update => format!("~ update {kind} {name} (via kube-apiserver: differs)"),
            ObjectReason::Unknown => {
                format!("+ apply {kind} {name} (via kube-apiserver; {})", detail.as_deref().unwrap_or("state unknown"))
            }
        },
    }
}

fn reasons(why: &[WriteReason]) -> String {
    why.iter()
        .map(|w| match w {
            WriteReason::Create => "create",
            WriteReason::Content => "content",
            WriteReason::Mode => "mode",
            WriteReason::Owner => "owner",
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn restart_reason(r: &RestartReason) -> String {
    match r {
        RestartReason::WatchedFileChanged { paths } => format!("watched file changed: {}", paths.join(", ")),
        RestartReason::Failed => "unit is failed".into(),
        RestartReason::ProcessOlderThan { paths } => {
            format!("running process is older than {} (an earlier apply was interrupted)", paths.join(", "))
        }
    }
}

pub fn wait_line(w: &Wait) -> String {
    match w {
        Wait::UnitsActive { hosts } => {
            let parts: Vec<String> = hosts.iter().map(|h| format!("{} on {}", h.units.join(" "), h.host)).collect();
            format!("wait until active: {}", parts.join("; "))
        }
        Wait::EtcdQuorum { members } => format!("wait for a healthy etcd quorum of {}", members.join(", ")),
        Wait::ApiserverReady { hosts } => format!("wait for kube-apiserver /readyz on {}", hosts.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::plan::action::{Content, Mode};

    #[test]
    fn lines_read_like_terraform_and_hide_secrets() {
        let w = Action::WriteFile {
            path: "/etc/etcd/pki/server.key".into(),
            mode: Mode(0o600),
            owner: "etcd".into(),
            group: "etcd".into(),
            sha256: "0123456789abcdef".into(),
            size: 227,
            secret: true,
            why: vec![WriteReason::Create],
            content: Content(Arc::new(b"PRIVATE".to_vec())),
        };
        let l = line(&w);
        assert_eq!(l, "+ create /etc/etcd/pki/server.key (0600 etcd:etcd, secret, 227 bytes, sha256 0123456789ab)");
        let r = Action::RestartUnit {
            unit: "etcd.service".into(),
            because: RestartReason::WatchedFileChanged { paths: vec!["/etc/etcd/pki/server.crt".into()] },
        };
        assert_eq!(line(&r), "↻ restart etcd.service (watched file changed: /etc/etcd/pki/server.crt)");
    }
}
