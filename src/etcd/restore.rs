//! `etcd restore`: what is checked on the members before the restore plan
//! (`plan::restore`) is made, and the report after it ran. The changes themselves are a
//! plan executed by apply's machinery: printed before confirmation, one model with apply
//! and reset.
//!
//! Preflight (read-only, per member): a restore tool (etcdutl or etcdctl), the etcd user,
//! the data dir's parent, free space for the uploaded snapshot and the restored copy.

use std::path::PathBuf;
use std::time::Duration;

use futures::future::join_all;
use serde::Serialize;
use tokio::time::Instant;

use super::connect::{connect, within};
use super::credentials::ClientCredentials;
use super::health::Verdict;
use super::members::Member;
use super::restore_script::MemberRestore;
use crate::ssh::Session;
use crate::ssh::shell::quote;

#[derive(Debug, Clone, Serialize)]
pub struct MemberOutcome {
    pub name: String,
    /// The restore tool found on this host (e.g. "etcdctl etcdctl version: 3.4.23").
    pub tool: String,
    /// The pre-restore data dir when kept (`--keep-previous`).
    pub previous_dir: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RestoreReport {
    pub snapshot: PathBuf,
    pub snapshot_revision: i64,
    /// The revision the restored cluster reports (>= the snapshot's; +1e9 when the tool
    /// bumped it for Kubernetes watchers).
    pub restored_revision: i64,
    pub cluster_token: String,
    pub members: Vec<MemberOutcome>,
    /// Hosts whose kube-apiserver was stopped and started again.
    pub apiserver_restarted: Vec<String>,
    pub verdict: Verdict,
    pub seconds: f64,
    pub warnings: Vec<String>,
}

/// Runs the preflight on every member over its session: per member, the restore tool it
/// would use, or what is missing (a problem of the plan: nothing changes).
pub async fn preflight(
    sessions: &std::collections::BTreeMap<String, Session>,
    restores: &[MemberRestore],
    need_bytes: u64,
) -> Vec<(String, Result<String, String>)> {
    let checks = restores.iter().map(|p| async move {
        let Some(session) = sessions.get(&p.name) else {
            return (p.name.clone(), Err("no SSH session".to_string()));
        };
        let r = match session.exec(&preflight_script(p, need_bytes), None).await {
            Ok(out) if out.success() => {
                let report = super::restore_script::parse_report(&out.stdout_text());
                Ok(report.into_iter().find(|(k, _)| k == "tool").map(|(_, v)| v).unwrap_or_default())
            }
            Ok(out) => Err(format!("restore preflight: {}", out.stderr_text().trim())),
            Err(e) => Err(format!("restore preflight: {e:#}")),
        };
        (p.name.clone(), r)
    });
    join_all(checks).await
}

/// Checks the host can restore: a tool, the etcd user, the parent dir, free space (bytes).
fn preflight_script(p: &MemberRestore, need_bytes: u64) -> String {
    format!(
        r#"# provision: restore preflight on {name}
set -eu
PATH=/usr/local/bin:/usr/local/sbin:/usr/bin:/usr/sbin:/bin:/sbin
parent=$(dirname -- {data_dir})
command -v etcdutl >/dev/null 2>&1 || command -v etcdctl >/dev/null 2>&1 || {{ echo "no etcdutl or etcdctl on this host: install the etcd client tools (etcd-client on Debian)"; exit 1; }} >&2
id -u {owner} >/dev/null 2>&1 || {{ echo "user {owner} does not exist"; exit 1; }} >&2
[ -d "$parent" ] || {{ echo "$parent does not exist"; exit 1; }} >&2
if command -v etcdutl >/dev/null 2>&1; then echo "tool=etcdutl $(etcdutl version 2>/dev/null | head -n1)"; else echo "tool=etcdctl $(ETCDCTL_API=3 etcdctl version 2>/dev/null | head -n1)"; fi
free=$(df -P -B1 -- "$parent" | awk 'NR==2 {{print $4}}')
if [ "$free" -lt {need} ]; then echo "only $free bytes free in $parent, the restore needs {need}" >&2; exit 1; fi
"#,
        name = p.name.replace('\n', " "),
        data_dir = quote(&p.data_dir),
        owner = quote(&p.owner),
        need = need_bytes,
    )
}

/// The revision the cluster reports now (from the first member that answers).
pub async fn current_revision(members: &[Member], creds: &ClientCredentials, timeout: Duration) -> Option<i64> {
    for m in members {
        let Ok(mut c) = connect(m, creds, timeout).await else { continue };
        let deadline = Instant::now() + timeout;
        if let Ok(s) = within(deadline, timeout, "reading status", &m.client_url, c.client.status()).await
            && let Some(h) = s.header()
        {
            return Some(h.revision());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preflight_is_valid_sh_and_checks_space() {
        let p = MemberRestore {
            snapshot: "/var/lib/etcd.provision-restore-x.db".into(),
            data_dir: "/var/lib/etcd".into(),
            name: "n1".into(),
            initial_cluster: String::new(),
            peer_url: String::new(),
            token: String::new(),
            stamp: "x".into(),
            owner: "etcd".into(),
            unit: None,
        };
        let s = preflight_script(&p, 12345);
        assert!(s.contains("-lt 12345"));
        let out = std::process::Command::new("sh").args(["-n", "-c", &s]).output().expect("sh");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
}
