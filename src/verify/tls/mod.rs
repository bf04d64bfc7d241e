//! TLS on every endpoint the cluster exposes: etcd client (:2379) and peer (:2380) on every
//! member, kube-apiserver (:6443) and kubelet (:10250) where they run.
//!
//! Four checks, each over every host that runs the endpoint:
//! - `tls.certificate`: the presented chain leads to the RIGHT CA (etcd CA for etcd, cluster
//!   CA for kube-apiserver and kubelets) and is valid for the host's address (and, for
//!   kube-apiserver, for the cluster's api_endpoint);
//! - `tls.min-version`: TLS 1.0 and 1.1 ClientHellos are refused;
//! - `tls.plaintext`: a plaintext HTTP request gets no HTTP service;
//! - `tls.client-cert`: etcd (client and peer) and the kubelet refuse a client that has
//!   no certificate.

pub mod handshake;
pub mod legacy;
pub mod probes;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use futures::future::join_all;
use rustls::pki_types::ServerName;

use super::material::Material;
use super::report::{CheckResult, HostOutcome};
use crate::inventory::{Inventory, KubernetesSource, Role};
use crate::pki::{Issued, runs_kubelet};
use legacy::{Answer, Legacy};
use probes::Refusal;

/// The kubelet's HTTPS port (templates/kubelet-config.yaml).
pub const KUBELET_PORT: u16 = 10250;

pub const CERTIFICATE: &str = "tls.certificate";
pub const MIN_VERSION: &str = "tls.min-version";
pub const PLAINTEXT: &str = "tls.plaintext";
pub const CLIENT_CERT: &str = "tls.client-cert";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    EtcdClient,
    EtcdPeer,
    ApiServer,
    Kubelet,
}

impl Kind {
    pub fn label(self) -> &'static str {
        match self {
            Kind::EtcdClient => "etcd client",
            Kind::EtcdPeer => "etcd peer",
            Kind::ApiServer => "kube-apiserver",
            Kind::Kubelet => "kubelet",
        }
    }
    fn is_etcd(self) -> bool {
        matches!(self, Kind::EtcdClient | Kind::EtcdPeer)
    }
    /// kube-apiserver also accepts bearer tokens, so a missing certificate is fine there.
    fn requires_client_cert(self) -> bool {
        self != Kind::ApiServer
    }
    fn probe_path(self) -> &'static str {
        match self {
            Kind::Kubelet => "/pods",
            _ => "/version",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub address: IpAddr,
    pub port: u16,
    pub kind: Kind,
}

impl Endpoint {
    pub fn socket(&self) -> SocketAddr {
        SocketAddr::new(self.address, self.port)
    }
}

/// Every endpoint the inventory says exists, and the kinds left out because the
/// Kubernetes tier is not installed.
pub fn endpoints(inv: &Inventory) -> (Vec<Endpoint>, Vec<(Kind, u16)>) {
    let mut out = Vec::new();
    for h in inv.hosts_with(Role::Etcd) {
        for (kind, port) in [(Kind::EtcdClient, inv.etcd.client_port), (Kind::EtcdPeer, inv.etcd.peer_port)] {
            out.push(Endpoint { host: h.name.clone(), address: h.address, port, kind });
        }
    }
    let kube = [(Kind::ApiServer, inv.cluster.api_port), (Kind::Kubelet, KUBELET_PORT)];
    if inv.artifacts.kubernetes == KubernetesSource::Skip {
        return (out, kube.to_vec());
    }
    for h in inv.hosts_with(Role::ControlPlane) {
        out.push(Endpoint {
            host: h.name.clone(),
            address: h.address,
            port: inv.cluster.api_port,
            kind: Kind::ApiServer,
        });
    }
    for h in inv.hosts.iter().filter(|h| runs_kubelet(h)) {
        out.push(Endpoint { host: h.name.clone(), address: h.address, port: KUBELET_PORT, kind: Kind::Kubelet });
    }
    (out, Vec::new())
}

/// The four verdicts on one endpoint (`client_cert` only where a certificate is required).
#[derive(Debug, Clone)]
pub struct Findings {
    pub endpoint: Endpoint,
    pub certificate: HostOutcome,
    pub min_version: HostOutcome,
    pub plaintext: HostOutcome,
    pub client_cert: Option<HostOutcome>,
}

/// Runs the four checks on every endpoint, all at once.
pub async fn run(inv: &Inventory, material: &Material, limit: Duration) -> Vec<CheckResult> {
    let (list, skipped) = endpoints(inv);
    let findings = join_all(list.iter().map(|e| check_endpoint(inv, material, e.clone(), limit))).await;
    let mut results = Vec::new();
    let mut kinds: Vec<(Kind, u16)> = list.iter().map(|e| (e.kind, e.port)).collect();
    kinds.sort();
    kinds.dedup();
    for (check, title) in [
        (CERTIFICATE, "the certificate chains to the right CA and names the host's address"),
        (MIN_VERSION, "TLS 1.0 and TLS 1.1 handshakes are refused"),
        (PLAINTEXT, "a plaintext HTTP request is not served"),
        (CLIENT_CERT, "a client without a certificate is refused"),
    ] {
        for &(kind, port) in &kinds {
            let outcomes: Vec<HostOutcome> = findings
                .iter()
                .filter(|f| f.endpoint.kind == kind && f.endpoint.port == port)
                .filter_map(|f| match check {
                    CERTIFICATE => Some(f.certificate.clone()),
                    MIN_VERSION => Some(f.min_version.clone()),
                    PLAINTEXT => Some(f.plaintext.clone()),
                    _ => f.client_cert.clone(),
                })
                .collect();
            if !outcomes.is_empty() {
                results.push(
                    CheckResult::from_hosts(check, title, outcomes).with_target(format!("{} :{port}", kind.label())),
                );
            }
        }
    }
    for (kind, port) in skipped {
        results.push(
            CheckResult::skipped(
                "tls",
                "TLS checks of this endpoint",
                "skipped: no Kubernetes components on this cluster (artifacts.kubernetes = skip)",
            )
            .with_target(format!("{} :{port}", kind.label())),
        );
    }
    results
}

