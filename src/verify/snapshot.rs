//! etcd snapshots, proven restorable:
//! - `snapshot.take`: a snapshot is streamed from a member (the etcd tools' backup code),
//!   its sha256 trailer and bbolt structure verified, its revision read;
//! - `snapshot.restore`: on an etcd host, over SSH, the official tool restores it into a
//!   scratch directory, a throw-away etcd starts on it (UNIX sockets only), and its
//!   revision must equal the snapshot's and its KV hash at that revision must equal the
//!   live cluster's; the scratch directory is removed afterwards.

use std::collections::BTreeMap;
use std::time::Duration;

use super::material::Material;
use super::report::{CheckResult, Status};
use super::snapshot_script;
use crate::etcd::backup::{self, BackupOptions, BackupReport};
use crate::etcd::connect::connect;
use crate::etcd::health::ClusterHealth;
use crate::etcd::members::Member;
use crate::etcd::snapshot_file::{self, Depth};
use crate::ssh::Session;

pub const TAKE: &str = "snapshot.take";
pub const RESTORE: &str = "snapshot.restore";
const TAKE_TITLE: &str = "a snapshot is taken and its sha256 and structure verified";
const RESTORE_TITLE: &str = "the snapshot restores on a host and holds the cluster's data at its revision";

pub async fn run(
    cluster: &str,
    members: &[Member],
    health: &ClusterHealth,
    material: &Material,
    sessions: &BTreeMap<String, Session>,
    limit: Duration,
) -> Vec<CheckResult> {
    let dir = match ScratchDir::new() {
        Ok(d) => d,
        Err(e) => {
            let why = format!("cannot create a local temp dir for the snapshot: {e}");
            return vec![
                CheckResult::cluster(TAKE, TAKE_TITLE, Status::Fail, why),
                CheckResult::skipped(RESTORE, RESTORE_TITLE, "skipped: no snapshot was taken"),
            ];
        }
    };
    let candidates = backup::candidates(members, health);
    let opts = BackupOptions {
        cluster: cluster.to_string(),
        dir: dir.path().to_path_buf(),
        keep: None,
        timeout: limit,
        progress: false,
    };
    let report = match backup::backup(&candidates, &material.etcd_client, &opts).await {
        Ok(r) => r,
        Err(e) => {
            return vec![
                CheckResult::cluster(TAKE, TAKE_TITLE, Status::Fail, format!("{e:#}")),
                CheckResult::skipped(RESTORE, RESTORE_TITLE, "skipped: no snapshot was taken"),
            ];
        }
    };
    let path = report.path.clone();
    let full = tokio::task::spawn_blocking(move || snapshot_file::verify(&path, Depth::Full)).await;
    let take = match full {
        Ok(Ok(info)) => {
            let hash = info.kv_hash.map(|h| format!(", etcdctl hash {h:#010x}")).unwrap_or_default();
            CheckResult::cluster(
                TAKE,
                TAKE_TITLE,
                Status::Pass,
                format!(
                    "from {}: {} bytes at revision {}, {} keys{hash}; sha256 {}... matches its trailer; bbolt structure sound",
                    report.member,
                    info.file_size,
                    info.revision,
                    info.total_keys,
                    &info.sha256[..16.min(info.sha256.len())]
                ),
            )
        }
        Ok(Err(e)) => CheckResult::cluster(TAKE, TAKE_TITLE, Status::Fail, e.to_string()),
        Err(e) => CheckResult::cluster(TAKE, TAKE_TITLE, Status::Fail, format!("verifying the snapshot: {e}")),
    };
    if take.status != Status::Pass {
        return vec![take, CheckResult::skipped(RESTORE, RESTORE_TITLE, "skipped: the snapshot did not verify")];
    }
    let restore = restore_on_host(&report, members, material, sessions, limit).await;
    vec![take, restore]
}

/// The member the snapshot came from restores it when reachable (a follower: the leader
/// is left alone), else any reachable etcd host.
async fn restore_on_host(
    report: &BackupReport,
    members: &[Member],
    material: &Material,
    sessions: &BTreeMap<String, Session>,
    limit: Duration,
) -> CheckResult {
    let fail = |host: Option<&str>, e: String| {
        CheckResult::cluster(RESTORE, RESTORE_TITLE, Status::Fail, e)
            .with_hosts(host.map(|h| vec![h.to_string()]).unwrap_or_default())
    };
    let host = std::iter::once(report.member.as_str())
        .chain(members.iter().map(|m| m.name.as_str()))
        .find(|h| sessions.contains_key(*h));
    let Some(host) = host else {
        return fail(None, "no etcd host is reachable over SSH to restore on".into());
    };
    let Some(session) = sessions.get(host) else {
        return fail(Some(host), "not reachable".into());
    };
    let bytes = match tokio::fs::read(&report.path).await {
        Ok(b) => b,
        Err(e) => {
            return fail(Some(host), format!("reading {}: {e}", report.path.display()));
        }
    };
    // The live cluster's KV hash at the snapshot's revision, for the comparison.
    let live = live_hash(members, material, &report.member, report.revision, limit);
    let script = snapshot_script::script(report.revision);
    // Restoring and starting take a while on big databases: a generous limit.
    let run = session.exec_with_timeout(&script, Some(&bytes), limit * 12 + Duration::from_secs(30));
    let (live, out) = tokio::join!(live, run);
    let out = match out {
        Ok(o) => o,
        Err(e) => return fail(Some(host), format!("{e}")),
    };
    let reported = snapshot_script::parse(&out.stdout_text());
    if !out.success() {
        let what = match out.status as i32 {
            snapshot_script::NO_TOOL => "cannot restore here",
            snapshot_script::RESTORE_FAILED => "the restore failed",
            snapshot_script::DID_NOT_START => "the restored copy did not start",
            _ => "the restore script failed",
        };
        let tool = if reported.tool.is_empty() { String::new() } else { format!(" ({})", reported.tool) };
        return fail(Some(host), format!("{what}{tool}: {}", crate::ssh::shell::tail(&out.stderr, 6)));
    }
    judge(host, report.revision, &reported, &live)
}

