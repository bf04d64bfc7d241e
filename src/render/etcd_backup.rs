//! Scheduled snapshots on every etcd member (`etcd.backup_schedule`): a systemd timer, the
//! oneshot service it starts and the script that service runs, rendered from
//! templates/etcd-backup.{timer,service,sh} (overridable with `--templates` like every
//! template), so plan shows them, apply installs them and reset removes them like any other
//! managed file and unit.
//!
//! Each member snapshots itself with the host's etcdctl, over its own client URL, with its
//! own server certificate (which carries ClientAuth), as the etcd user, into `BACKUP_DIR`
//! (0700 etcd:etcd). The script verifies the snapshot after writing it (a trial restore
//! into a scratch dir checks etcd's sha256 trailer and the bbolt structure) and keeps the
//! newest `etcd.backup_retention`, named as `provision etcd backup` names them.
//! Nothing is rendered when `etcd.backup_schedule` is absent.

use std::net::SocketAddr;

use anyhow::bail;
use serde::Serialize;

use super::builder::{ETCD_0700, HostBuilder, ROOT_0755};
use super::{HostCx, RenderCx, paths};
use crate::desired::Component;

pub const BACKUP_DIR: &str = "/var/backups/etcd";
pub const SCRIPT: &str = "/usr/local/sbin/etcd-backup";
pub const SERVICE: &str = "etcd-backup.service";
pub const TIMER: &str = "etcd-backup.timer";
const SCRIPT_TEMPLATE: &str = "etcd-backup.sh";
/// Longest a snapshot may take (etcdctl's command timeout and the unit's start timeout).
const TIMEOUT_SECS: u64 = 3600;

#[derive(Serialize)]
struct BackupCtx {
    schedule: String,
    retention: u32,
    dir: &'static str,
    script: &'static str,
    endpoint: String,
    ca: &'static str,
    cert: &'static str,
    key: &'static str,
    timeout_secs: u64,
}

/// Adds the timer, service, script and snapshot dir to an etcd member (nothing when no
/// schedule is set).
pub(super) fn add(cx: &RenderCx, h: &HostCx, b: &mut HostBuilder) -> anyhow::Result<()> {
    let Some(schedule) = cx.inv.etcd.backup_schedule.clone().filter(|s| !s.trim().is_empty()) else {
        return Ok(());
    };
    check_schedule(&schedule)?;
    let c = Component::Etcd;
    let mut ctx = h.ctx.clone();
    ctx.insert(
        "backup",
        &BackupCtx {
            schedule,
            retention: cx.inv.etcd.backup_retention.max(1),
            dir: BACKUP_DIR,
            script: SCRIPT,
            endpoint: format!("https://{}", SocketAddr::new(h.host.address, cx.inv.etcd.client_port)),
            ca: paths::ETCD_CA_CRT,
            cert: paths::ETCD_SERVER_CRT,
            key: paths::ETCD_SERVER_KEY,
            timeout_secs: TIMEOUT_SECS,
        },
    );
    b.dir(BACKUP_DIR, ETCD_0700, c);
    b.text(SCRIPT, ROOT_0755, cx.templates.render(SCRIPT_TEMPLATE, &ctx)?, c)?;
    // The service only runs when the timer fires (or by hand): it is a plain managed
    // file; the timer is the unit apply enables, starts, and restarts when any changes.
    let service_path = paths::unit_path(SERVICE);
    b.unit_file(SERVICE, cx.templates.render(SERVICE, &ctx)?, c)?;
    b.unit(TIMER, cx.templates.render(TIMER, &ctx)?, c, &[SCRIPT, service_path.as_str()])
}

