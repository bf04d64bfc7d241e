//! HTTP downloads: small checksum files into memory, binaries into a `.part` file that
//! a later run resumes (HTTP Range) when the transfer broke off.
//!
//! ureq (blocking, rustls with ring, webpki roots) keeps this small: no async runtime
//! is needed for a handful of files, and it follows dl.k8s.io's and GitHub's redirects.
//! Proxies come from the environment (ALL_PROXY / HTTPS_PROXY / HTTP_PROXY, NO_PROXY);
//! loopback URLs (a local mirror) never go through a proxy.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

use indicatif::ProgressBar;

/// Checksum files are tiny; anything larger is not one (e.g. an HTML error page).
const MAX_TEXT_BYTES: u64 = 1 << 20;
const CHUNK: usize = 256 * 1024;

/// Why a download failed, in words that say what to do.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{url}: HTTP {status}{reason}")]
    Status { url: String, status: u16, reason: String },
    #[error("{url}: {message}")]
    Transport { url: String, message: String },
    /// The connection ended before the announced length; the `.part` file keeps what came.
    #[error("{url}: the transfer broke off after {got} of {expected} bytes ({message}); run again to resume from {part}")]
    Truncated { url: String, got: u64, expected: String, message: String, part: String },
    #[error("{path}: {message}")]
    Local { path: String, message: String },
}

impl FetchError {
    pub fn is_not_found(&self) -> bool {
        matches!(self, FetchError::Status { status: 404, .. })
    }
}

pub struct Http {
    /// Through the environment's proxy, if any.
    agent: ureq::Agent,
    /// For loopback mirrors: never proxied.
    direct: ureq::Agent,
}

impl Default for Http {
    fn default() -> Self {
        Http::new()
    }
}

impl Http {
    pub fn new() -> Http {
        let build = |proxy: Option<ureq::Proxy>| {
            ureq::Agent::config_builder()
                // 4xx/5xx are answered with what to do, not ureq's bare status error.
                .http_status_as_error(false)
                .proxy(proxy)
                .max_redirects(10)
                .user_agent(concat!("provision/", env!("CARGO_PKG_VERSION")))
                // No transparent decompression: a .tar.gz must arrive byte for byte.
                .accept_encoding("")
                .timeout_connect(Some(Duration::from_secs(30)))
                .timeout_recv_response(Some(Duration::from_secs(60)))
                // A stalled transfer fails (and resumes on the next run) instead of hanging.
                .timeout_per_read(Some(Duration::from_secs(60)))
                .build()
                .new_agent()
        };
        Http { agent: build(ureq::Proxy::try_from_env()), direct: build(None) }
    }

    fn agent_for(&self, url: &str) -> &ureq::Agent {
        if is_loopback_url(url) { &self.direct } else { &self.agent }
    }

    /// A small text file (a `.sha256` or `SHA256SUMS`).
    pub fn get_text(&self, url: &str) -> Result<String, FetchError> {
        let mut resp = self.agent_for(url).get(url).call().map_err(|e| transport(url, e))?;
        check_status(url, resp.status().as_u16(), resp.status().canonical_reason())?;
        let mut bytes = Vec::new();
        resp.body_mut()
            .as_reader()
            .take(MAX_TEXT_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| FetchError::Transport { url: url.into(), message: format!("reading the response: {e}") })?;
        if bytes.len() as u64 > MAX_TEXT_BYTES {
            return Err(FetchError::Transport { url: url.into(), message: "is larger than 1 MiB: not a checksum file".into() });
        }
        String::from_utf8(bytes).map_err(|_| FetchError::Transport { url: url.into(), message: "is not text: not a checksum file".into() })
    }

    /// Downloads `url` into `part`, resuming when `part` already holds a prefix (the
    /// server must answer the Range request with 206; otherwise it starts over).
    /// Returns the whole content. `part` keeps what arrived when the transfer breaks off.
    pub fn download(&self, url: &str, part: &Path, bar: &ProgressBar) -> Result<Vec<u8>, FetchError> {
        let local = |message: String| FetchError::Local { path: part.display().to_string(), message };
        let mut have = match std::fs::read(part) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(local(format!("reading the partial download: {e}"))),
        };
        let agent = self.agent_for(url);
        let mut req = agent.get(url);
        if !have.is_empty() {
            req = req.header("Range", format!("bytes={}-", have.len()));
        }
        let resp = req.call().map_err(|e| transport(url, e))?;
        let status = resp.status().as_u16();
        let resumed = match status {
            206 if !have.is_empty() && content_range_starts_at(&resp, have.len() as u64) => true,
            // The prefix is as long as the file (or longer, or the file changed): start over.
            206 | 416 if !have.is_empty() => {
                let _ = std::fs::remove_file(part);
                return self.download(url, part, bar);
            }
            _ => {
                check_status(url, status, resp.status().canonical_reason())?;
                false
            }
        };
        let mut file = if resumed {
            OpenOptions::new().append(true).open(part)
        } else {
            have.clear();
            File::create(part)
        }
        .map_err(|e| local(format!("cannot write the download: {e}")))?;

