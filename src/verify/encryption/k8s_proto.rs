//! The bytes kube-apiserver stores for an object, before encryption: the magic `k8s\0`,
//! then a protobuf `runtime.Unknown` (k8s.io/apimachinery/pkg/runtime/generated.proto)
//! whose `raw` field holds the object's own protobuf (here a core/v1 `Secret`,
//! k8s.io/api/core/v1/generated.proto).
//!
//! Field numbers used:
//! - Unknown: typeMeta = 1 (TypeMeta: apiVersion = 1, kind = 2), raw = 2,
//!   contentEncoding = 3, contentType = 4
//! - Secret: metadata = 1, data = 2 (map<string, bytes>: entry key = 1, value = 2),
//!   type = 3, stringData = 4, immutable = 5
//! - ObjectMeta: name = 1, generateName = 2, namespace = 3, selfLink = 4, uid = 5,
//!   resourceVersion = 6, generation = 7, creationTimestamp = 8 (Time: seconds = 1, nanos = 2)
//!
//! Only what verify needs is decoded; unknown fields are skipped as protobuf requires.

use std::collections::BTreeMap;
use std::fmt;

pub const MAGIC: &[u8; 4] = b"k8s\x00";

/// A Secret read back from storage. Data values may be secret: Debug shows key names only.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct StoredSecret {
    pub api_version: String,
    pub kind: String,
    pub name: String,
    pub namespace: String,
    pub data: BTreeMap<String, Vec<u8>>,
}

impl fmt::Debug for StoredSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredSecret")
            .field("api_version", &self.api_version)
            .field("kind", &self.kind)
            .field("name", &self.name)
            .field("namespace", &self.namespace)
            .field("data_keys", &self.data.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// One protobuf field: its number and value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Value<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Fixed64,
    Fixed32,
}

fn varint(buf: &[u8], at: &mut usize) -> Result<u64, String> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(*at).ok_or("truncated varint")?;
        *at += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err("varint longer than 10 bytes".into())
}

/// Every field of one message, in order.
fn fields(buf: &[u8]) -> Result<Vec<(u64, Value<'_>)>, String> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < buf.len() {
        let tag = varint(buf, &mut at)?;
        let (number, wire) = (tag >> 3, tag & 7);
        let value = match wire {
            0 => Value::Varint(varint(buf, &mut at)?),
            1 => {
                at = at.checked_add(8).filter(|&e| e <= buf.len()).ok_or("truncated fixed64")?;
                Value::Fixed64
            }
            2 => {
                let len = usize::try_from(varint(buf, &mut at)?).map_err(|_| "length overflow")?;
                let end = at.checked_add(len).filter(|&e| e <= buf.len()).ok_or("truncated length-delimited field")?;
                let v = Value::Bytes(&buf[at..end]);
                at = end;
                v
            }
            5 => {
                at = at.checked_add(4).filter(|&e| e <= buf.len()).ok_or("truncated fixed32")?;
                Value::Fixed32
            }
            w => return Err(format!("unsupported wire type {w} (field {number})")),
        };
        out.push((number, value));
    }
    Ok(out)
}

fn text(v: &[u8], what: &str) -> Result<String, String> {
    String::from_utf8(v.to_vec()).map_err(|_| format!("{what} is not UTF-8"))
}

/// Decodes stored bytes (magic + Unknown) as a Secret. Errors say what did not match,
/// never the data.
pub fn decode_secret(stored: &[u8]) -> Result<StoredSecret, String> {
    let body = stored.strip_prefix(MAGIC.as_slice()).ok_or("does not start with the k8s protobuf magic \"k8s\\0\"")?;
    let mut s = StoredSecret::default();
    let mut raw = None;
    for (n, v) in fields(body).map_err(|e| format!("runtime.Unknown: {e}"))? {
        match (n, v) {
            (1, Value::Bytes(tm)) => {
                for (n, v) in fields(tm).map_err(|e| format!("TypeMeta: {e}"))? {
                    match (n, v) {
                        (1, Value::Bytes(b)) => s.api_version = text(b, "apiVersion")?,
                        (2, Value::Bytes(b)) => s.kind = text(b, "kind")?,
                        _ => {}
                    }
                }
            }
            (2, Value::Bytes(r)) => raw = Some(r),
            _ => {}
        }
    }
    if s.api_version != "v1" || s.kind != "Secret" {
        return Err(format!("holds apiVersion {:?} kind {:?}, not a v1 Secret", s.api_version, s.kind));
    }
    let raw = raw.ok_or("runtime.Unknown has no raw object")?;
    for (n, v) in fields(raw).map_err(|e| format!("Secret: {e}"))? {
        match (n, v) {
            (1, Value::Bytes(meta)) => {
                for (n, v) in fields(meta).map_err(|e| format!("ObjectMeta: {e}"))? {
                    match (n, v) {
                        (1, Value::Bytes(b)) => s.name = text(b, "metadata.name")?,
                        (3, Value::Bytes(b)) => s.namespace = text(b, "metadata.namespace")?,
                        _ => {}
                    }
                }
            }
            (2, Value::Bytes(entry)) => {
                let (mut key, mut value) = (String::new(), Vec::new());
                for (n, v) in fields(entry).map_err(|e| format!("Secret.data entry: {e}"))? {
                    match (n, v) {
                        (1, Value::Bytes(b)) => key = text(b, "data key")?,
                        (2, Value::Bytes(b)) => value = b.to_vec(),
                        _ => {}
                    }
                }
                s.data.insert(key, value);
            }
            _ => {}
        }
    }
    Ok(s)
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_bytes(out: &mut Vec<u8>, number: u64, v: &[u8]) {
    put_varint(out, number << 3 | 2);
    put_varint(out, v.len() as u64);
    out.extend_from_slice(v);
}

fn put_int(out: &mut Vec<u8>, number: u64, v: u64) {
    put_varint(out, number << 3);
    put_varint(out, v);
}

/// What to build with [`encode_secret`].
pub struct NewSecret<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
    pub uid: &'a str,
    pub created_unix: i64,
    pub data: &'a [(&'a str, &'a [u8])],
}