/// An OnCalendar= value goes into a unit file verbatim: one line, no control characters.
/// Its syntax is systemd's to judge (`systemd-analyze calendar` on the host). Validation
/// already refuses these with file:line; this guards callers that build an Inventory by hand.
fn check_schedule(s: &str) -> anyhow::Result<()> {
    if s.chars().any(|c| c.is_control()) || s.len() > 200 {
        bail!(
            "etcd.backup_schedule {s:?} is not a single-line systemd calendar expression (e.g. \"hourly\", \"*-*-* 00/6:00:00\")"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::desired::DesiredHost;
    use crate::inventory::Inventory;
    use crate::render::{Templates, render};
    use crate::state::StateDir;

    fn inventory(schedule: Option<&str>) -> Inventory {
        let mut inv: Inventory = toml::from_str(
            r#"
[cluster]
name = "lab"
kubernetes_version = "1.34.2"
etcd_version = "3.4.23"
api_endpoint = "10.0.0.1"
service_cidr = "10.32.0.0/24"
pod_cidr = "10.200.0.0/16"
[etcd]
backup_retention = 5
[artifacts]
kubernetes = "skip"
[[host]]
name = "node1"
address = "10.0.0.1"
roles = ["etcd", "control-plane"]
[[host]]
name = "w1"
address = "10.0.0.9"
roles = ["worker"]
"#,
        )
        .expect("inventory");
        inv.etcd.backup_schedule = schedule.map(String::from);
        inv
    }

    fn hosts(inv: &Inventory, templates: &Templates) -> anyhow::Result<Vec<DesiredHost>> {
        let dir = tempfile::tempdir().expect("tempdir");
        let pki = crate::pki::ensure(inv, &StateDir::at(dir.path()))?;
        Ok(render(inv, &pki, templates)?.desired.hosts)
    }

    fn content(h: &DesiredHost, path: &str) -> (String, u32) {
        let f = h.file(path).unwrap_or_else(|| panic!("{path} rendered"));
        (String::from_utf8_lossy(&f.content).into_owned(), f.mode)
    }

    #[test]
    fn nothing_without_a_schedule_or_on_non_members() {
        let templates = Templates::embedded().unwrap();
        let none = hosts(&inventory(None), &templates).unwrap();
        assert!(none[0].file(super::SCRIPT).is_none());
        assert!(!none[0].units.iter().any(|u| u.name == super::TIMER));
        let some = hosts(&inventory(Some("hourly")), &templates).unwrap();
        assert!(some[1].file(super::SCRIPT).is_none() && some[1].units.is_empty());
    }

    #[test]
    fn renders_timer_service_and_script_through_the_desired_state() {
        let h = &hosts(&inventory(Some("*-*-* 00/6:00:00")), &Templates::embedded().unwrap()).unwrap()[0];
        let (timer, mode) = content(h, "/etc/systemd/system/etcd-backup.timer");
        assert_eq!(mode, 0o600);
        assert!(timer.contains("OnCalendar=*-*-* 00/6:00:00\n"), "{timer}");
        let (service, mode) = content(h, "/etc/systemd/system/etcd-backup.service");
        assert_eq!(mode, 0o600);
        assert!(service.contains("User=etcd") && service.contains("ExecStart=/usr/local/sbin/etcd-backup"));
        assert!(service.contains("ReadWritePaths=/var/backups/etcd"));
        let (script, mode) = content(h, "/usr/local/sbin/etcd-backup");
        assert_eq!(mode, 0o755);
        assert!(script.contains("--endpoints='https://10.0.0.1:2379'"), "{script}");
        assert!(script.contains("--cert='/etc/etcd/pki/server.crt'"));
        assert!(script.contains("keep=5") && script.contains("prefix='lab'"));
        assert!(script.contains("snapshot restore"), "the script verifies by a trial restore: {script}");
        let out = std::process::Command::new("sh").args(["-n", "-c", &script]).output().expect("sh");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let timer_unit = h.units.iter().find(|u| u.name == super::TIMER).expect("timer unit");
        assert!(timer_unit.watches.contains(&"/usr/local/sbin/etcd-backup".to_string()));
        assert!(timer_unit.watches.contains(&"/etc/systemd/system/etcd-backup.service".to_string()));
        assert!(!h.units.iter().any(|u| u.name == super::SERVICE), "the service is started by the timer only");
        let dir = h.dirs.iter().find(|d| d.path == super::BACKUP_DIR).expect("backup dir");
        assert_eq!((dir.owner.as_str(), dir.mode), ("etcd", 0o700));
    }

    #[test]
    fn templates_dir_overrides_the_timer() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("etcd-backup.timer"), "[Timer]\nOnCalendar={{ backup.schedule }}\n# custom\n")
            .unwrap();
        let templates = Templates::with_overrides(dir.path()).unwrap();
        let h = &hosts(&inventory(Some("daily")), &templates).unwrap()[0];
        assert_eq!(content(h, "/etc/systemd/system/etcd-backup.timer").0, "[Timer]\nOnCalendar=daily\n# custom\n");
    }

    #[test]
    fn a_multi_line_schedule_is_refused() {
        let e = hosts(&inventory(Some("hourly\nExecStart=/bin/evil")), &Templates::embedded().unwrap()).unwrap_err();
        assert!(e.to_string().contains("etcd.backup_schedule"), "{e}");
    }
}
