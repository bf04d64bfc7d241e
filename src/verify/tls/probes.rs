//! Two refusals a TLS endpoint must make: a plaintext HTTP request gets no HTTP service,
//! and (for etcd and the kubelet) a client without a certificate gets nothing.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use super::handshake::{Recorder, connect, plain_io, provider, recording_config, tcp, tls_io};

/// Verdict of one refusal probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Refused, and how.
    Refused(String),
    /// Served: the evidence of what came back.
    Served(String),
    /// No verdict (e.g. nothing listens): the reason.
    Unknown(String),
}

/// The status line of an HTTP response at the start of `bytes`, if it is one.
pub fn http_status(bytes: &[u8]) -> Option<(u16, String)> {
    let text = std::str::from_utf8(&bytes[..bytes.len().min(512)]).ok().or_else(|| {
        // A response may be cut mid-character; the status line is ASCII.
        let end = bytes.iter().position(|&b| b == b'\n').unwrap_or(bytes.len());
        std::str::from_utf8(&bytes[..end]).ok()
    })?;
    let line = text.lines().next()?.trim();
    let rest = line.strip_prefix("HTTP/")?;
    let code = rest.split_whitespace().nth(1)?.parse::<u16>().ok()?;
    Some((code, line.to_string()))
}

/// The plaintext probe's verdict on what the server sent back (possibly nothing).
pub fn judge_plaintext(bytes: &[u8]) -> Refusal {
    if bytes.is_empty() {
        return Refusal::Refused("closed the connection without an HTTP answer".into());
    }
    match http_status(bytes) {
        // Go's TLS servers (etcd, kube-apiserver, kubelet) answer exactly this way:
        // "HTTP/1.0 400 Bad Request ... Client sent an HTTP request to an HTTPS server."
        Some((400, line)) => {
            let body = String::from_utf8_lossy(bytes);
            let said = body.split("\r\n\r\n").nth(1).map(|b| b.trim().to_string()).filter(|b| !b.is_empty());
            Refusal::Refused(match said {
                Some(b) => format!("{line}: {:?}", truncate(&b, 80)),
                None => line,
            })
        }
        Some((_, line)) => Refusal::Served(format!("answered a plaintext request: {line}")),
        None if bytes[0] == 0x15 => Refusal::Refused("answered with a TLS alert".into()),
        None => Refusal::Refused("answered with non-HTTP bytes".into()),
    }
}

/// Sends `GET / HTTP/1.1` in plaintext to the TLS port.
pub async fn plaintext(addr: SocketAddr, limit: Duration) -> Refusal {
    let mut stream = match tcp(addr, limit).await {
        Ok(s) => s,
        Err(e) => return Refusal::Unknown(format!("{e:#}")),
    };
    let request = format!("GET / HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if let Err(e) = stream.write_all(request.as_bytes()).await {
        return Refusal::Refused(format!("dropped the connection ({})", plain_io(&e)));
    }
    match read_some(&mut stream, limit).await {
        Ok(bytes) => judge_plaintext(&bytes),
        Err(ReadEnd::Timeout(bytes)) if bytes.is_empty() => {
            Refusal::Refused(format!("no HTTP answer within {}s", limit.as_secs_f64()))
        }
        Err(ReadEnd::Timeout(bytes)) => judge_plaintext(&bytes),
        Err(ReadEnd::Error(e, bytes)) if bytes.is_empty() => Refusal::Refused(format!("dropped the connection ({e})")),
        Err(ReadEnd::Error(_, bytes)) => judge_plaintext(&bytes),
    }
}

/// The no-certificate probe's verdict on an HTTP answer received over TLS.
pub fn judge_without_cert(bytes: &[u8]) -> Refusal {
    match http_status(bytes) {
        Some((401, line)) => Refusal::Refused(format!("request refused: {line}")),
        Some((403, line)) => Refusal::Served(format!(
            "{line}: a request without a certificate was authenticated (as anonymous) and only denied by authorization; \
             anonymous authentication must be off"
        )),
        Some((_, line)) => Refusal::Served(format!("served a client without a certificate: {line}")),
        None if bytes.is_empty() => Refusal::Refused("closed the connection".into()),
        None => Refusal::Refused("answered with non-HTTP bytes".into()),
    }
}