async fn live_hash(
    members: &[Member],
    material: &Material,
    prefer: &str,
    revision: i64,
    limit: Duration,
) -> Result<u32, String> {
    let member = members.iter().find(|m| m.name == prefer).or(members.first()).ok_or("no etcd member")?;
    let mut c = connect(member, &material.etcd_client, limit).await.map_err(|p| p.to_string())?;
    match tokio::time::timeout(limit, c.client.hash_kv(revision)).await {
        Ok(Ok(r)) => Ok(r.hash()),
        Ok(Err(e)) => Err(crate::etcd::explain::explain(&e, &member.client_url).to_string()),
        Err(_) => Err(format!("no answer within {}s", limit.as_secs())),
    }
}

/// A private local directory for the snapshot file, removed when dropped.
struct ScratchDir(std::path::PathBuf);

impl ScratchDir {
    fn new() -> std::io::Result<ScratchDir> {
        use std::os::unix::fs::DirBuilderExt;
        let path =
            std::env::temp_dir().join(format!("provision-verify-{}-{:08x}", std::process::id(), rand::random::<u32>()));
        std::fs::DirBuilder::new().mode(0o700).create(&path)?;
        Ok(ScratchDir(path))
    }
    fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn judge(host: &str, revision: i64, r: &snapshot_script::Reported, live: &Result<u32, String>) -> CheckResult {
    let mut problems = Vec::new();
    // A cluster that never stored a key: the file's revision reads 0 (no key revisions
    // in it), while a started etcd reports its initial revision 1. Nothing to hash either.
    let empty = revision == 0;
    match r.revision {
        Some(rev) if rev == revision || (empty && rev == 1) => {}
        Some(rev) => problems.push(format!("the restored copy is at revision {rev}, the snapshot at {revision}")),
        None => problems.push("the restored copy reported no revision".into()),
    }
    let hash = match (r.hash, live) {
        _ if empty => "the keyspace is empty (no key was ever written): no KV hash to compare".to_string(),
        (Some(h), Ok(l)) if h == *l => {
            format!("KV hash {h:#010x} at revision {revision} equals the live cluster's")
        }
        (Some(h), Ok(l)) => {
            problems.push(format!("KV hash at revision {revision}: restored {h:#010x}, live cluster {l:#010x}"));
            String::new()
        }
        // The live cluster compacted past the revision since: nothing to compare with.
        (Some(h), Err(e)) => format!("KV hash {h:#010x} (live cluster's not comparable: {e})"),
        (None, _) => {
            problems.push(format!(
                "no KV hash from the restored copy ({})",
                r.hash_error.as_deref().unwrap_or("no output")
            ));
            String::new()
        }
    };
    if !r.removed {
        problems.push(format!("the scratch directory {} was not removed", r.scratch));
    }
    if !problems.is_empty() {
        return CheckResult::cluster(RESTORE, RESTORE_TITLE, Status::Fail, problems.join("; "))
            .with_hosts(vec![host.into()]);
    }
    CheckResult::cluster(
        RESTORE,
        RESTORE_TITLE,
        Status::Pass,
        format!(
            "restored with {} into {} and started (etcd {}): revision {} matches the snapshot's ({revision}); {hash}; scratch removed",
            r.tool,
            r.scratch,
            r.etcd,
            r.revision.unwrap_or_default()
        ),
    )
    .with_hosts(vec![host.into()])
}

#[cfg(test)]
mod tests {
    use super::*;
    use snapshot_script::Reported;

    fn reported(rev: i64, hash: u32) -> Reported {
        Reported {
            scratch: "/var/tmp/x".into(),
            tool: "etcdctl 3.4.23".into(),
            etcd: "3.4.23".into(),
            revision: Some(rev),
            hash: Some(hash),
            hash_error: None,
            removed: true,
        }
    }

    #[test]
    fn revision_and_hash_must_match() {
        assert_eq!(judge("node2", 10, &reported(10, 7), &Ok(7)).status, Status::Pass);
        let r = judge("node2", 10, &reported(9, 7), &Ok(8));
        assert_eq!(r.status, Status::Fail);
        assert!(r.evidence.contains("revision 9") && r.evidence.contains("live cluster 0x00000008"), "{}", r.evidence);
        assert_eq!(r.hosts, vec!["node2"]);
        let mut left = reported(10, 7);
        left.removed = false;
        assert!(judge("node2", 10, &left, &Ok(7)).evidence.contains("not removed"));
        assert_eq!(judge("node2", 10, &reported(10, 7), &Err("compacted".into())).status, Status::Pass);
        // Never written to: the file says 0, the started copy 1.
        let fresh = judge("node2", 0, &reported(1, 7), &Ok(9));
        assert_eq!(fresh.status, Status::Pass, "{}", fresh.evidence);
        assert!(fresh.evidence.contains("keyspace is empty"));
        assert_eq!(judge("node2", 0, &reported(2, 7), &Ok(7)).status, Status::Fail);
    }
}