/// The bytes kube-apiserver's protobuf serializer writes for this Secret (before the
/// encryption transformer): gogo-protobuf writes every non-pointer field, empty or not,
/// so empty strings are written too.
pub fn encode_secret(s: &NewSecret) -> Vec<u8> {
    let mut time = Vec::new();
    put_int(&mut time, 1, s.created_unix as u64);
    put_int(&mut time, 2, 0);
    let mut meta = Vec::new();
    put_bytes(&mut meta, 1, s.name.as_bytes());
    put_bytes(&mut meta, 2, b"");
    put_bytes(&mut meta, 3, s.namespace.as_bytes());
    put_bytes(&mut meta, 4, b"");
    put_bytes(&mut meta, 5, s.uid.as_bytes());
    put_bytes(&mut meta, 6, b"");
    put_int(&mut meta, 7, 0);
    put_bytes(&mut meta, 8, &time);
    let mut secret = Vec::new();
    put_bytes(&mut secret, 1, &meta);
    for (k, v) in s.data {
        let mut entry = Vec::new();
        put_bytes(&mut entry, 1, k.as_bytes());
        put_bytes(&mut entry, 2, v);
        put_bytes(&mut secret, 2, &entry);
    }
    put_bytes(&mut secret, 3, b"Opaque");
    let mut type_meta = Vec::new();
    put_bytes(&mut type_meta, 1, b"v1");
    put_bytes(&mut type_meta, 2, b"Secret");
    let mut out = MAGIC.to_vec();
    put_bytes(&mut out, 1, &type_meta);
    put_bytes(&mut out, 2, &secret);
    put_bytes(&mut out, 3, b"");
    put_bytes(&mut out, 4, b"");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        encode_secret(&NewSecret {
            namespace: "default",
            name: "db-password",
            uid: "5f0c3a1e-8d3b-4b1a-9c5e-2b6f1d0e7a11",
            created_unix: 1_700_000_000,
            data: &[("password", b"hunter2"), ("user", b"app")],
        })
    }

    #[test]
    fn round_trip_names_the_secret() {
        let s = decode_secret(&sample()).unwrap();
        assert_eq!((s.api_version.as_str(), s.kind.as_str()), ("v1", "Secret"));
        assert_eq!((s.namespace.as_str(), s.name.as_str()), ("default", "db-password"));
        assert_eq!(s.data.get("password").map(Vec::as_slice), Some(b"hunter2".as_slice()));
        assert!(!format!("{s:?}").contains("hunter2"));
    }

    #[test]
    fn exact_leading_bytes() {
        // magic, then field 1 (TypeMeta, 12 bytes): apiVersion "v1", kind "Secret".
        let b = sample();
        assert_eq!(&b[..18], b"k8s\x00\x0a\x0c\x0a\x02v1\x12\x06Secret");
        assert_eq!(b[18], 0x12, "field 2 (raw), length-delimited");
    }

    #[test]
    fn damage_is_reported_not_panicked() {
        assert!(decode_secret(b"{\"kind\":\"Secret\"}").unwrap_err().contains("magic"));
        let b = sample();
        for cut in [5, 10, 20, b.len() - 3] {
            assert!(decode_secret(&b[..cut]).is_err(), "cut at {cut}");
        }
        let mut cm = b.clone();
        cm[12..18].copy_from_slice(b"Config");
        assert!(decode_secret(&cm).unwrap_err().contains("not a v1 Secret"));
    }
}
