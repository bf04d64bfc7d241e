//! A small HTTPS client for the Kubernetes REST API (verify's checks and apply's bootstrap
//! RBAC): one request per connection, the
//! server checked against the cluster CA, an optional client certificate as the
//! identity. hyper (HTTP/1.1) over tokio-rustls, both already in the dependency tree.
//!
//! Responses are kept as status + body; only their kind and, for failures, the
//! Kubernetes `Status` object (reason, message) are ever shown. Bodies of successful
//! reads are never printed (a Secret list holds secrets).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use serde::Deserialize;

use crate::verify::tls::handshake;
use crate::pki::Issued;

/// Ask list endpoints for metadata only: proves the permission to list without
/// transferring any Secret's data.
pub const METADATA_ONLY: &str = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json";

const MAX_BODY: usize = 4 * 1024 * 1024;

pub struct ApiClient {
    host: String,
    port: u16,
    name: ServerName<'static>,
    config: Arc<ClientConfig>,
    limit: Duration,
}

impl std::fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiClient").field("host", &self.host).field("port", &self.port).finish_non_exhaustive()
    }
}

impl ApiClient {
    /// A client for `https://host:port` that trusts only `ca_pem`, presenting `identity`
    /// (or no certificate: an anonymous request).
    pub fn new(
        host: &str,
        port: u16,
        ca_pem: &str,
        identity: Option<&Issued>,
        limit: Duration,
    ) -> anyhow::Result<ApiClient> {
        let config = handshake::verifying_config(ca_pem, identity)?;
        Ok(ApiClient {
            host: host.to_string(),
            port,
            name: handshake::server_name(host)?,
            config: Arc::new(config),
            limit,
        })
    }

    pub fn url(&self) -> String {
        format!("https://{}", authority(&self.host, self.port))
    }

    async fn resolve(&self) -> anyhow::Result<SocketAddr> {
        let mut addrs = tokio::net::lookup_host((self.host.as_str(), self.port))
            .await
            .with_context(|| format!("cannot resolve {}", self.host))?;
        addrs.next().ok_or_else(|| anyhow!("{} resolves to no address", self.host))
    }

    /// Sends one request (a JSON body, if any) and reads the whole answer (within the
    /// time limit).
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        accept: &str,
        body: Option<&serde_json::Value>,
    ) -> anyhow::Result<ApiResponse> {
        self.send_as(method, path, accept, body.map(|b| (JSON, b))).await
    }

    /// Server-side apply of `object` (its apiVersion, kind and metadata.name set) at
    /// `path`, as field manager `provision`: creates or updates, the same call both times.
    pub async fn server_side_apply(&self, path: &str, object: &serde_json::Value) -> anyhow::Result<ApiResponse> {
        let path = format!("{path}?fieldManager=provision&force=true");
        self.send_as(Method::PATCH, &path, JSON, Some((APPLY_PATCH, object))).await
    }

    async fn send_as(
        &self,
        method: Method,
        path: &str,
        accept: &str,
        body: Option<(&str, &serde_json::Value)>,
    ) -> anyhow::Result<ApiResponse> {
        let addr = self.resolve().await?;
        let tls = handshake::connect(addr, &self.name, self.config.clone(), self.limit).await?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .with_context(|| format!("HTTP/1.1 with {}", self.url()))?;
        let driver = tokio::spawn(async move {
            let _ = conn.await;
        });
        let request = build_request(method.clone(), &authority(&self.host, self.port), path, accept, body)?;
        let result = async {
            let response = tokio::time::timeout(self.limit, sender.send_request(request))
                .await
                .map_err(|_| anyhow!("no answer to {method} {path} within {}s", self.limit.as_secs_f64()))?
                .with_context(|| format!("{method} {path}"))?;
            let status = response.status().as_u16();
            let collected = tokio::time::timeout(self.limit, Limited::new(response.into_body(), MAX_BODY).collect())
                .await
                .map_err(|_| {
                    anyhow!("the answer to {method} {path} did not finish within {}s", self.limit.as_secs_f64())
                })?
                .map_err(|e| anyhow!("reading the answer to {method} {path}: {e}"))?;
            Ok(ApiResponse { status, body: collected.to_bytes().to_vec() })
        }
        .await;
        driver.abort();
        result
    }
}

fn authority(host: &str, port: u16) -> String {
    if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") }
}

const JSON: &str = "application/json";
/// Server-side apply takes YAML, and JSON is YAML.
const APPLY_PATCH: &str = "application/apply-patch+yaml";

