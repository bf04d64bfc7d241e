//! Integrity of an etcd snapshot file, checked before anything uses it.
//!
//! A snapshot as `etcdctl snapshot save` writes it (and as `etcd backup` writes it) is the
//! bbolt database streamed by the member, followed by the 32-byte sha256 of that database.
//! `etcdctl snapshot restore` needs that trailer (without it: "snapshot missing hash").
//!
//! `verify` runs the checks cheapest-first and names the one that failed:
//! 1. size sanity;
//! 2. bbolt meta pages (magic, version, checksum);
//! 3. the length the meta declares vs the file's length (truncation, missing hash,
//!    trailing bytes);
//! 4. the sha256 trailer over the whole database (bit flips);
//! 5. a walk over every bucket's B+tree (page ids, bounds, no page reached twice), which
//!    also yields the revision.

#[path = "snapshot_file/bbolt.rs"]
mod bbolt;
#[path = "snapshot_file/crc32c.rs"]
mod crc32c;

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

/// Length of the sha256 trailer etcd sends after the database.
pub const HASH_LEN: u64 = 32;
/// Smallest possible bbolt file: two meta pages of the smallest page size.
const MIN_DB: u64 = 2 * 512;

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("cannot read snapshot {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("snapshot {path} is not a regular file")]
    NotAFile { path: PathBuf },
    #[error(
        "snapshot {path} is too small to be an etcd snapshot ({size} bytes); \
         was the download interrupted?"
    )]
    TooSmall { path: PathBuf, size: u64 },
    #[error(
        "snapshot {path} is not an etcd snapshot or its header is corrupt: neither bbolt meta page \
         is valid (page 0: {meta0}; page 1: {meta1})"
    )]
    NotBbolt { path: PathBuf, meta0: String, meta1: String },
    #[error(
        "snapshot {path} is truncated: its database header declares {declared} bytes plus the \
         32-byte sha256, but the file holds {actual} bytes ({missing} missing); use another copy"
    )]
    Truncated { path: PathBuf, declared: u64, actual: u64, missing: u64 },
    #[error(
        "snapshot {path} has no sha256 trailer: it is a raw bbolt file ({size} bytes, e.g. a copy \
         of member/snap/db), not a snapshot streamed by etcd; it cannot be verified"
    )]
    MissingHash { path: PathBuf, size: u64 },
    #[error(
        "snapshot {path} has {extra} unexpected bytes after the database and its sha256 \
         (database {declared} bytes, file {actual} bytes): not a file etcd wrote"
    )]
    TrailingBytes { path: PathBuf, declared: u64, actual: u64, extra: u64 },
    #[error(
        "snapshot {path} is corrupt: the sha256 of its {size}-byte database is {actual}, but the \
         file records {expected} (a flipped bit or a damaged copy); use another copy"
    )]
    HashMismatch { path: PathBuf, size: u64, expected: String, actual: String },
    #[error("snapshot {path} has a damaged database structure although its sha256 matches: {detail}")]
    Structure { path: PathBuf, detail: String },
}

/// What a verified snapshot holds.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SnapshotInfo {
    pub path: PathBuf,
    /// Bytes in the file: database + 32-byte sha256.
    pub file_size: u64,
    /// Bytes of bbolt database (etcdctl's "TOTAL SIZE").
    pub db_size: u64,
    /// sha256 of the database, hex; equal to the trailer.
    pub sha256: String,
    pub page_size: u32,
    /// The etcd revision the snapshot was taken at.
    pub revision: i64,
    /// Entries over all buckets (etcdctl's "TOTAL KEYS").
    pub total_keys: u64,
    /// etcdctl's "HASH" (CRC-32C of bucket names, keys, values), with `Depth::Full` only.
    pub kv_hash: Option<u32>,
}

/// How much of the database `verify` reads beyond the sha256 pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    /// Meta pages, length, sha256, and every branch/leaf page of every bucket (not values).
    Structure,
    /// Also every value, to compute etcdctl's CRC-32C hash.
    Full,
}

