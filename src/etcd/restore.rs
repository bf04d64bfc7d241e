//! `etcd restore`: every member's data dir replaced from one verified snapshot, over SSH.
//!
//! Order (nothing on a host changes before step 4, so a failure up to there is harmless):
//! 1. the caller verified the snapshot (`snapshot_file::verify`) and got confirmation;
//! 2. SSH sessions to every etcd member and control-plane host;
//! 3. preflight on each member: a restore tool (etcdutl or etcdctl), the etcd user, the
//!    data dir's parent, free space for the restored copy;
//! 4. the snapshot uploaded to each member beside its data dir (0600) and its sha256
//!    checked there;
//! 5. kube-apiserver stopped where it runs (it must not write to a cluster being replaced),
//!    then etcd on every member;
//! 6. each member's data dir restored (restore_script::restore) with its name, peer URL,
//!    the initial cluster and a NEW cluster token; on any failure every swapped member is
//!    rolled back and the services started again;
//! 7. etcd started on all members at once (`--no-block`: a Type=notify unit only reports
//!    started once there is quorum, so starting them one by one would hang);
//! 8. wait for quorum; then kube-apiserver started again where it ran; then the previous
//!    data dirs and uploaded snapshots removed (kept with `keep_previous`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use futures::future::join_all;
use serde::Serialize;
use tokio::time::Instant;

use super::connect::{connect, within};
use super::credentials::ClientCredentials;
use super::health::{self, HealthOptions, Verdict};
use super::members::{Member, initial_cluster};
use super::restore_script::{self, MemberRestore};
use super::snapshot_file::SnapshotInfo;
use crate::inventory::{Inventory, Role};
use crate::ssh::shell::quote;
use crate::ssh::{Session, Target};
use crate::state::StateDir;

pub const ETCD_UNIT: &str = "etcd.service";
pub const APISERVER_UNIT: &str = "kube-apiserver.service";

