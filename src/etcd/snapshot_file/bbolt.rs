//! A minimal, read-only reader of the bbolt file format etcd stores its data in.
//!
//! An etcd snapshot is a bbolt database followed by 32 bytes of sha256. Reading the
//! database ourselves lets us check more than the hash before touching a cluster: that
//! the file is bbolt at all (magic, version, meta checksums), that it is as long as its
//! own meta page says (truncation), and that every page of every bucket's B+tree is where
//! it should be. It also yields what `etcdctl snapshot status` prints (revision, total
//! keys, the CRC-32C "hash"), computed the same way, so the real tool can be an oracle.
//!
//! Layout facts (go.etcd.io/bbolt, page.go / db.go): a page starts with a 16-byte header
//! {id u64, flags u16, count u16, overflow u32}; pages 0 and 1 hold the meta at offset 16;
//! branch elements are {pos u32, ksize u32, pgid u64}; leaf elements are
//! {flags u32, pos u32, ksize u32, vsize u32}; `pos` is relative to the element itself.
//! All integers are little-endian (amd64/arm64 builds write native order).

use std::fs::File;
use std::os::unix::fs::FileExt;

use super::crc32c::Crc32c;

pub const MAGIC: u32 = 0xED0C_DAED;
pub const VERSION: u32 = 2;
const PAGE_HEADER: usize = 16;
const ELEMENT: usize = 16;
const BRANCH_PAGE: u16 = 0x01;
const LEAF_PAGE: u16 = 0x02;
const BUCKET_LEAF: u32 = 0x01;
const NO_FREELIST: u64 = u64::MAX;
/// Offset of the checksum inside the meta: the checksum covers the bytes before it.
const META_CHECKSUM_AT: usize = 56;
const MAX_DEPTH: usize = 64;

/// One of the two meta pages, validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    pub page_size: u32,
    pub root: u64,
    pub freelist: u64,
    /// The high-water mark: number of pages in the database.
    pub pages: u64,
    pub txid: u64,
}

impl Meta {
    /// Bytes of database the meta declares (what etcd streams before the sha256).
    pub fn db_size(&self) -> u64 {
        self.pages.saturating_mul(self.page_size as u64)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetaProblem {
    Short,
    BadMagic(u32),
    BadVersion(u32),
    BadChecksum,
    BadPageSize(u32),
}

impl std::fmt::Display for MetaProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MetaProblem::Short => write!(f, "file too short"),
            MetaProblem::BadMagic(m) => write!(f, "magic {m:#010x} instead of bbolt's {MAGIC:#010x}"),
            MetaProblem::BadVersion(v) => write!(f, "bbolt format version {v}, expected {VERSION}"),
            MetaProblem::BadChecksum => write!(f, "meta page checksum mismatch"),
            MetaProblem::BadPageSize(s) => write!(f, "implausible page size {s}"),
        }
    }
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// FNV-1a 64, bbolt's meta checksum.
fn fnv1a64(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in data {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Parses and validates a meta from the bytes of its page (header included).
/// Meta layout after the page header: magic u32 @0, version u32 @4, pageSize u32 @8,
/// flags u32 @12, root bucket {root u64 @16, sequence u64 @24}, freelist u64 @32,
/// pgid (page count) u64 @40, txid u64 @48, checksum u64 @56.
pub fn parse_meta(page: &[u8]) -> Result<Meta, MetaProblem> {
    let m = page.get(PAGE_HEADER..PAGE_HEADER + META_CHECKSUM_AT + 8).ok_or(MetaProblem::Short)?;
    let magic = u32_at(m, 0);
    if magic != MAGIC {
        return Err(MetaProblem::BadMagic(magic));
    }
    let version = u32_at(m, 4);
    if version != VERSION {
        return Err(MetaProblem::BadVersion(version));
    }
    if u64_at(m, META_CHECKSUM_AT) != fnv1a64(&m[..META_CHECKSUM_AT]) {
        return Err(MetaProblem::BadChecksum);
    }
    let page_size = u32_at(m, 8);
    if !(512..=65536).contains(&page_size) || !page_size.is_power_of_two() {
        return Err(MetaProblem::BadPageSize(page_size));
    }
    Ok(Meta { page_size, root: u64_at(m, 16), freelist: u64_at(m, 32), pages: u64_at(m, 40), txid: u64_at(m, 48) })
}

/// Reads both meta pages and picks the valid one with the higher txid, like bbolt does.
/// On failure returns what was wrong with each of the two.
pub fn read_meta(file: &File, file_len: u64) -> Result<Meta, (MetaProblem, MetaProblem)> {
    let first_len = file_len.min(4096) as usize;
    let mut first = vec![0u8; first_len];
    if file.read_exact_at(&mut first, 0).is_err() {
        return Err((MetaProblem::Short, MetaProblem::Short));
    }
    let meta0 = parse_meta(&first);
    // The second meta sits one page further; take the page size from meta 0 when it is
    // valid, else the common 4096 (what bbolt itself falls back to).
    let page_size = meta0.as_ref().map(|m| m.page_size as u64).unwrap_or(4096);
    let meta1 = {
        let len = (PAGE_HEADER + META_CHECKSUM_AT + 8) as u64;
        if page_size + len > file_len {
            Err(MetaProblem::Short)
        } else {
            let mut buf = vec![0u8; len as usize];
            match file.read_exact_at(&mut buf, page_size) {
                Ok(()) => parse_meta(&buf),
                Err(_) => Err(MetaProblem::Short),
            }
        }
    };
    match (meta0, meta1) {
        (Ok(a), Ok(b)) => Ok(if b.txid > a.txid { b } else { a }),
        (Ok(a), Err(_)) => Ok(a),
        (Err(_), Ok(b)) => Ok(b),
        (Err(a), Err(b)) => Err((a, b)),
    }
}

/// What a walk over every bucket found: the figures `etcdctl snapshot status` prints.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WalkSummary {
    /// Main revision of the last key in the "key" bucket (0 when empty).
    pub revision: i64,
    /// Entries in all buckets, like etcdctl's "TOTAL KEYS".
    pub total_keys: u64,
    /// CRC-32C over bucket names, keys and values: etcdctl's "HASH" (only when asked for).
    pub kv_hash: Option<u32>,
    pub buckets: Vec<String>,
}

/// Walks the B+trees of a bbolt database inside `file` (the first `meta.db_size()` bytes).
pub struct Walker<'a> {
    file: &'a File,
    meta: Meta,
    /// One bit per page: reached already (a page reached twice means a corrupt tree).
    seen: Vec<u64>,
}

