//! Does a server still speak TLS 1.0 or 1.1? rustls cannot even offer those versions,
//! so a minimal, well-formed legacy ClientHello is written here by hand (RFC 4346
//! layout, CBC suites of that era, no supported_versions extension) and the server's
//! first answer is classified: a ServerHello at the offered version means the old
//! protocol is accepted; an alert or a closed connection means it is refused.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::handshake::{plain_io, tcp};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Legacy {
    Tls10,
    Tls11,
}

impl Legacy {
    pub fn wire(self) -> u16 {
        match self {
            Legacy::Tls10 => 0x0301,
            Legacy::Tls11 => 0x0302,
        }
    }
    pub fn label(self) -> &'static str {
        match self {
            Legacy::Tls10 => "TLS 1.0",
            Legacy::Tls11 => "TLS 1.1",
        }
    }
}

/// The suites a TLS 1.0/1.1 client offers (all CBC; GCM needs TLS 1.2), and the
/// renegotiation SCSV.
const SUITES: [u16; 8] = [0xc013, 0xc014, 0xc009, 0xc00a, 0x002f, 0x0035, 0x000a, 0x00ff];

/// One TLS record holding a ClientHello for `version`. `sni` is a DNS name (IP
/// addresses are never sent as SNI).
pub fn client_hello(version: Legacy, random: [u8; 32], sni: Option<&str>) -> Vec<u8> {
    let mut ext = Vec::new();
    if let Some(name) = sni.filter(|n| n.len() < 256) {
        let mut list = vec![0u8]; // host_name
        push_u16(&mut list, name.len() as u16);
        list.extend_from_slice(name.as_bytes());
        let mut body = Vec::new();
        push_u16(&mut body, list.len() as u16);
        body.extend(list);
        push_ext(&mut ext, 0x0000, &body);
    }
    // supported_groups: x25519, secp256r1, secp384r1 (needed for the ECDHE suites).
    push_ext(&mut ext, 0x000a, &[0x00, 0x06, 0x00, 0x1d, 0x00, 0x17, 0x00, 0x18]);
    // ec_point_formats: uncompressed.
    push_ext(&mut ext, 0x000b, &[0x01, 0x00]);

    let mut hello = Vec::new();
    push_u16(&mut hello, version.wire());
    hello.extend_from_slice(&random);
    hello.push(0); // no session id
    push_u16(&mut hello, (SUITES.len() * 2) as u16);
    for s in SUITES {
        push_u16(&mut hello, s);
    }
    hello.extend_from_slice(&[0x01, 0x00]); // compression: null only
    push_u16(&mut hello, ext.len() as u16);
    hello.extend(ext);

    let mut handshake = vec![0x01]; // client_hello
    push_u24(&mut handshake, hello.len());
    handshake.extend(hello);

    let mut record = vec![0x16]; // handshake
    push_u16(&mut record, 0x0301); // record version: 1.0, as clients of that era send
    push_u16(&mut record, handshake.len() as u16);
    record.extend(handshake);
    record
}

fn push_u16(v: &mut Vec<u8>, n: u16) {
    v.extend_from_slice(&n.to_be_bytes());
}
fn push_u24(v: &mut Vec<u8>, n: usize) {
    v.extend_from_slice(&(n as u32).to_be_bytes()[1..]);
}
fn push_ext(v: &mut Vec<u8>, kind: u16, body: &[u8]) {
    push_u16(v, kind);
    push_u16(v, body.len() as u16);
    v.extend_from_slice(body);
}

/// How the server answered a legacy ClientHello.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// ServerHello at (or below) the offered version: the old protocol is accepted.
    Accepted { version: u16, suite: u16 },
    /// Alert, close, or an answer no legacy client could continue with.
    Refused(String),
    /// Nothing within the time limit: cannot tell.
    NoAnswer,
}

/// Classifies the first bytes a server sent back (`bytes` ends where the server closed
/// the connection or stopped sending).
pub fn classify(offered: Legacy, bytes: &[u8]) -> Answer {
    if bytes.is_empty() {
        return Answer::Refused("closed the connection without a ServerHello".into());
    }
    if bytes.len() < 5 {
        return Answer::Refused(format!("answered {} bytes and closed", bytes.len()));
    }
    let (kind, body) = (bytes[0], &bytes[5..]);
    match kind {
        0x15 => match body {
            [level, desc, ..] => Answer::Refused(format!(
                "{} alert {} ({desc})",
                if *level == 2 { "fatal" } else { "warning" },
                alert_name(*desc)
            )),
            _ => Answer::Refused("a truncated alert".into()),
        },
        0x16 => match body {
            [0x02, _, _, _, v1, v2, rest @ ..] => {
                let version = u16::from_be_bytes([*v1, *v2]);
                if version > offered.wire() {
                    return Answer::Refused(format!(
                        "a ServerHello for {} to a {} ClientHello (a {} client aborts)",
                        version_name(version),
                        offered.label(),
                        offered.label()
                    ));
                }
                // random(32), session id (len + bytes), then the chosen suite.
                let suite = rest
                    .get(32)
                    .and_then(|&sid| rest.get(33 + sid as usize..35 + sid as usize))
                    .map(|s| u16::from_be_bytes([s[0], s[1]]))
                    .unwrap_or(0);
                Answer::Accepted { version, suite }
            }
            _ => Answer::Refused("a handshake message that is not a ServerHello".into()),
        },
        _ => Answer::Refused(format!("non-TLS bytes ({:?})", String::from_utf8_lossy(&bytes[..bytes.len().min(24)]))),
    }
}