/// Checks a snapshot file without modifying it; see the module docs for the order.
pub fn verify(path: &Path, depth: Depth) -> Result<SnapshotInfo, SnapshotError> {
    let io = |source| SnapshotError::Io { path: path.to_path_buf(), source };
    // Checked before the open: opening a named pipe would wait forever for a writer.
    let (file, md) = match crate::trust::open_regular(path, crate::trust::Follow::Links) {
        Ok(Some(opened)) => opened,
        Ok(None) => return Err(io(std::io::ErrorKind::NotFound.into())),
        Err(crate::trust::TrustError::NotARegularFile { .. }) => {
            return Err(SnapshotError::NotAFile { path: path.to_path_buf() });
        }
        Err(e) => return Err(io(std::io::Error::other(e.to_string()))),
    };
    let len = md.len();
    if len < MIN_DB + HASH_LEN {
        return Err(SnapshotError::TooSmall { path: path.to_path_buf(), size: len });
    }

    let meta = bbolt::read_meta(&file, len).map_err(|(m0, m1)| SnapshotError::NotBbolt {
        path: path.to_path_buf(),
        meta0: m0.to_string(),
        meta1: m1.to_string(),
    })?;
    let declared = meta.db_size();
    let expected_len = declared.saturating_add(HASH_LEN);
    if len == declared {
        return Err(SnapshotError::MissingHash { path: path.to_path_buf(), size: len });
    }
    if len < expected_len {
        return Err(SnapshotError::Truncated {
            path: path.to_path_buf(),
            declared,
            actual: len,
            missing: expected_len - len,
        });
    }
    if len > expected_len {
        return Err(SnapshotError::TrailingBytes {
            path: path.to_path_buf(),
            declared,
            actual: len,
            extra: len - expected_len,
        });
    }

    let actual = sha256_prefix(&file, declared).map_err(io)?;
    let mut trailer = [0u8; HASH_LEN as usize];
    file.read_exact_at(&mut trailer, declared).map_err(io)?;
    if actual != trailer {
        return Err(SnapshotError::HashMismatch {
            path: path.to_path_buf(),
            size: declared,
            expected: hex::encode(trailer),
            actual: hex::encode(actual),
        });
    }

    let summary = bbolt::Walker::new(&file, meta)
        .walk(depth == Depth::Full)
        .map_err(|detail| SnapshotError::Structure { path: path.to_path_buf(), detail })?;
    Ok(SnapshotInfo {
        path: path.to_path_buf(),
        file_size: len,
        db_size: declared,
        sha256: hex::encode(actual),
        page_size: meta.page_size,
        revision: summary.revision,
        total_keys: summary.total_keys,
        kv_hash: summary.kv_hash,
    })
}

