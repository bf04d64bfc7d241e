//! Scheduled snapshots on the etcd hosts: a systemd timer + oneshot service + script,
//! rendered from templates/etcd-backup.{timer,service,sh} for render (and so plan/apply)
//! to install like any other managed file.
//!
//! Each member snapshots itself with the host's etcdctl, over its own client URL, with its
//! own server certificate (which carries ClientAuth), as the etcd user, into
//! `BACKUP_DIR` (0700 etcd:etcd); names and retention match `provision etcd backup`.
//! Nothing is rendered when `etcd.backup_schedule` is absent or the host is not a member.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use serde::Serialize;

use crate::desired::{Component, ManagedDir, ManagedFile, ManagedUnit};
use crate::inventory::{Host, Inventory, Role};
use crate::render::paths;

pub const BACKUP_DIR: &str = "/var/backups/etcd";
pub const SCRIPT: &str = "/usr/local/sbin/etcd-backup";
pub const SERVICE: &str = "etcd-backup.service";
pub const TIMER: &str = "etcd-backup.timer";
/// Longest a snapshot may take (etcdctl's command timeout and the unit's start timeout).
const TIMEOUT_SECS: u64 = 3600;

const SERVICE_TEMPLATE: &str = include_str!("../../templates/etcd-backup.service");
const TIMER_TEMPLATE: &str = include_str!("../../templates/etcd-backup.timer");
const SCRIPT_TEMPLATE: &str = include_str!("../../templates/etcd-backup.sh");

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

fn enabled(inventory: &Inventory, host: &Host) -> Option<String> {
    if !host.has(Role::Etcd) {
        return None;
    }
    inventory.etcd.backup_schedule.clone().filter(|s| !s.trim().is_empty())
}

/// The script, the service and the timer for `host` (empty when not scheduled).
pub fn files(inventory: &Inventory, host: &Host) -> anyhow::Result<Vec<ManagedFile>> {
    let Some(schedule) = enabled(inventory, host) else { return Ok(Vec::new()) };
    check_schedule(&schedule)?;
    let mut ctx = tera::Context::new();
    ctx.insert("host", &serde_json::json!({ "name": host.name }));
    ctx.insert("cluster", &serde_json::json!({ "name": inventory.cluster.name }));
    ctx.insert(
        "backup",
        &BackupCtx {
            schedule,
            retention: inventory.etcd.backup_retention.max(1),
            dir: BACKUP_DIR,
            script: SCRIPT,
            endpoint: format!("https://{}", SocketAddr::new(host.address, inventory.etcd.client_port)),
            ca: paths::ETCD_CA_CRT,
            cert: paths::ETCD_SERVER_CRT,
            key: paths::ETCD_SERVER_KEY,
            timeout_secs: TIMEOUT_SECS,
        },
    );
    let mut tera = tera::Tera::new();
    tera.autoescape_on(Vec::<&str>::new());
    for (name, text) in [(SERVICE, SERVICE_TEMPLATE), (TIMER, TIMER_TEMPLATE), ("etcd-backup.sh", SCRIPT_TEMPLATE)] {
        tera.add_raw_template(name, text).with_context(|| format!("template {name}"))?;
    }
    let render = |name: &str| tera.render(name, &ctx).with_context(|| format!("rendering {name} for {}", host.name));
    let file = |path: String, mode: u32, text: String| ManagedFile {
        path,
        mode,
        owner: "root".into(),
        group: "root".into(),
        content: Arc::new(text.into_bytes()),
        secret: false,
        component: Component::Etcd,
        only_while_missing: None,
    };
    Ok(vec![
        file(SCRIPT.into(), 0o755, render("etcd-backup.sh")?),
        // Unit files 0600 root:root like every other unit (CIS 1.1.x treats units as specs).
        file(paths::unit_path(SERVICE), 0o600, render(SERVICE)?),
        file(paths::unit_path(TIMER), 0o600, render(TIMER)?),
    ])
}

/// The snapshot directory (empty when not scheduled).
pub fn dirs(inventory: &Inventory, host: &Host) -> Vec<ManagedDir> {
    match enabled(inventory, host) {
        None => Vec::new(),
        Some(_) => vec![ManagedDir {
            path: BACKUP_DIR.into(),
            mode: 0o700,
            owner: "etcd".into(),
            group: "etcd".into(),
            component: Component::Etcd,
        }],
    }
}

/// The timer is the unit apply enables and starts; the service only runs when it fires.
pub fn units(inventory: &Inventory, host: &Host) -> Vec<ManagedUnit> {
    match enabled(inventory, host) {
        None => Vec::new(),
        Some(_) => vec![ManagedUnit {
            name: TIMER.into(),
            component: Component::Etcd,
            watches: vec![SCRIPT.into(), paths::unit_path(SERVICE), paths::unit_path(TIMER)],
        }],
    }
}

/// An OnCalendar= value goes into a unit file verbatim: one line, no control characters.
/// Its syntax is systemd's to judge (`systemd-analyze calendar` on the host).
fn check_schedule(s: &str) -> anyhow::Result<()> {
    if s.chars().any(|c| c.is_control()) || s.len() > 200 {
        anyhow::bail!(
            "etcd.backup_schedule {s:?} is not a single-line systemd calendar expression (e.g. \"hourly\", \"*-*-* 00/6:00:00\")"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn nothing_without_a_schedule_or_on_non_members() {
        let inv = inventory(None);
        assert!(files(&inv, &inv.hosts[0]).expect("files").is_empty());
        let inv = inventory(Some("hourly"));
        assert!(files(&inv, &inv.hosts[1]).expect("files").is_empty());
        assert!(units(&inv, &inv.hosts[1]).is_empty());
    }

    #[test]
    fn renders_timer_service_and_script() {
        let inv = inventory(Some("*-*-* 00/6:00:00"));
        let f = files(&inv, &inv.hosts[0]).expect("files");
        let by = |p: &str| {
            let f = f.iter().find(|f| f.path == p).unwrap_or_else(|| panic!("{p} rendered"));
            (String::from_utf8_lossy(&f.content).into_owned(), f.mode)
        };
        let (timer, mode) = by("/etc/systemd/system/etcd-backup.timer");
        assert_eq!(mode, 0o600);
        assert!(timer.contains("OnCalendar=*-*-* 00/6:00:00\n"), "{timer}");
        let (service, _) = by("/etc/systemd/system/etcd-backup.service");
        assert!(service.contains("User=etcd") && service.contains("ExecStart=/usr/local/sbin/etcd-backup"));
        assert!(service.contains("ReadWritePaths=/var/backups/etcd"));
        let (script, mode) = by("/usr/local/sbin/etcd-backup");
        assert_eq!(mode, 0o755);
        assert!(script.contains("--endpoints='https://10.0.0.1:2379'"), "{script}");
        assert!(script.contains("--cert='/etc/etcd/pki/server.crt'"));
        assert!(script.contains("keep=5") && script.contains("prefix='lab'"));
        let out = std::process::Command::new("sh").args(["-n", "-c", &script]).output().expect("sh");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(units(&inv, &inv.hosts[0])[0].name, "etcd-backup.timer");
        assert_eq!(dirs(&inv, &inv.hosts[0])[0].owner, "etcd");
    }

    #[test]
    fn a_multi_line_schedule_is_refused() {
        let inv = inventory(Some("hourly\nExecStart=/bin/evil"));
        let e = files(&inv, &inv.hosts[0]).unwrap_err();
        assert!(e.to_string().contains("etcd.backup_schedule"));
    }
}