#[derive(Debug, Clone)]
pub struct RestoreOptions {
    /// How long to wait for the restored cluster to reach quorum.
    pub quorum_timeout: Duration,
    pub health: HealthOptions,
    /// Keep `<data_dir>.before-restore-<stamp>` on every member after success.
    pub keep_previous: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct MemberOutcome {
    pub name: String,
    /// The restore tool used on this host (e.g. "etcdctl etcdctl version: 3.4.23").
    pub tool: String,
    /// The pre-restore data dir when kept (or when removing it failed).
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

/// One host with its SSH session.
struct Remote {
    name: String,
    session: Session,
}

/// Restores every etcd member of `inventory` from the snapshot at `info.path`.
/// `say` receives one line per step for the operator.
pub async fn restore(
    inventory: &Inventory,
    inventory_path: &Path,
    members: &[Member],
    info: &SnapshotInfo,
    creds: &ClientCredentials,
    opts: &RestoreOptions,
    say: &(dyn Fn(&str) + Sync),
) -> anyhow::Result<RestoreReport> {
    let started = Instant::now();
    let stamp = crate::plan::pipeline::utc_stamp(time::OffsetDateTime::now_utc());
    let token = format!("{}-restore-{stamp}", inventory.cluster.name);
    let cluster = initial_cluster(members);

    // 2. Sessions: etcd members and control-plane hosts (kube-apiserver).
    say("connecting to the hosts over SSH");
    let state = StateDir::beside(inventory_path, &inventory.cluster.name);
    let inventory_dir = inventory_path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let wanted: Vec<&crate::inventory::Host> =
        inventory.hosts.iter().filter(|h| h.has(Role::Etcd) || h.has(Role::ControlPlane)).collect();
    let connecting = wanted.iter().map(|h| {
        let state = &state;
        async move {
            let target = Target::for_host(inventory, h, state, inventory_dir)?;
            let session = Session::connect(&target).await?;
            Ok::<Remote, anyhow::Error>(Remote { name: h.name.clone(), session })
        }
    });
    let mut remotes = Vec::new();
    let mut errors = Vec::new();
    for r in join_all(connecting).await {
        match r {
            Ok(r) => remotes.push(r),
            Err(e) => errors.push(format!("{e:#}")),
        }
    }
    if !errors.is_empty() {
        bail!("nothing was changed: cannot reach every host:\n  {}", errors.join("\n  "));
    }
    let remote = |name: &str| remotes.iter().find(|r| r.name == name);

    let plans: Vec<MemberRestore> = members
        .iter()
        .map(|m| MemberRestore {
            snapshot: format!("{}.provision-restore-{stamp}.db", inventory.etcd.data_dir.trim_end_matches('/')),
            data_dir: inventory.etcd.data_dir.trim_end_matches('/').to_string(),
            name: m.name.clone(),
            initial_cluster: cluster.clone(),
            peer_url: m.peer_url.clone(),
            token: token.clone(),
            stamp: stamp.clone(),
            owner: "etcd".into(),
            unit: Some(ETCD_UNIT.into()),
        })
        .collect();
    let etcd_remotes: Vec<(&Remote, &MemberRestore)> = plans
        .iter()
        .map(|p| remote(&p.name).map(|r| (r, p)).with_context(|| format!("no SSH session for member {}", p.name)))
        .collect::<anyhow::Result<_>>()?;

    // 3. Preflight.
    say("checking every member can restore (tool, etcd user, free space)");
    let need = info.db_size.saturating_mul(2) + info.file_size;
    let checks = etcd_remotes.iter().map(|(r, p)| async move {
        let out = r.session.exec(&preflight_script(p, need), None).await?;
        if !out.success() {
            bail!("{}: {}", r.name, out.stderr_text().trim());
        }
        Ok(())
    });
    let failed: Vec<String> =
        join_all(checks).await.into_iter().filter_map(|r| r.err().map(|e| format!("{e:#}"))).collect();
    if !failed.is_empty() {
        bail!("nothing was changed: preflight failed:\n  {}", failed.join("\n  "));
    }

    // 4. Upload and check.
    say(&format!("uploading the snapshot ({} bytes) to every member", info.file_size));
    let bytes = std::fs::read(&info.path).with_context(|| format!("cannot read {}", info.path.display()))?;
    let file_sha = {
        use sha2::{Digest, Sha256};
        hex::encode(Sha256::digest(&bytes))
    };
    let uploads = etcd_remotes.iter().map(|(r, p)| {
        let bytes = &bytes;
        let file_sha = &file_sha;
        async move {
            r.session.write_file_atomic(&p.snapshot, bytes, 0o600, "root", "root").await?;
            let out = r.session.exec_checked(&format!("sha256sum -- {}", quote(&p.snapshot)), None).await?;
            let got = out.stdout_text();
            if got.split_whitespace().next() != Some(file_sha.as_str()) {
                bail!("{}: the uploaded snapshot's sha256 differs from the local file", r.name);
            }
            Ok(())
        }
    });
    let failed: Vec<String> =
        join_all(uploads).await.into_iter().filter_map(|r| r.err().map(|e| format!("{e:#}"))).collect();
    if !failed.is_empty() {
        cleanup_uploads(&etcd_remotes).await;
        bail!("nothing was changed: upload failed:\n  {}", failed.join("\n  "));
    }

    // 5. Stop kube-apiserver (where active), then etcd.
    let mut apiservers = Vec::new();
    for r in &remotes {
        let out = r.session.exec(&format!("systemctl is-active --quiet {}", APISERVER_UNIT), None).await?;
        if out.success() {
            apiservers.push(r);
        }
    }
    if !apiservers.is_empty() {
        say(&format!(
            "stopping kube-apiserver on {}",
            apiservers.iter().map(|r| r.name.as_str()).collect::<Vec<_>>().join(", ")
        ));
        run_all(apiservers.iter().copied(), &format!("systemctl stop {APISERVER_UNIT}")).await?;
    }
    say("stopping etcd on every member");
    if let Err(e) = run_all(etcd_remotes.iter().map(|(r, _)| *r), &format!("systemctl stop {ETCD_UNIT}")).await {
        restart_services(&etcd_remotes, &apiservers).await;
        cleanup_uploads(&etcd_remotes).await;
        return Err(e.context("stopping etcd failed; services started again, data unchanged"));
    }

    // 6. Restore every member; roll everything back if any fails.
    say("restoring every member's data dir");
    let restores = etcd_remotes.iter().map(|(r, p)| async move {
        let out = r.session.exec(&restore_script::restore(p), None).await?;
        if !out.success() {
            bail!("{}: {}", r.name, out.stderr_text().trim());
        }
        Ok(restore_script::parse_report(&out.stdout_text()))
    });
    let results = join_all(restores).await;
    let mut outcomes = Vec::new();
    let mut failed = Vec::new();
    for ((_, p), r) in etcd_remotes.iter().zip(&results) {
        match r {
            Ok(report) => {
                let tool = report.iter().find(|(k, _)| k == "tool").map(|(_, v)| v.clone()).unwrap_or_default();
                outcomes.push(MemberOutcome { name: p.name.clone(), tool, previous_dir: Some(p.previous_dir()) });
            }
            Err(e) => failed.push(format!("{e:#}")),
        }
    }
    if !failed.is_empty() {
        say("a member failed to restore: putting every previous data dir back");
        for (r, p) in &etcd_remotes {
            if let Err(e) = r.session.exec_checked(&restore_script::roll_back(p), None).await {
                failed.push(format!("rollback on {}: {e}", r.name));
            }
        }
        restart_services(&etcd_remotes, &apiservers).await;
        cleanup_uploads(&etcd_remotes).await;
        bail!("restore failed; previous data restored and services started again:\n  {}", failed.join("\n  "));
    }

    // 7. Start all members together.
    say("starting etcd on every member");
    run_all(
        etcd_remotes.iter().map(|(r, _)| *r),
        &format!("systemctl reset-failed {ETCD_UNIT} 2>/dev/null; systemctl start --no-block {ETCD_UNIT}"),
    )
    .await?;

    // 8. Quorum, then the apiservers, then clean up.
    say("waiting for quorum");
    let deadline = Instant::now() + opts.quorum_timeout;
    let report = loop {
        let h = health::check(members, creds, opts.health).await;
        if h.verdict == Verdict::Healthy || (Instant::now() >= deadline && h.quorum) {
            break h;
        }
        if Instant::now() >= deadline {
            let rollback: Vec<String> = etcd_remotes
                .iter()
                .map(|(r, p)| {
                    format!(
                        "  on {}: systemctl stop etcd && mv {} {}.failed && mv {} {} && systemctl start etcd",
                        r.name,
                        p.data_dir,
                        p.data_dir,
                        p.previous_dir(),
                        p.data_dir
                    )
                })
                .collect();
            bail!(
                "the restored cluster has no quorum after {}s ({}); kube-apiserver left stopped. \
                 The previous data dirs are kept; to go back, run:\n{}",
                opts.quorum_timeout.as_secs(),
                h.summary(),
                rollback.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    let mut warnings = Vec::new();
    if report.verdict != Verdict::Healthy {
        warnings.push(format!("the restored cluster is {}", report.summary()));
    }
    let restored_revision = current_revision(members, creds, opts.health.timeout).await.unwrap_or(0);

    if !apiservers.is_empty() {
        say("starting kube-apiserver again");
        if let Err(e) =
            run_all(apiservers.iter().copied(), &format!("systemctl start --no-block {APISERVER_UNIT}")).await
        {
            warnings.push(format!("starting kube-apiserver: {e:#}"));
        }
    }
    for ((r, p), outcome) in etcd_remotes.iter().zip(outcomes.iter_mut()) {
        let mut script = format!("rm -f -- {}\n", quote(&p.snapshot));
        if !opts.keep_previous && report.verdict == Verdict::Healthy {
            script.push_str(&restore_script::drop_previous(p));
        }
        match r.session.exec_checked(&script, None).await {
            Ok(_) if !opts.keep_previous && report.verdict == Verdict::Healthy => outcome.previous_dir = None,
            Ok(_) => {}
            Err(e) => warnings.push(format!("cleaning up on {}: {e}", r.name)),
        }
    }
    Ok(RestoreReport {
        snapshot: info.path.clone(),
        snapshot_revision: info.revision,
        restored_revision,
        cluster_token: token,
        members: outcomes,
        apiserver_restarted: apiservers.iter().map(|r| r.name.clone()).collect(),
        verdict: report.verdict,
        seconds: started.elapsed().as_secs_f64(),
        warnings,
    })
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
free=$(df -P -B1 -- "$parent" | awk 'NR==2 {{print $4}}')
if [ "$free" -lt {need} ]; then echo "only $free bytes free in $parent, the restore needs {need}" >&2; exit 1; fi
"#,
        name = p.name.replace('\n', " "),
        data_dir = quote(&p.data_dir),
        owner = quote(&p.owner),
        need = need_bytes,
    )
}

async fn run_all<'a>(remotes: impl Iterator<Item = &'a Remote>, command: &str) -> anyhow::Result<()> {
    let runs = remotes.map(|r| async move { r.session.exec_checked(command, None).await.map(|_| ()) });
    let failed: Vec<String> = join_all(runs).await.into_iter().filter_map(|r| r.err().map(|e| e.to_string())).collect();
    if failed.is_empty() { Ok(()) } else { bail!("{}", failed.join("\n  ")) }
}

/// Best effort after an early failure: etcd and kube-apiserver running again.
async fn restart_services(etcd: &[(&Remote, &MemberRestore)], apiservers: &[&Remote]) {
    let _ = run_all(etcd.iter().map(|(r, _)| *r), &format!("systemctl start --no-block {ETCD_UNIT}")).await;
    let _ = run_all(apiservers.iter().copied(), &format!("systemctl start --no-block {APISERVER_UNIT}")).await;
}

async fn cleanup_uploads(etcd: &[(&Remote, &MemberRestore)]) {
    for (r, p) in etcd {
        let _ = r.session.exec(&format!("rm -f -- {}", quote(&p.snapshot)), None).await;
    }
}

/// The revision the cluster reports now (from the first member that answers).
async fn current_revision(members: &[Member], creds: &ClientCredentials, timeout: Duration) -> Option<i64> {
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