/// sha256 of the first `len` bytes of `file`.
fn sha256_prefix(file: &File, len: u64) -> std::io::Result<[u8; 32]> {
    let mut hasher = Sha256::new();
    let mut reader = std::io::BufReader::with_capacity(1 << 20, file).take(len);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny but real bbolt file: metas on pages 0/1, an empty freelist-less root leaf on
    /// page 2 holding one inline bucket "key" with one revision key.
    fn tiny_db() -> Vec<u8> {
        let ps = 4096usize;
        let mut db = Vec::new();
        db.extend(bbolt_test_meta(ps as u32, 2, 3, 1));
        db.extend(bbolt_test_meta(ps as u32, 2, 3, 0));
        // Page 2: root leaf with one bucket element "key" whose value is an inline bucket.
        let mut page = vec![0u8; ps];
        page[0..8].copy_from_slice(&2u64.to_le_bytes());
        page[8..10].copy_from_slice(&0x02u16.to_le_bytes());
        page[10..12].copy_from_slice(&1u16.to_le_bytes());
        // inline bucket value: header {root 0, seq 0} + inline leaf page with one element
        let rev_key: Vec<u8> = {
            let mut k = 42u64.to_be_bytes().to_vec();
            k.push(b'_');
            k.extend(0u64.to_be_bytes());
            k
        };
        let mut inline = vec![0u8; 16];
        let mut ipage = vec![0u8; 16 + 16];
        ipage[8..10].copy_from_slice(&0x02u16.to_le_bytes());
        ipage[10..12].copy_from_slice(&1u16.to_le_bytes());
        ipage[16 + 4..16 + 8].copy_from_slice(&16u32.to_le_bytes()); // pos: right after element
        ipage[16 + 8..16 + 12].copy_from_slice(&(rev_key.len() as u32).to_le_bytes());
        ipage[16 + 12..16 + 16].copy_from_slice(&3u32.to_le_bytes());
        ipage.extend(&rev_key);
        ipage.extend(b"val");
        inline.extend(ipage);
        let e = 16;
        page[e..e + 4].copy_from_slice(&1u32.to_le_bytes()); // bucket flag
        page[e + 4..e + 8].copy_from_slice(&16u32.to_le_bytes());
        page[e + 8..e + 12].copy_from_slice(&3u32.to_le_bytes());
        page[e + 12..e + 16].copy_from_slice(&(inline.len() as u32).to_le_bytes());
        page[32..35].copy_from_slice(b"key");
        page[35..35 + inline.len()].copy_from_slice(&inline);
        db.extend(page);
        db
    }

    fn bbolt_test_meta(ps: u32, root: u64, pages: u64, txid: u64) -> Vec<u8> {
        // Mirrors bbolt::tests::meta_page (kept here so the test is self-contained).
        let mut p = vec![0u8; ps as usize];
        let m = &mut p[16..];
        m[0..4].copy_from_slice(&bbolt::MAGIC.to_le_bytes());
        m[4..8].copy_from_slice(&bbolt::VERSION.to_le_bytes());
        m[8..12].copy_from_slice(&ps.to_le_bytes());
        m[16..24].copy_from_slice(&root.to_le_bytes());
        m[32..40].copy_from_slice(&u64::MAX.to_le_bytes());
        m[40..48].copy_from_slice(&pages.to_le_bytes());
        m[48..56].copy_from_slice(&txid.to_le_bytes());
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for &b in &m[..56] {
            h ^= b as u64;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        m[56..64].copy_from_slice(&h.to_le_bytes());
        p
    }

    fn with_hash(db: &[u8]) -> Vec<u8> {
        let mut f = db.to_vec();
        f.extend(Sha256::digest(db));
        f
    }

    fn write(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> PathBuf {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).expect("write");
        p
    }

    #[test]
    fn a_good_snapshot_verifies_and_reports_revision() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = write(&dir, "ok.db", &with_hash(&tiny_db()));
        let info = verify(&p, Depth::Full).expect("valid snapshot");
        assert_eq!(info.revision, 42);
        assert_eq!(info.total_keys, 1);
        assert_eq!(info.db_size, 3 * 4096);
        assert_eq!(info.file_size, 3 * 4096 + 32);
        assert!(info.kv_hash.is_some());
    }

    #[test]
    fn each_kind_of_damage_names_its_check() {
        let dir = tempfile::tempdir().expect("tempdir");
        let good = with_hash(&tiny_db());

        let p = write(&dir, "trunc.db", &good[..good.len() - 100]);
        let e = verify(&p, Depth::Structure).unwrap_err();
        assert!(matches!(e, SnapshotError::Truncated { missing: 100, .. }), "{e}");
        assert!(e.to_string().contains("truncated"));

        let mut flipped = good.clone();
        flipped[2 * 4096 + 2000] ^= 0x04;
        let p = write(&dir, "flip.db", &flipped);
        let e = verify(&p, Depth::Structure).unwrap_err();
        assert!(matches!(e, SnapshotError::HashMismatch { .. }), "{e}");
        assert!(e.to_string().contains("sha256"));

        let p = write(&dir, "raw.db", &tiny_db());
        assert!(matches!(verify(&p, Depth::Structure), Err(SnapshotError::MissingHash { .. })));

        let mut extra = good.clone();
        extra.extend(b"junk");
        let p = write(&dir, "extra.db", &extra);
        assert!(matches!(verify(&p, Depth::Structure), Err(SnapshotError::TrailingBytes { extra: 4, .. })));

        let p = write(&dir, "text.db", &vec![b'x'; 10_000]);
        assert!(matches!(verify(&p, Depth::Structure), Err(SnapshotError::NotBbolt { .. })));

        let p = write(&dir, "small.db", b"hello");
        assert!(matches!(verify(&p, Depth::Structure), Err(SnapshotError::TooSmall { size: 5, .. })));

        let e = verify(&dir.path().join("absent.db"), Depth::Structure).unwrap_err();
        assert!(matches!(e, SnapshotError::Io { .. }));
        assert!(e.to_string().contains("absent.db"));
    }

    #[test]
    fn a_bad_tree_with_a_matching_hash_is_caught_by_the_walk() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut db = tiny_db();
        // Page 2 claims to be page 9: a structural error the sha256 cannot see when the
        // hash was computed over the damaged bytes.
        db[2 * 4096..2 * 4096 + 8].copy_from_slice(&9u64.to_le_bytes());
        let p = write(&dir, "tree.db", &with_hash(&db));
        let e = verify(&p, Depth::Structure).unwrap_err();
        assert!(matches!(e, SnapshotError::Structure { .. }), "{e}");
    }
}