/// The request as sent: Host, Accept, a User-Agent saying who asks, and a body of the
/// given content type, serialised as JSON.
pub fn build_request(
    method: Method,
    authority: &str,
    path: &str,
    accept: &str,
    body: Option<(&str, &serde_json::Value)>,
) -> anyhow::Result<Request<Full<Bytes>>> {
    if !path.starts_with('/') {
        bail!("an API path starts with '/': {path}");
    }
    let builder = Request::builder()
        .method(method)
        .uri(path)
        .header(hyper::header::HOST, authority)
        .header(hyper::header::ACCEPT, accept)
        .header(hyper::header::USER_AGENT, concat!("provision/", env!("CARGO_PKG_VERSION")));
    let request = match body {
        Some((content_type, json)) => builder
            .header(hyper::header::CONTENT_TYPE, content_type)
            .body(Full::new(Bytes::from(serde_json::to_vec(json)?))),
        None => builder.body(Full::new(Bytes::new())),
    };
    request.context("building the request")
}

/// A Kubernetes `Status` object (the body of every API error).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ApiStatus {
    #[serde(default)]
    pub reason: String,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub code: u16,
}

#[derive(Clone)]
pub struct ApiResponse {
    pub status: u16,
    pub body: Vec<u8>,
}

/// Bodies may hold secrets: Debug shows the status and size only.
impl std::fmt::Debug for ApiResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiResponse").field("status", &self.status).field("body_bytes", &self.body.len()).finish()
    }
}

impl ApiResponse {
    /// The `kind` of the JSON body ("SecretList", "Status", ...).
    pub fn kind(&self) -> Option<String> {
        #[derive(Deserialize)]
        struct Kind {
            kind: String,
        }
        serde_json::from_slice::<Kind>(&self.body).ok().map(|k| k.kind)
    }

    pub fn status_object(&self) -> Option<ApiStatus> {
        if self.kind().as_deref() != Some("Status") {
            return None;
        }
        serde_json::from_slice(&self.body).ok()
    }

    /// "HTTP 403 Forbidden: secrets is forbidden: User ..." (the Status message, never
    /// any other body).
    pub fn describe(&self) -> String {
        let reason = hyper::StatusCode::from_u16(self.status).ok().and_then(|s| s.canonical_reason()).unwrap_or("");
        match self.status_object() {
            Some(s) if !s.message.is_empty() => {
                format!("HTTP {} {reason}: {}", self.status, s.message)
            }
            _ => match self.kind() {
                Some(kind) => format!("HTTP {} {reason} ({kind})", self.status),
                None => format!("HTTP {} {reason}", self.status),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_carry_host_accept_and_json() {
        let body = serde_json::json!({"kind": "Secret"});
        let r = build_request(
            Method::POST,
            "10.0.0.1:6443",
            "/api/v1/namespaces/default/secrets",
            "application/json",
            Some((JSON, &body)),
        )
        .unwrap();
        assert_eq!(r.method(), Method::POST);
        assert_eq!(r.uri().path(), "/api/v1/namespaces/default/secrets");
        assert_eq!(r.headers()[hyper::header::HOST], "10.0.0.1:6443");
        assert_eq!(r.headers()[hyper::header::CONTENT_TYPE], "application/json");
        assert!(build_request(Method::GET, "h:1", "api/v1", "application/json", None).is_err());
        let apply = build_request(Method::PATCH, "h:1", "/apis/x", JSON, Some((APPLY_PATCH, &body))).unwrap();
        assert_eq!(apply.headers()[hyper::header::CONTENT_TYPE], "application/apply-patch+yaml");
        assert_eq!(authority("fd00::1", 6443), "[fd00::1]:6443");
    }

    #[test]
    fn status_objects_are_read_and_other_bodies_never_shown() {
        let forbidden = ApiResponse {
            status: 403,
            body: br#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"secrets is forbidden: User \"x\" cannot list resource \"secrets\" in API group \"\" at the cluster scope","reason":"Forbidden","details":{"kind":"secrets"},"code":403}"#.to_vec(),
        };
        let s = forbidden.status_object().unwrap();
        assert_eq!((s.reason.as_str(), s.code), ("Forbidden", 403));
        assert!(forbidden.describe().starts_with("HTTP 403 Forbidden: secrets is forbidden: User \"x\""));
        let list = ApiResponse {
            status: 200,
            body: br#"{"kind":"SecretList","items":[{"data":{"p":"aHVudGVyMg=="}}]}"#.to_vec(),
        };
        assert_eq!(list.kind().as_deref(), Some("SecretList"));
        assert_eq!(list.describe(), "HTTP 200 OK (SecretList)");
        assert!(!format!("{list:?}").contains("aHVudGVy"));
        let not_json = ApiResponse { status: 401, body: b"Unauthorized".to_vec() };
        assert_eq!(not_json.describe(), "HTTP 401 Unauthorized");
    }
}