/// What the walk calls for every entry: (walker, key, entry).
type Visit<'a, 'f> = dyn FnMut(&mut Walker<'a>, &[u8], Entry<'_>) -> Result<(), String> + 'f;

enum Node<'b> {
    Page(u64),
    Inline(&'b [u8]),
}

/// The element area of a page (header, element array, and as much of the keys as we read).
struct PageView {
    bytes: Vec<u8>,
    /// File offset of `bytes[0]` (None for inline pages: values are then in `bytes`).
    file_offset: Option<u64>,
    flags: u16,
    count: usize,
    span: u64,
}

impl<'a> Walker<'a> {
    pub fn new(file: &'a File, meta: Meta) -> Walker<'a> {
        let words = (meta.pages as usize).div_ceil(64);
        Walker { file, meta, seen: vec![0; words] }
    }

    /// Visits every bucket and every entry; `hash` also reads every value to compute
    /// etcdctl's CRC-32C (costs a full read of the data; the structure alone does not).
    pub fn walk(&mut self, hash: bool) -> Result<WalkSummary, String> {
        let m = self.meta;
        if m.pages < 2 || m.root >= m.pages || m.root < 2 {
            return Err(format!("meta page points outside the database (root page {}, {} pages)", m.root, m.pages));
        }
        if m.freelist != NO_FREELIST && (m.freelist >= m.pages || m.freelist < 2) {
            return Err(format!("meta page points the freelist outside the database (page {})", m.freelist));
        }
        let mut summary = WalkSummary::default();
        let mut crc = hash.then(Crc32c::default);
        let mut buckets: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        self.for_each(Node::Page(m.root), 0, &mut |_w, key, entry| {
            match entry {
                Entry::Bucket(header) => buckets.push((key.to_vec(), header.to_vec())),
                Entry::Value { .. } => {
                    return Err(format!("top-level entry {:?} is a value, not a bucket", String::from_utf8_lossy(key)));
                }
            }
            Ok(())
        })?;
        for (name, header) in buckets {
            if let Some(c) = crc.as_mut() {
                c.update(&name);
            }
            let is_key_bucket = name == b"key";
            let name_str = String::from_utf8_lossy(&name).into_owned();
            let mut count = 0u64;
            let mut last_rev = None;
            let mut visit = |w: &mut Walker<'_>, key: &[u8], entry: Entry<'_>| -> Result<(), String> {
                count += 1;
                if let Some(c) = crc.as_mut() {
                    c.update(key);
                    if let Entry::Value { bytes, file_offset, len } = entry {
                        match bytes {
                            Some(v) => c.update(v),
                            None => {
                                let v = w.read(file_offset, len as usize)?;
                                c.update(&v);
                            }
                        }
                    }
                }
                if is_key_bucket {
                    // etcd's revision key: 8 bytes big-endian main revision, '_', 8 bytes sub.
                    if key.len() < 8 {
                        return Err(format!("\"key\" bucket holds a malformed revision key of {} bytes", key.len()));
                    }
                    let mut main = [0u8; 8];
                    main.copy_from_slice(&key[..8]);
                    last_rev = Some(i64::from_be_bytes(main));
                }
                Ok(())
            };
            self.for_bucket(&header, &mut visit).map_err(|e| format!("bucket {name_str:?}: {e}"))?;
            summary.total_keys += count;
            if let Some(rev) = last_rev {
                summary.revision = rev;
            }
            summary.buckets.push(name_str);
        }
        summary.kv_hash = crc.map(|c| c.finish());
        Ok(summary)
    }

    fn for_bucket(&mut self, header: &[u8], f: &mut Visit<'a, '_>) -> Result<(), String> {
        if header.len() < 16 {
            return Err("bucket header shorter than 16 bytes".into());
        }
        let root = u64_at(header, 0);
        if root == 0 {
            // An inline bucket: its single page follows the header inside the value.
            self.for_each(Node::Inline(&header[16..]), 0, f)
        } else {
            self.for_each(Node::Page(root), 0, f)
        }
    }

    fn read(&self, offset: u64, len: usize) -> Result<Vec<u8>, String> {
        let end = offset.checked_add(len as u64).ok_or("offset overflow")?;
        if end > self.meta.db_size() {
            return Err(format!("data at byte {offset} (+{len}) lies beyond the database end {}", self.meta.db_size()));
        }
        let mut buf = vec![0u8; len];
        self.file.read_exact_at(&mut buf, offset).map_err(|e| format!("read {len} bytes at {offset}: {e}"))?;
        Ok(buf)
    }

    fn mark_seen(&mut self, pgid: u64, overflow: u64) -> Result<(), String> {
        for p in pgid..=pgid + overflow {
            let (w, b) = ((p / 64) as usize, p % 64);
            if self.seen[w] & (1 << b) != 0 {
                return Err(format!("page {p} is reachable twice"));
            }
            self.seen[w] |= 1 << b;
        }
        Ok(())
    }

    fn load_page(&mut self, pgid: u64) -> Result<PageView, String> {
        let ps = self.meta.page_size as u64;
        if pgid < 2 || pgid >= self.meta.pages {
            return Err(format!("reference to page {pgid}, outside pages 2..{}", self.meta.pages));
        }
        let offset = pgid * ps;
        let head = self.read(offset, ps as usize)?;
        let id = u64_at(&head, 0);
        if id != pgid {
            return Err(format!("page {pgid} carries id {id}"));
        }
        let flags = u16_at(&head, 8);
        let count = u16_at(&head, 10) as usize;
        let overflow = u32_at(&head, 12) as u64;
        if pgid + overflow >= self.meta.pages {
            return Err(format!("page {pgid} overflows ({overflow} pages) past the database end"));
        }
        self.mark_seen(pgid, overflow)?;
        let span = (overflow + 1) * ps;
        let need = PAGE_HEADER + count * ELEMENT;
        if need as u64 > span {
            return Err(format!("page {pgid} claims {count} elements, more than fit in it"));
        }
        let bytes = if need <= head.len() { head } else { self.read(offset, need)? };
        Ok(PageView { bytes, file_offset: Some(offset), flags, count, span })
    }

    fn for_each(&mut self, node: Node<'_>, depth: usize, f: &mut Visit<'a, '_>) -> Result<(), String> {
        if depth > MAX_DEPTH {
            return Err("B+tree deeper than 64 levels (a cycle?)".into());
        }
        let (page, label) = match node {
            Node::Page(pgid) => (self.load_page(pgid)?, format!("page {pgid}")),
            Node::Inline(bytes) => {
                if bytes.len() < PAGE_HEADER {
                    return Err("inline bucket page shorter than its header".into());
                }
                let count = u16_at(bytes, 10) as usize;
                let view = PageView {
                    bytes: bytes.to_vec(),
                    file_offset: None,
                    flags: u16_at(bytes, 8),
                    count,
                    span: bytes.len() as u64,
                };
                if PAGE_HEADER + count * ELEMENT > bytes.len() {
                    return Err("inline bucket page claims more elements than it holds".into());
                }
                (view, "inline page".to_string())
            }
        };
        match page.flags {
            BRANCH_PAGE => {
                if page.file_offset.is_none() {
                    return Err("inline bucket page is a branch page".into());
                }
                let mut children = Vec::with_capacity(page.count);
                for i in 0..page.count {
                    let e = PAGE_HEADER + i * ELEMENT;
                    children.push(u64_at(&page.bytes, e + 8));
                }
                for child in children {
                    self.for_each(Node::Page(child), depth + 1, f).map_err(|e| format!("{label}: {e}"))?;
                }
                Ok(())
            }
            LEAF_PAGE => {
                for i in 0..page.count {
                    let e = PAGE_HEADER + i * ELEMENT;
                    let flags = u32_at(&page.bytes, e);
                    let pos = u32_at(&page.bytes, e + 4) as u64;
                    let ksize = u32_at(&page.bytes, e + 8) as u64;
                    let vsize = u32_at(&page.bytes, e + 12) as u64;
                    let key_at = e as u64 + pos;
                    if key_at + ksize + vsize > page.span {
                        return Err(format!("{label}: element {i} points past the end of its page"));
                    }
                    let key: Vec<u8> = match page.file_offset {
                        Some(off) if key_at + ksize > page.bytes.len() as u64 => {
                            self.read(off + key_at, ksize as usize)?
                        }
                        _ => page.bytes[key_at as usize..(key_at + ksize) as usize].to_vec(),
                    };
                    let value_at = key_at + ksize;
                    if flags & BUCKET_LEAF != 0 {
                        // A bucket header (and an inline page after it): small, read it whole.
                        let header = match page.file_offset {
                            Some(off) if value_at + vsize > page.bytes.len() as u64 => {
                                self.read(off + value_at, vsize as usize)?
                            }
                            _ => page.bytes[value_at as usize..(value_at + vsize) as usize].to_vec(),
                        };
                        f(self, &key, Entry::Bucket(&header))?;
                    } else {
                        let entry = match page.file_offset {
                            Some(off) if value_at + vsize > page.bytes.len() as u64 => {
                                Entry::Value { bytes: None, file_offset: off + value_at, len: vsize }
                            }
                            _ => Entry::Value {
                                bytes: Some(&page.bytes[value_at as usize..(value_at + vsize) as usize]),
                                file_offset: 0,
                                len: vsize,
                            },
                        };
                        f(self, &key, entry)?;
                    }
                }
                Ok(())
            }
            other => Err(format!("{label} has flags {other:#x}, neither branch nor leaf")),
        }
    }
}

enum Entry<'b> {
    /// A nested bucket's 16-byte header (plus its inline page, if any).
    Bucket(&'b [u8]),
    /// A value, either already in memory or at an offset in the file.
    Value { bytes: Option<&'b [u8]>, file_offset: u64, len: u64 },
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn meta_page(page_size: u32, root: u64, pages: u64, txid: u64) -> Vec<u8> {
        let mut p = vec![0u8; page_size as usize];
        p[8..10].copy_from_slice(&0x04u16.to_le_bytes());
        let m = &mut p[PAGE_HEADER..];
        m[0..4].copy_from_slice(&MAGIC.to_le_bytes());
        m[4..8].copy_from_slice(&VERSION.to_le_bytes());
        m[8..12].copy_from_slice(&page_size.to_le_bytes());
        m[16..24].copy_from_slice(&root.to_le_bytes());
        m[32..40].copy_from_slice(&NO_FREELIST.to_le_bytes());
        m[40..48].copy_from_slice(&pages.to_le_bytes());
        m[48..56].copy_from_slice(&txid.to_le_bytes());
        let sum = fnv1a64(&m[..META_CHECKSUM_AT]);
        m[META_CHECKSUM_AT..META_CHECKSUM_AT + 8].copy_from_slice(&sum.to_le_bytes());
        p
    }

    #[test]
    fn meta_round_trip_and_each_check() {
        let p = meta_page(4096, 3, 10, 7);
        let m = parse_meta(&p).expect("valid meta");
        assert_eq!((m.page_size, m.root, m.pages, m.txid), (4096, 3, 10, 7));
        assert_eq!(m.db_size(), 40960);

        let mut bad = p.clone();
        bad[PAGE_HEADER] ^= 1;
        assert!(matches!(parse_meta(&bad), Err(MetaProblem::BadMagic(_))));
        let mut bad = p.clone();
        bad[PAGE_HEADER + 4] = 3;
        assert_eq!(parse_meta(&bad), Err(MetaProblem::BadVersion(3)));
        let mut bad = p.clone();
        bad[PAGE_HEADER + 42] ^= 0x10; // inside pgid: checksum no longer matches
        assert_eq!(parse_meta(&bad), Err(MetaProblem::BadChecksum));
        assert_eq!(parse_meta(&p[..30]), Err(MetaProblem::Short));
    }

    #[test]
    fn fnv_matches_reference() {
        // FNV-1a 64 of "a" (reference value from the FNV spec).
        assert_eq!(fnv1a64(b"a"), 0xaf63dc4c8601ec8c);
    }
}
