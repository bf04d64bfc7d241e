//! `etcd backup`: stream a snapshot from a member to the operator's machine.
//!
//! The file is exactly what etcd streams: the bbolt database and then its 32-byte sha256
//! (so `etcdctl snapshot restore` accepts it). Writing happens on its own thread so network
//! receive and disk writes overlap. The file is written to a temp name (0600) in the target
//! directory, fsynced, then verified by re-reading it from disk (`snapshot_file::verify`:
//! length, the sha256 trailer against the data, bbolt structure, revision): the bytes we
//! keep are the bytes we checked, so the data is hashed once, after writing, not also while
//! streaming. Only then is it renamed to `<cluster>-<UTC time>-rev<revision>.db` and the
//! directory fsynced.
//! A follower is preferred (the leader is busiest); if a member fails mid-stream, the next
//! candidate is tried from scratch.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use tokio::time::Instant;

use super::connect::{connect, within};
use super::credentials::ClientCredentials;
use super::explain::{Problem, explain};
use super::health::ClusterHealth;
use super::members::Member;
use super::retention;
use super::snapshot_file::{self, Depth, HASH_LEN};

#[derive(Debug, Clone)]
pub struct BackupOptions {
    pub cluster: String,
    pub dir: PathBuf,
    /// Keep the newest N snapshots of this cluster in `dir` (None: delete nothing).
    pub keep: Option<usize>,
    /// Deadline to start the stream, and the longest pause allowed between two chunks.
    pub timeout: Duration,
    /// Draw a progress bar on stderr (indicatif hides it when stderr is not a terminal).
    pub progress: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct FailedAttempt {
    pub member: String,
    pub error: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct BackupReport {
    pub path: PathBuf,
    /// Bytes in the file (database + 32-byte sha256).
    pub size: u64,
    pub sha256: String,
    pub revision: i64,
    pub member: String,
    pub seconds: f64,
    pub bytes_per_second: f64,
    /// Of `seconds`: the re-read verification after writing.
    pub verify_seconds: f64,
    pub pruned: Vec<PathBuf>,
    pub failed_attempts: Vec<FailedAttempt>,
    pub warnings: Vec<String>,
}

/// The members to stream from, best first: healthy followers (most applied first), then
/// a healthy leader, then members that answer but cannot read through a quorum (a snapshot
/// from those may be stale: the bool says so).
pub fn candidates(members: &[Member], health: &ClusterHealth) -> Vec<(Member, bool)> {
    let mut ranked: Vec<(u8, u64, &Member)> = Vec::new();
    for mh in &health.members {
        let Some(member) = members.iter().find(|m| m.name == mh.name) else { continue };
        let Some(status) = &mh.status else { continue };
        let rank = match (mh.healthy, status.is_leader) {
            (true, false) => 0,
            (true, true) => 1,
            (false, _) => 2,
        };
        ranked.push((rank, u64::MAX - status.raft_applied_index, member));
    }
    ranked.sort_by_key(|(rank, lag, _)| (*rank, *lag));
    ranked.into_iter().map(|(rank, _, m)| (m.clone(), rank == 2)).collect()
}

/// Takes one snapshot into `opts.dir`, trying `candidates` in order.
pub async fn backup(
    candidates: &[(Member, bool)],
    creds: &ClientCredentials,
    opts: &BackupOptions,
) -> anyhow::Result<BackupReport> {
    if candidates.is_empty() {
        bail!("no etcd member answered: nothing to take a snapshot from (run `provision etcd health` to see why)");
    }
    create_private_dir(&opts.dir)?;
    let mut failed = Vec::new();
    for (member, stale_risk) in candidates {
        let started = Instant::now();
        let tmp = TempFile::new(&opts.dir, &opts.cluster);
        match stream_to_file(member, creds, opts, tmp.path()).await {
            Ok(trailer) => {
                // Re-read what is on disk: the bytes we keep are the bytes we checked.
                let verify_started = Instant::now();
                let info = snapshot_file::verify(tmp.path(), Depth::Structure).with_context(|| {
                    format!("the snapshot streamed from {} failed verification after writing", member.name)
                })?;
                let verify_seconds = verify_started.elapsed().as_secs_f64();
                if info.sha256 != hex::encode(trailer) {
                    bail!("the snapshot on disk differs from what {} streamed (disk error?)", member.name);
                }
                let name = retention::snapshot_name(&opts.cluster, time::OffsetDateTime::now_utc(), info.revision);
                let path = opts.dir.join(name);
                tmp.persist(&path)?;
                let seconds = started.elapsed().as_secs_f64();
                let pruned = match opts.keep {
                    Some(keep) => retention::prune(&opts.dir, &opts.cluster, keep)?,
                    None => Vec::new(),
                };
                let mut warnings = Vec::new();
                if *stale_risk {
                    warnings.push(format!(
                        "taken from {} while it could not read through a quorum: it may miss the latest writes",
                        member.name
                    ));
                }
                return Ok(BackupReport {
                    path,
                    size: info.file_size,
                    sha256: info.sha256,
                    revision: info.revision,
                    member: member.name.clone(),
                    seconds,
                    bytes_per_second: info.file_size as f64 / seconds.max(1e-9),
                    verify_seconds,
                    pruned,
                    failed_attempts: failed,
                    warnings,
                });
            }
            Err(e) => {
                failed.push(FailedAttempt { member: member.name.clone(), error: format!("{e:#}") });
            }
        }
    }
    let detail: Vec<String> = failed.iter().map(|f| format!("  {}: {}", f.member, f.error)).collect();
    bail!("no member delivered a complete snapshot:\n{}", detail.join("\n"))
}

/// Streams one member's snapshot into `path` (complete and fsynced); returns the sha256
/// trailer the member sent, which `verify` then checks against the data on disk.
async fn stream_to_file(
    member: &Member,
    creds: &ClientCredentials,
    opts: &BackupOptions,
    path: &Path,
) -> anyhow::Result<[u8; 32]> {
    let t = opts.timeout;
    let ep = &member.client_url;
    let mut client = connect(member, creds, t).await?.client;
    let mut stream = within(Instant::now() + t, t, "starting the snapshot", ep, client.snapshot()).await?;

    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Vec<u8>>(64);
    let writer = std::thread::spawn(move || write_all(file, rx));

    let bar = progress_bar(opts.progress, &member.name);
    let mut expected_total: Option<u64> = None;
    let mut received = 0u64;
    let outcome: anyhow::Result<()> = async {
        loop {
            let msg = match tokio::time::timeout(t, stream.message()).await {
                Err(_) => return Err(Problem::timeout(t, "waiting for the next snapshot chunk").into()),
                Ok(Err(e)) => return Err(explain(&e, ep).into()),
                Ok(Ok(None)) => return Ok(()),
                Ok(Ok(Some(m))) => m,
            };
            let blob = msg.blob();
            if expected_total.is_none() {
                // The first message says how much follows: database bytes + the hash.
                let total = msg.remaining_bytes() + blob.len() as u64 + HASH_LEN;
                expected_total = Some(total);
                bar.set_length(total);
            }
            received += blob.len() as u64;
            bar.inc(blob.len() as u64);
            if tx.send(blob.to_vec()).await.is_err() {
                return Ok(()); // the writer stopped: its error is reported below
            }
        }
    }
    .await;
    drop(tx);
    let written = writer.join().map_err(|_| anyhow::anyhow!("the snapshot writer thread panicked"))?;
    bar.finish_and_clear();
    outcome.with_context(|| format!("snapshot stream from {} ({ep}) broke after {received} bytes", member.name))?;
    let (trailer, total) = written.with_context(|| format!("cannot write {}", path.display()))?;
    match expected_total {
        Some(expected) if expected == total => {}
        Some(expected) => {
            bail!("snapshot stream from {} ended early: {total} of {expected} bytes", member.name)
        }
        None => bail!("snapshot stream from {} was empty", member.name),
    }
    Ok(trailer)
}

/// Writes every chunk, then fsyncs. Returns (the last 32 bytes: the member's sha256
/// trailer, bytes written).
fn write_all(file: File, mut rx: tokio::sync::mpsc::Receiver<Vec<u8>>) -> std::io::Result<([u8; 32], u64)> {
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let mut tail: Vec<u8> = Vec::with_capacity(64);
    let mut total = 0u64;
    while let Some(chunk) = rx.blocking_recv() {
        out.write_all(&chunk)?;
        total += chunk.len() as u64;
        if chunk.len() >= 32 {
            tail.clear();
            tail.extend_from_slice(&chunk[chunk.len() - 32..]);
        } else {
            tail.extend_from_slice(&chunk);
            if tail.len() > 32 {
                tail.drain(..tail.len() - 32);
            }
        }
    }
    let file = out.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    let mut trailer = [0u8; 32];
    if tail.len() == 32 {
        trailer.copy_from_slice(&tail);
    }
    Ok((trailer, total))
}

fn progress_bar(show: bool, member: &str) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(0).with_message(format!("snapshot from {member}"));
    if let Ok(style) =
        ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// Creates `dir` (0700: snapshots hold every secret in the cluster) if missing, and
/// refuses one that is a link, not ours or writable by others (see crate::trust).
fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    crate::trust::owned_dir(dir).with_context(|| format!("cannot use the backup directory {}", dir.display()))?;
    Ok(())
}

/// A temp file in the target directory, deleted unless persisted.
struct TempFile {
    path: PathBuf,
    keep: bool,
}

impl TempFile {
    fn new(dir: &Path, cluster: &str) -> TempFile {
        let nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        let path = dir.join(format!(".{cluster}-{}-{nanos}.db.partial", std::process::id()));
        TempFile { path, keep: false }
    }