/// All four probes of one endpoint, concurrently.
pub async fn check_endpoint(inv: &Inventory, material: &Material, e: Endpoint, limit: Duration) -> Findings {
    let addr = e.socket();
    let own_name = ServerName::IpAddress(e.address.into());
    let mut names = vec![own_name.clone()];
    if e.kind == Kind::ApiServer
        && let Ok(api) = handshake::server_name(&inv.cluster.api_endpoint)
        && api != own_name
    {
        names.push(api);
    }
    // etcd is shown the client identity verify uses anyway, so a good member completes
    // the handshake (and logs nothing); the others need no client certificate.
    let identity: Option<&Issued> = e.kind.is_etcd().then_some(&material.etcd_client_identity);
    let sni = match &names[..] {
        [_, ServerName::DnsName(d)] => Some(d.as_ref().to_string()),
        _ => None,
    };

    let cert = handshake::record(addr, &own_name, identity, limit);
    let tls10 = legacy::probe(addr, Legacy::Tls10, sni.as_deref(), limit);
    let tls11 = legacy::probe(addr, Legacy::Tls11, sni.as_deref(), limit);
    let plain = probes::plaintext(addr, limit);
    let no_cert = async {
        if e.kind.requires_client_cert() {
            Some(probes::without_client_cert(addr, &own_name, e.kind.probe_path(), limit).await)
        } else {
            None
        }
    };
    let (cert, tls10, tls11, plain, no_cert) = tokio::join!(cert, tls10, tls11, plain, no_cert);

    let (ca_label, ca_pem) = if e.kind.is_etcd() {
        ("etcd CA", material.etcd_ca_pem.as_str())
    } else {
        ("cluster CA", material.cluster_ca_pem.as_str())
    };
    let others = [("etcd CA", material.etcd_ca_pem.as_str()), ("cluster CA", material.cluster_ca_pem.as_str())];
    let others: Vec<(&str, &str)> = others.into_iter().filter(|(l, _)| *l != ca_label).collect();
    let certificate = match &cert.chain {
        Some(chain) => {
            let v = handshake::judge_chain(chain, ca_label, ca_pem, &names, &others);
            let version = cert.version.as_deref().map(|v| format!("{v}; ")).unwrap_or_default();
            HostOutcome::new(&e.host, pass_if(v.ok), format!("{version}{}", v.detail))
        }
        None => HostOutcome::fail(
            &e.host,
            format!("{addr}: {}", cert.error.as_deref().unwrap_or("no certificate was presented")),
        ),
    };
    Findings {
        certificate,
        min_version: judge_min_version(&e.host, tls10, tls11),
        plaintext: judge_refusal(&e.host, plain),
        client_cert: no_cert.map(|r| judge_refusal(&e.host, r)),
        endpoint: e,
    }
}

fn pass_if(ok: bool) -> super::report::Status {
    if ok { super::report::Status::Pass } else { super::report::Status::Fail }
}

fn judge_refusal(host: &str, r: Refusal) -> HostOutcome {
    match r {
        Refusal::Refused(how) => HostOutcome::pass(host, how),
        Refusal::Served(what) => HostOutcome::fail(host, what),
        Refusal::Unknown(why) => HostOutcome::fail(host, format!("could not check: {why}")),
    }
}

fn judge_min_version(host: &str, tls10: Result<Answer, String>, tls11: Result<Answer, String>) -> HostOutcome {
    let mut accepted = Vec::new();
    let mut unknown = Vec::new();
    let mut refused = Vec::new();
    for (version, answer) in [(Legacy::Tls10, tls10), (Legacy::Tls11, tls11)] {
        match answer {
            Ok(Answer::Refused(how)) => refused.push((version.label(), how)),
            Ok(Answer::Accepted { version: v, suite }) => accepted.push(format!(
                "accepts {}: ServerHello {} with cipher suite 0x{suite:04x}",
                version.label(),
                legacy::version_name(v)
            )),
            Ok(Answer::NoAnswer) => {
                unknown.push(format!("no answer to a {} ClientHello (cannot confirm it is refused)", version.label()))
            }
            Err(e) => unknown.push(format!("{}: {e}", version.label())),
        }
    }
    if !accepted.is_empty() || !unknown.is_empty() {
        accepted.extend(unknown);
        return HostOutcome::fail(host, accepted.join("; "));
    }
    let evidence = match refused.as_slice() {
        [(a, x), (b, y)] if x == y => format!("{a} and {b}: {x}"),
        _ => refused.iter().map(|(v, how)| format!("{v}: {how}")).collect::<Vec<_>>().join("; "),
    };
    HostOutcome::pass(host, evidence)
}