/// Handshakes WITHOUT a client certificate, sends `GET <path>`, and judges the outcome.
pub async fn without_client_cert(addr: SocketAddr, name: &ServerName<'static>, path: &str, limit: Duration) -> Refusal {
    let config = match recording_config(Recorder::new(provider()), None) {
        Ok(c) => c,
        Err(e) => return Refusal::Unknown(format!("{e:#}")),
    };
    let mut stream = match connect(addr, name, Arc::new(config), limit).await {
        Ok(s) => s,
        Err(e) => {
            let text = format!("{e:#}");
            // Not listening is not a refusal of the client: the TLS check reports it.
            if text.contains("cannot connect") || text.contains("no TCP answer") {
                return Refusal::Unknown(text);
            }
            return Refusal::Refused(text);
        }
    };
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if let Err(e) = stream.write_all(request.as_bytes()).await {
        return Refusal::Refused(format!("handshake rejected: {}", tls_io(&e)));
    }
    let _ = stream.flush().await;
    match read_some(&mut stream, limit).await {
        Ok(bytes) => judge_without_cert(&bytes),
        Err(ReadEnd::Error(e, bytes)) if bytes.is_empty() => Refusal::Refused(format!("handshake rejected: {e}")),
        Err(ReadEnd::Error(_, bytes)) => judge_without_cert(&bytes),
        Err(ReadEnd::Timeout(bytes)) if bytes.is_empty() => {
            Refusal::Unknown(format!("no answer within {}s after the handshake", limit.as_secs_f64()))
        }
        Err(ReadEnd::Timeout(bytes)) => judge_without_cert(&bytes),
    }
}

enum ReadEnd {
    Timeout(Vec<u8>),
    Error(String, Vec<u8>),
}

/// Reads until the peer closes (or 16 KiB, or the time limit).
async fn read_some<S: AsyncRead + Unpin>(stream: &mut S, limit: Duration) -> Result<Vec<u8>, ReadEnd> {
    let deadline = tokio::time::Instant::now() + limit;
    let mut got = Vec::new();
    let mut buf = [0u8; 2048];
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return Err(ReadEnd::Timeout(got)),
            Ok(Ok(0)) => return Ok(got),
            Ok(Ok(n)) => {
                got.extend_from_slice(&buf[..n]);
                if got.len() >= 16 * 1024 {
                    return Ok(got);
                }
            }
            Ok(Err(e)) => return Err(ReadEnd::Error(tls_io(&e), got)),
        }
    }
}

fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_refusal_of_plaintext_is_a_refusal() {
        let go = b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n";
        assert_eq!(
            judge_plaintext(go),
            Refusal::Refused("HTTP/1.0 400 Bad Request: \"Client sent an HTTP request to an HTTPS server.\"".into())
        );
        assert!(matches!(judge_plaintext(b""), Refusal::Refused(_)));
        assert!(matches!(judge_plaintext(b"HTTP/1.1 200 OK\r\n\r\n{}"), Refusal::Served(m) if m.contains("200 OK")));
        assert!(matches!(judge_plaintext(b"HTTP/1.1 401 Unauthorized\r\n\r\n"), Refusal::Served(_)));
        assert!(matches!(judge_plaintext(&[0x15, 3, 3, 0, 2, 2, 10]), Refusal::Refused(m) if m.contains("alert")));
    }

    #[test]
    fn without_a_certificate_only_401_or_nothing_is_a_refusal() {
        assert!(matches!(judge_without_cert(b"HTTP/1.1 401 Unauthorized\r\n\r\n"), Refusal::Refused(_)));
        assert!(
            matches!(judge_without_cert(b"HTTP/1.1 403 Forbidden\r\n\r\n"), Refusal::Served(m) if m.contains("anonymous"))
        );
        assert!(matches!(judge_without_cert(b"HTTP/1.1 200 OK\r\n\r\n"), Refusal::Served(_)));
        assert!(matches!(judge_without_cert(b""), Refusal::Refused(_)));
        assert_eq!(http_status(b"HTTP/1.1 404 Not Found\r\n"), Some((404, "HTTP/1.1 404 Not Found".into())));
        assert_eq!(http_status(b"\x16\x03\x01"), None);
    }
}