    fn path(&self) -> &Path {
        &self.path
    }

    /// rename + fsync of the directory, so the name survives a crash.
    fn persist(mut self, to: &Path) -> anyhow::Result<()> {
        std::fs::rename(&self.path, to)
            .with_context(|| format!("cannot rename {} to {}", self.path.display(), to.display()))?;
        self.keep = true;
        if let Some(dir) = to.parent() {
            File::open(dir)
                .and_then(|d| d.sync_all())
                .with_context(|| format!("cannot fsync directory {}", dir.display()))?;
        }
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    #[test]
    fn writer_keeps_every_byte_and_the_trailer_whatever_the_chunking() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        let digest: [u8; 32] = Sha256::digest(&data).into();
        let mut stream = data.clone();
        stream.extend(digest);
        for chunk_size in [1usize, 7, 31, 32, 33, 4096, 20_000] {
            let dir = tempfile::tempdir().expect("tempdir");
            let path = dir.path().join("s.db");
            let file = File::create(&path).expect("create");
            let (tx, rx) = tokio::sync::mpsc::channel(stream.len() + 1);
            for c in stream.chunks(chunk_size) {
                tx.try_send(c.to_vec()).expect("send");
            }
            drop(tx);
            let (trailer, total) = write_all(file, rx).expect("write");
            assert_eq!(trailer, digest, "chunk size {chunk_size}");
            assert_eq!(total, stream.len() as u64);
            assert_eq!(std::fs::read(&path).expect("read"), stream);
        }
    }
}
