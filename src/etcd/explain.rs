//! Plain words for what went wrong talking to one member.
//!
//! etcd-client wraps tonic, hyper and rustls errors; the useful fact (refused, wrong SAN,
//! unknown CA, rejected client certificate, no leader) sits deep in the chain, so we
//! classify on the full debug rendering of the error (the rustls/io error kinds are not
//! re-exported in a form we can match on without depending on those crates directly).

use std::time::Duration;

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProblemKind {
    Timeout,
    Refused,
    /// The connection was reset (etcd restarting or crashing, or dropping us).
    Reset,
    Unreachable,
    TlsServerName,
    TlsUnknownCa,
    TlsServerCertExpired,
    TlsClientRejected,
    Tls,
    NoLeader,
    /// An election happened during the request; retrying is right.
    LeaderChanged,
    /// etcd's own "request timed out" (e.g. ReadIndex without an answer).
    ServerTimeout,
    PermissionDenied,
    Other,
}

/// One failure, in words an operator can act on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub kind: ProblemKind,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Problem {}

impl Problem {
    pub fn timeout(after: Duration, doing: &str) -> Problem {
        Problem {
            kind: ProblemKind::Timeout,
            message: format!(
                "no answer within {} while {doing} (host down, packets dropped, or etcd hung)",
                human_duration(after)
            ),
        }
    }

    /// Worth retrying within the deadline: the cluster may be electing a leader.
    pub fn is_transient(&self) -> bool {
        matches!(self.kind, ProblemKind::NoLeader | ProblemKind::LeaderChanged | ProblemKind::ServerTimeout)
    }
}

pub fn human_duration(d: Duration) -> String {
    if d.as_millis().is_multiple_of(1000) { format!("{}s", d.as_secs()) } else { format!("{}ms", d.as_millis()) }
}

/// Classifies an etcd-client error for the member at `endpoint`.
pub fn explain(err: &etcd_client::Error, endpoint: &str) -> Problem {
    explain_text(&format!("{err:?}"), &grpc_message(err), endpoint)
}

fn grpc_message(err: &etcd_client::Error) -> String {
    match err {
        etcd_client::Error::GRpcStatus(s) => s.message().to_string(),
        other => other.to_string(),
    }
}