/// Sends a legacy ClientHello to `addr` and classifies the answer.
pub async fn probe(addr: SocketAddr, version: Legacy, sni: Option<&str>, limit: Duration) -> Result<Answer, String> {
    let mut stream = tcp(addr, limit).await.map_err(|e| format!("{e:#}"))?;
    let hello = client_hello(version, rand::random(), sni);
    stream.write_all(&hello).await.map_err(|e| format!("sending the ClientHello: {}", plain_io(&e)))?;
    let mut got = Vec::new();
    let mut buf = [0u8; 512];
    let deadline = tokio::time::Instant::now() + limit;
    // Read until the first record is complete, the server closes, or time is up.
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => {
                return Ok(if got.is_empty() { Answer::NoAnswer } else { classify(version, &got) });
            }
            Ok(Ok(0)) => break,
            Ok(Ok(n)) => {
                got.extend_from_slice(&buf[..n]);
                if got.len() >= 5 && got.len() >= 5 + u16::from_be_bytes([got[3], got[4]]) as usize {
                    break;
                }
                if got.len() > 16 * 1024 {
                    break;
                }
            }
            // A reset is a refusal too (the server dropped the connection).
            Ok(Err(e)) if got.is_empty() => {
                return Ok(Answer::Refused(format!("reset the connection ({})", plain_io(&e))));
            }
            Ok(Err(_)) => break,
        }
    }
    Ok(classify(version, &got))
}

pub fn version_name(v: u16) -> String {
    match v {
        0x0300 => "SSL 3.0".into(),
        0x0301 => "TLS 1.0".into(),
        0x0302 => "TLS 1.1".into(),
        0x0303 => "TLS 1.2".into(),
        0x0304 => "TLS 1.3".into(),
        other => format!("version 0x{other:04x}"),
    }
}

pub fn alert_name(desc: u8) -> &'static str {
    match desc {
        0 => "close_notify",
        10 => "unexpected_message",
        20 => "bad_record_mac",
        40 => "handshake_failure",
        42 => "bad_certificate",
        47 => "illegal_parameter",
        50 => "decode_error",
        51 => "decrypt_error",
        70 => "protocol_version",
        71 => "insufficient_security",
        80 => "internal_error",
        86 => "inappropriate_fallback",
        109 => "missing_extension",
        112 => "unrecognized_name",
        116 => "certificate_required",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_hello_lengths_are_consistent() {
        let rec = client_hello(Legacy::Tls11, [7; 32], Some("etcd.example"));
        assert_eq!(rec[0], 0x16);
        let record_len = u16::from_be_bytes([rec[3], rec[4]]) as usize;
        assert_eq!(rec.len(), 5 + record_len);
        assert_eq!(rec[5], 0x01);
        let hs_len = u32::from_be_bytes([0, rec[6], rec[7], rec[8]]) as usize;
        assert_eq!(hs_len + 4, record_len);
        assert_eq!(&rec[9..11], &[0x03, 0x02], "client_version TLS 1.1");
        // Extensions: exactly SNI, supported_groups, ec_point_formats; in particular no
        // supported_versions (0x002b), which would offer TLS 1.3.
        let sid = rec[43] as usize;
        let suites_at = 44 + sid;
        let suites_len = u16::from_be_bytes([rec[suites_at], rec[suites_at + 1]]) as usize;
        let mut at = suites_at + 2 + suites_len + 2 + 2; // compression (1 method), ext length
        let mut kinds = Vec::new();
        while at + 4 <= rec.len() {
            kinds.push(u16::from_be_bytes([rec[at], rec[at + 1]]));
            at += 4 + u16::from_be_bytes([rec[at + 2], rec[at + 3]]) as usize;
        }
        assert_eq!(at, rec.len());
        assert_eq!(kinds, vec![0x0000, 0x000a, 0x000b]);
        let without_sni = client_hello(Legacy::Tls10, [7; 32], None);
        assert_eq!(&without_sni[9..11], &[0x03, 0x01]);
        assert!(without_sni.len() < rec.len());
    }

    #[test]
    fn answers_are_classified() {
        let alert = [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 70];
        assert_eq!(classify(Legacy::Tls11, &alert), Answer::Refused("fatal alert protocol_version (70)".into()));
        assert!(matches!(classify(Legacy::Tls11, &[]), Answer::Refused(_)));
        // A ServerHello for TLS 1.1 with a 0-byte session id choosing 0xc013.
        let mut hello = vec![0x16, 0x03, 0x02, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x03, 0x02];
        hello.extend([0u8; 32]);
        hello.extend([0x00, 0xc0, 0x13, 0x00]);
        assert_eq!(classify(Legacy::Tls11, &hello), Answer::Accepted { version: 0x0302, suite: 0xc013 });
        // The same hello claiming TLS 1.2 to a 1.1 client is not an acceptance of 1.1.
        hello[9..11].copy_from_slice(&[0x03, 0x03]);
        assert!(matches!(classify(Legacy::Tls11, &hello), Answer::Refused(m) if m.contains("TLS 1.2")));
        assert!(
            matches!(classify(Legacy::Tls10, b"HTTP/1.0 400 Bad Request\r\n"), Answer::Refused(m) if m.contains("non-TLS"))
        );
    }
}