        let remaining = resp.body().content_length();
        let total = remaining.map(|r| r + have.len() as u64);
        if let Some(t) = total {
            bar.set_length(t);
            have.reserve(usize::try_from(t).unwrap_or(0).saturating_sub(have.len()));
        }
        bar.set_position(have.len() as u64);

        let mut reader = resp.into_body().into_reader();
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) => {
                    let _ = file.sync_all();
                    return Err(FetchError::Truncated {
                        url: url.into(),
                        got: have.len() as u64,
                        expected: total.map_or("an unknown number of".into(), |t| t.to_string()),
                        message: e.to_string(),
                        part: part.display().to_string(),
                    });
                }
            };
            file.write_all(&buf[..n]).map_err(|e| local(format!("writing the download: {e}")))?;
            have.extend_from_slice(&buf[..n]);
            bar.inc(n as u64);
        }
        if let Some(t) = total
            && t != have.len() as u64
        {
            return Err(FetchError::Truncated {
                url: url.into(),
                got: have.len() as u64,
                expected: t.to_string(),
                message: "the connection closed early".into(),
                part: part.display().to_string(),
            });
        }
        file.sync_all().map_err(|e| local(format!("syncing the download: {e}")))?;
        Ok(have)
    }
}

fn content_range_starts_at(resp: &ureq::http::Response<ureq::Body>, offset: u64) -> bool {
    // "bytes 1000-4999/5000"
    resp.headers()
        .get("content-range")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("bytes "))
        .and_then(|v| v.split('-').next())
        .and_then(|start| start.trim().parse::<u64>().ok())
        == Some(offset)
}

fn check_status(url: &str, status: u16, reason: Option<&str>) -> Result<(), FetchError> {
    if (200..300).contains(&status) {
        return Ok(());
    }
    Err(FetchError::Status { url: url.into(), status, reason: reason.map(|r| format!(" {r}")).unwrap_or_default() })
}

fn transport(url: &str, e: ureq::Error) -> FetchError {
    let text = e.to_string();
    let hint = match &e {
        _ if text.contains("certificate") => {
            " (the server's TLS certificate is not signed by a CA of the built-in Mozilla list: behind a \
             TLS-inspecting proxy, use a mirror or the directory source)"
        }
        ureq::Error::ConnectionFailed | ureq::Error::Io(_) if is_loopback_url(url) => {
            " (nothing answers there: is the local mirror running?)"
        }
        ureq::Error::HostNotFound => " (DNS lookup failed: is this machine online? behind a proxy, set HTTPS_PROXY)",
        ureq::Error::ConnectionFailed | ureq::Error::Io(_) => " (cannot connect: check the base URL; behind a proxy, set HTTPS_PROXY)",
        ureq::Error::Timeout(_) => " (the server did not answer in time)",
        _ => "",
    };
    FetchError::Transport { url: url.into(), message: format!("{text}{hint}") }
}

/// http(s)://127.x.y.z, [::1] or localhost.
fn is_loopback_url(url: &str) -> bool {
    let Ok(uri) = url.parse::<ureq::http::Uri>() else { return false };
    let Some(host) = uri.host() else { return false };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_mirrors_bypass_proxies() {
        assert!(is_loopback_url("http://127.0.7.1:8080/release"));
        assert!(is_loopback_url("http://[::1]:80/x"));
        assert!(is_loopback_url("https://localhost/x"));
        assert!(!is_loopback_url("https://dl.k8s.io/release"));
        assert!(!is_loopback_url("not a url"));
    }

    #[test]
    fn status_errors_name_the_url() {
        let e = check_status("https://x/y", 404, Some("Not Found")).unwrap_err();
        assert_eq!(e.to_string(), "https://x/y: HTTP 404 Not Found");
        assert!(e.is_not_found());
        assert!(check_status("u", 200, None).is_ok());
    }

    #[test]
    fn unreachable_server_is_a_transport_error() {
        // Nothing listens on this loopback port (bound then released).
        let port = std::net::TcpListener::bind("127.0.7.1:0").unwrap().local_addr().unwrap().port();
        let url = format!("http://127.0.7.1:{port}/x.sha256");
        let e = Http::new().get_text(&url).unwrap_err();
        assert!(matches!(e, FetchError::Transport { .. }), "{e}");
        assert!(e.to_string().starts_with(&url), "{e}");
        assert!(e.to_string().ends_with("(nothing answers there: is the local mirror running?)"), "{e}");
    }
}
