//! Snapshot file names and retention: `<cluster>-<UTC time>-rev<revision>.db`.
//!
//! The name alone identifies a snapshot's cluster, time and revision, so retention needs no
//! index file, and a name is parsed strictly: the snapshots of cluster "lab-2" never count
//! as snapshots of cluster "lab" (their remainder after "lab-" is not a timestamp).

use std::path::{Path, PathBuf};

use anyhow::Context;
use time::OffsetDateTime;
use time::macros::format_description;

const STAMP: &[time::format_description::BorrowedFormatItem<'static>] =
    format_description!("[year][month][day]T[hour][minute][second]Z");

/// `20261122T101500Z`: the UTC stamp of snapshot names, and of what the plan moves aside.
pub fn stamp(at: OffsetDateTime) -> String {
    at.to_offset(time::UtcOffset::UTC).format(STAMP).unwrap_or_else(|_| "00000000T000000Z".into())
}

/// e.g. `lab-20261122T101500Z-rev12345.db`
pub fn snapshot_name(cluster: &str, at: OffsetDateTime, revision: i64) -> String {
    format!("{cluster}-{}-rev{revision}.db", stamp(at))
}

/// (timestamp, revision) when `file_name` is a snapshot of `cluster`.
pub fn parse_name(cluster: &str, file_name: &str) -> Option<(String, i64)> {
    let rest = file_name.strip_prefix(cluster)?.strip_prefix('-')?.strip_suffix(".db")?;
    let (stamp, rev) = rest.split_once("-rev")?;
    let b = stamp.as_bytes();
    let stamp_ok =
        b.len() == 16 && b[8] == b'T' && b[15] == b'Z' && b[..8].iter().chain(&b[9..15]).all(|c| c.is_ascii_digit());
    let rev_ok = !rev.is_empty() && rev.bytes().all(|c| c.is_ascii_digit());
    if !stamp_ok || !rev_ok {
        return None;
    }
    Some((stamp.to_string(), rev.parse().ok()?))
}

/// This cluster's snapshots in `dir`, oldest first (by time, then revision).
pub fn list(dir: &Path, cluster: &str) -> anyhow::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let entries = std::fs::read_dir(dir).with_context(|| format!("cannot list backup directory {}", dir.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot list backup directory {}", dir.display()))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(key) = parse_name(cluster, name)
            && entry.file_type().map(|t| t.is_file()).unwrap_or(false)
        {
            found.push((key, entry.path()));
        }
    }
    found.sort();
    Ok(found.into_iter().map(|(_, p)| p).collect())
}

/// Deletes all but the newest `keep` snapshots of `cluster` in `dir`; returns what it deleted.
pub fn prune(dir: &Path, cluster: &str, keep: usize) -> anyhow::Result<Vec<PathBuf>> {
    let all = list(dir, cluster)?;
    let excess = all.len().saturating_sub(keep);
    let mut removed = Vec::new();
    for path in all.into_iter().take(excess) {
        std::fs::remove_file(&path).with_context(|| format!("cannot delete old snapshot {}", path.display()))?;
        removed.push(path);
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_parse_strictly() {
        let at = time::macros::datetime!(2026-11-22 10:15:00 UTC);
        let n = snapshot_name("lab", at, 12345);
        assert_eq!(n, "lab-20261122T101500Z-rev12345.db");
        assert_eq!(parse_name("lab", &n), Some(("20261122T101500Z".into(), 12345)));
        assert_eq!(parse_name("lab", "lab-2-20261122T101500Z-rev1.db"), None);
        assert_eq!(parse_name("lab-2", "lab-2-20261122T101500Z-rev1.db").map(|x| x.1), Some(1));
        assert_eq!(parse_name("lab", "lab-20261122T101500Z-rev.db"), None);
        assert_eq!(parse_name("lab", "lab-20261122T101500Z-rev5.db.partial"), None);
        assert_eq!(parse_name("lab", "other-20261122T101500Z-rev5.db"), None);
    }

    #[test]
    fn prune_keeps_the_newest_of_this_cluster_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let names = [
            "lab-20261120T000000Z-rev10.db",
            "lab-20261121T000000Z-rev20.db",
            "lab-20261122T000000Z-rev30.db",
            "lab-20261122T000000Z-rev31.db",
            "lab-2-20261101T000000Z-rev1.db",
            "notes.txt",
        ];
        for n in names {
            std::fs::write(dir.path().join(n), b"x").expect("write");
        }
        let removed = prune(dir.path(), "lab", 2).expect("prune");
        let removed: Vec<String> =
            removed.iter().map(|p| p.file_name().unwrap_or_default().to_string_lossy().into_owned()).collect();
        assert_eq!(removed, vec!["lab-20261120T000000Z-rev10.db", "lab-20261121T000000Z-rev20.db"]);
        let left = list(dir.path(), "lab").expect("list");
        assert_eq!(left.len(), 2);
        assert!(dir.path().join("lab-2-20261101T000000Z-rev1.db").exists());
        assert!(dir.path().join("notes.txt").exists());
    }
}