fn explain_text(debug: &str, message: &str, endpoint: &str) -> Problem {
    use ProblemKind::*;
    let has = |s: &str| debug.contains(s);
    let (kind, message) = if has("ConnectionRefused") || has("Connection refused") {
        (Refused, format!("connection refused at {endpoint}: etcd is not running there, or listens on another port"))
    } else if has("ConnectionReset") || has("Connection reset by peer") {
        (Reset, format!("the connection to {endpoint} was reset: etcd is restarting or crashing there (see its log)"))
    } else if has("HostUnreachable") || has("NetworkUnreachable") || has("No route to host") {
        (Unreachable, format!("cannot reach {endpoint}: no route to the host"))
    } else if has("NotValidForName") || has("certificate not valid for name") {
        let names = debug
            .split("presented: [")
            .nth(1)
            .and_then(|s| s.split(']').next())
            .map(|s| s.replace(['\\', '"'], ""))
            .unwrap_or_else(|| "other names".into());
        (
            TlsServerName,
            format!(
                "TLS: the member's server certificate is not valid for {endpoint}: it names {names}; \
                 re-issue it with this address in its SANs"
            ),
        )
    } else if has("UnknownIssuer") {
        (
            TlsUnknownCa,
            format!(
                "TLS: the server certificate at {endpoint} is not signed by the etcd CA we trust (wrong CA file, or the member uses another CA)"
            ),
        )
    } else if has("InvalidCertificate(Expired") || has("ExpiredContext") {
        (
            TlsServerCertExpired,
            format!("TLS: the server certificate at {endpoint} has expired; renew the etcd certificates"),
        )
    } else if has("BadCertificate")
        || has("CertificateRequired")
        || has("UnknownCA")
        || has("CertificateExpired")
        || (has("Canceled") && has("connection closed"))
    {
        (
            TlsClientRejected,
            format!(
                "TLS: the member at {endpoint} closed the connection after the handshake: it rejected our client \
                 certificate (not signed by its --trusted-ca-file, expired, or without ClientAuth usage)"
            ),
        )
    } else if has("InvalidCertificate") || has("tls handshake") || has("received fatal alert") {
        (Tls, format!("TLS handshake with {endpoint} failed: {message}"))
    } else if message.contains("etcdserver: no leader") {
        (NoLeader, "the member has no leader: the cluster has lost quorum or is electing one".into())
    } else if message.contains("leader changed") {
        (LeaderChanged, "the leader changed during the request".into())
    } else if message.contains("etcdserver: request timed out") {
        (ServerTimeout, "etcd timed out the request internally (no quorum answered in time)".into())
    } else if message.contains("permission denied") {
        (PermissionDenied, format!("permission denied by etcd auth: {message}"))
    } else if has("TimeoutExpired") {
        (Timeout, format!("no answer from {endpoint} in time"))
    } else {
        (Other, message.to_string())
    };
    Problem { kind, message }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Debug renderings captured from etcd-client 0.21 against etcd 3.4.23 on loopback.
    const WRONG_SAN: &str = r#"GRpcStatus(Status { code: Unavailable, message: "invalid peer certificate: certificate not valid for name \"wrong.example\"; certificate is only valid for IpAddress(127.0.3.1) or DnsName(\"localhost\")", source: Some(tonic::transport::Error(Transport, ConnectError(Custom { kind: InvalidData, error: InvalidCertificate(NotValidForNameContext { expected: DnsName("wrong.example"), presented: ["IpAddress(127.0.3.1)", "DnsName(\"localhost\")"] }) }))) })"#;
    const NO_CLIENT_CERT: &str = r#"GRpcStatus(Status { code: Cancelled, message: "operation was canceled", source: Some(tonic::transport::Error(Transport, hyper::Error(Canceled, "connection closed"))) })"#;
    const UNKNOWN_CA: &str = r#"GRpcStatus(Status { code: Unavailable, message: "invalid peer certificate: UnknownIssuer", source: Some(tonic::transport::Error(Transport, ConnectError(Custom { kind: InvalidData, error: InvalidCertificate(UnknownIssuer) }))) })"#;
    const REFUSED: &str = r#"GRpcStatus(Status { code: Unavailable, message: "tcp connect error", source: Some(tonic::transport::Error(Transport, ConnectError(ConnectError("tcp connect error", 127.0.3.1:23111, Os { code: 111, kind: ConnectionRefused, message: "Connection refused" })))) })"#;

    #[test]
    fn classifies_observed_errors() {
        let ep = "https://127.0.3.1:2379";
        let p = explain_text(WRONG_SAN, "", ep);
        assert_eq!(p.kind, ProblemKind::TlsServerName);
        assert!(p.message.contains("IpAddress(127.0.3.1)"), "{}", p.message);
        assert_eq!(explain_text(NO_CLIENT_CERT, "", ep).kind, ProblemKind::TlsClientRejected);
        assert_eq!(explain_text(UNKNOWN_CA, "", ep).kind, ProblemKind::TlsUnknownCa);
        let p = explain_text(REFUSED, "tcp connect error", ep);
        assert_eq!(p.kind, ProblemKind::Refused);
        assert!(p.message.contains(ep));
        let p = explain_text("GRpcStatus(..)", "etcdserver: no leader", ep);
        assert_eq!(p.kind, ProblemKind::NoLeader);
        assert!(p.is_transient());
        assert!(!explain_text(REFUSED, "", ep).is_transient());
    }

    #[test]
    fn timeout_message_names_the_duration() {
        let p = Problem::timeout(Duration::from_secs(5), "reading the health key");
        assert!(p.message.contains("5s") && p.message.contains("health key"));
        assert_eq!(human_duration(Duration::from_millis(1500)), "1500ms");
    }
}
