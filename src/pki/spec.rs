//! What each certificate must say, derived from the inventory alone: subject, SANs,
//! extended key usages and which CA signs it. Issuing (issue.rs) and the reuse check
//! (reuse.rs) both read these specs, so they cannot disagree.

use std::collections::BTreeSet;
use std::fmt;
use std::net::IpAddr;

use anyhow::{Context, bail};
use ipnet::IpNet;

use super::CertId;
use crate::inventory::{Host, Inventory, Role};

/// A subject alternative name. DNS names sort before IP addresses.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum San {
    Dns(String),
    Ip(IpAddr),
}

impl fmt::Display for San {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            San::Dns(name) => write!(f, "DNS:{name}"),
            San::Ip(ip) => write!(f, "IP:{ip}"),
        }
    }
}

/// The subject distinguished name: one CN and zero or more O (Kubernetes reads O as groups).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    pub common_name: String,
    pub organizations: Vec<String>,
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CN={}", self.common_name)?;
        for o in &self.organizations {
            write!(f, ", O={o}")?;
        }
        Ok(())
    }
}

/// Everything that decides whether an existing leaf certificate is still the right one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeafSpec {
    pub id: CertId,
    /// ClusterCa, EtcdCa or FrontProxyCa.
    pub issuer: CertId,
    pub subject: Subject,
    pub sans: BTreeSet<San>,
    pub server_auth: bool,
    pub client_auth: bool,
}

/// The admin kubeconfig's group: bound to cluster-admin by apply's bootstrap RBAC (not
/// system:masters, which no binding can revoke).
pub const ADMIN_GROUP: &str = "provision:cluster-admins";
/// The user kube-apiserver is to kubelets (its kubelet client certificate's CN).
pub const APISERVER_KUBELET_CLIENT_USER: &str = "kube-apiserver-kubelet-client";

pub const CAS: [CertId; 3] = [CertId::ClusterCa, CertId::EtcdCa, CertId::FrontProxyCa];

impl CertId {
    /// The file name without extension under the PKI directory (`<stem>.crt`, `<stem>.key`).
    pub fn file_stem(&self) -> String {
        match self {
            CertId::ClusterCa => "ca".into(),
            CertId::EtcdCa => "etcd-ca".into(),
            CertId::FrontProxyCa => "front-proxy-ca".into(),
            CertId::ApiServer => "apiserver".into(),
            CertId::ApiServerKubeletClient => "apiserver-kubelet-client".into(),
            CertId::ApiServerEtcdClient => "apiserver-etcd-client".into(),
            CertId::FrontProxyClient => "front-proxy-client".into(),
            CertId::EtcdServer(host) => format!("etcd-server-{host}"),
            CertId::EtcdPeer(host) => format!("etcd-peer-{host}"),
            CertId::ControllerManager => "controller-manager".into(),
            CertId::Scheduler => "scheduler".into(),
            CertId::Admin => "admin".into(),
            CertId::SuperAdmin => "super-admin".into(),
            CertId::Kubelet(host) => format!("kubelet-{host}"),
            CertId::KubeProxy => "kube-proxy".into(),
        }
    }

    pub fn is_ca(&self) -> bool {
        CAS.contains(self)
    }
}

impl fmt::Display for CertId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file_stem())
    }
}

/// The subject of each CA. The CN says which trust domain it anchors.
pub fn ca_subject(ca: &CertId) -> Subject {
    let cn = match ca {
        CertId::EtcdCa => "etcd-ca",
        CertId::FrontProxyCa => "front-proxy-ca",
        _ => "kubernetes-ca",
    };
    Subject { common_name: cn.into(), organizations: vec![] }
}

/// Every leaf certificate the inventory calls for, in a stable order.
pub fn leaf_specs(inv: &Inventory) -> anyhow::Result<Vec<LeafSpec>> {
    check_host_names(inv)?;
    let mut specs = vec![
        LeafSpec {
            id: CertId::ApiServer,
            issuer: CertId::ClusterCa,
            subject: cn("kube-apiserver"),
            sans: apiserver_sans(inv)?,
            server_auth: true,
            client_auth: false,
        },
        // No O=system:masters: the apiserver's kubelet access is granted by an RBAC binding
        // (system:kube-apiserver-to-kubelet) created after bootstrap.
        client(CertId::ApiServerKubeletClient, CertId::ClusterCa, cn(APISERVER_KUBELET_CLIENT_USER)),
        client(CertId::ApiServerEtcdClient, CertId::EtcdCa, cn("kube-apiserver-etcd-client")),
        client(CertId::FrontProxyClient, CertId::FrontProxyCa, cn("front-proxy-client")),
    ];
    for host in inv.hosts_with(Role::Etcd) {
        let mut server_sans = name_and_address(host)?;
        server_sans.insert(San::Dns("localhost".into()));
        server_sans.insert(San::Ip(IpAddr::from([127, 0, 0, 1])));
        // etcd 3.4 dials itself with its server certificate as a client certificate, and
        // peers present theirs both ways: both certificates carry ServerAuth and ClientAuth.
        specs.push(LeafSpec {
            id: CertId::EtcdServer(host.name.clone()),
            issuer: CertId::EtcdCa,
            subject: cn(&host.name),
            sans: server_sans,
            server_auth: true,
            client_auth: true,
        });
        // A connection between two loopback addresses (lab hosts on 127.0.1.x share one
        // network namespace) leaves from 127.0.0.1, and etcd checks a peer's source address
        // against its certificate: such peers need 127.0.0.1 too.
        let mut peer_sans = name_and_address(host)?;
        if host.address.is_loopback() {
            peer_sans.insert(San::Ip(IpAddr::from([127, 0, 0, 1])));
        }
        specs.push(LeafSpec {
            id: CertId::EtcdPeer(host.name.clone()),
            issuer: CertId::EtcdCa,
            subject: cn(&host.name),
            sans: peer_sans,
            server_auth: true,
            client_auth: true,
        });
    }
    specs.push(client(CertId::ControllerManager, CertId::ClusterCa, cn("system:kube-controller-manager")));
    specs.push(client(CertId::Scheduler, CertId::ClusterCa, cn("system:kube-scheduler")));
    // admin is an ordinary group bound to cluster-admin after bootstrap (revocable by
    // removing the binding); super-admin is system:masters, kept for break-glass only.
    specs.push(client(CertId::Admin, CertId::ClusterCa, cn_o("admin", ADMIN_GROUP)));
    specs.push(client(CertId::SuperAdmin, CertId::ClusterCa, cn_o("super-admin", "system:masters")));
    for host in inv.hosts.iter().filter(|h| runs_kubelet(h)) {
        specs.push(LeafSpec {
            id: CertId::Kubelet(host.name.clone()),
            issuer: CertId::ClusterCa,
            subject: cn_o(&format!("system:node:{}", host.name), "system:nodes"),
            sans: name_and_address(host)?,
            server_auth: true,
            client_auth: true,
        });
    }
    specs.push(client(CertId::KubeProxy, CertId::ClusterCa, cn_o("system:kube-proxy", "system:node-proxier")));
    Ok(specs)
}

/// Every host with the control-plane or worker role runs a kubelet; etcd-only hosts do not.
pub fn runs_kubelet(host: &Host) -> bool {
    host.runs_kubelet()
}

fn apiserver_sans(inv: &Inventory) -> anyhow::Result<BTreeSet<San>> {
    let cluster = &inv.cluster;
    let mut sans = BTreeSet::new();
    for host in inv.hosts_with(Role::ControlPlane) {
        sans.extend(name_and_address(host)?);
    }
    sans.insert(endpoint_san(&cluster.api_endpoint)?);
    check_service_cidr(&cluster.service_cidr)?;
    sans.insert(San::Ip(cluster.first_service_ip()));
    let domain = cluster.cluster_domain.trim_end_matches('.');
    for name in ["kubernetes", "kubernetes.default", "kubernetes.default.svc"] {
        sans.insert(San::Dns(name.into()));
    }
    sans.insert(dns(&format!("kubernetes.default.svc.{domain}"), "[cluster].cluster_domain")?);
    sans.insert(San::Dns("localhost".into()));
    sans.insert(San::Ip(IpAddr::from([127, 0, 0, 1])));
    Ok(sans)
}

/// `[cluster].api_endpoint` is an address or a DNS name, without port or scheme.
fn endpoint_san(endpoint: &str) -> anyhow::Result<San> {
    if let Ok(ip) = endpoint.parse::<IpAddr>() {
        return Ok(San::Ip(ip));
    }
    dns(endpoint, "[cluster].api_endpoint").context("write an IP address or a DNS name without port or scheme (the port is [cluster].api_port)")
}

/// The kubernetes Service's ClusterIP is the first address of the service CIDR: refuse a
/// range too small to hold it (validation does too; this guards unvalidated callers).
fn check_service_cidr(cidr: &IpNet) -> anyhow::Result<()> {
    if cidr.max_prefix_len() - cidr.prefix_len() < 2 {
        bail!("[cluster].service_cidr {cidr} has no room for the kubernetes Service address: use a /24 or larger");
    }
    Ok(())
}

fn name_and_address(host: &Host) -> anyhow::Result<BTreeSet<San>> {
    Ok(BTreeSet::from([dns(&host.name, "[[host]] name")?, San::Ip(host.address)]))
}

/// A DNS name usable in a SAN: lower-case labels of letters, digits and '-'.
fn dns(name: &str, field: &str) -> anyhow::Result<San> {
    let valid_label = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if name.len() > 253 || !name.split('.').all(valid_label) {
        bail!("{field} {name:?} is not a valid DNS name (lower-case letters, digits, '-' and '.')");
    }
    Ok(San::Dns(name.to_string()))
}

/// Host names become file names (etcd-server-<name>.crt) and DNS SANs: check them here too,
/// so the PKI is safe even when called with an inventory that skipped validation.
fn check_host_names(inv: &Inventory) -> anyhow::Result<()> {
    let mut seen = BTreeSet::new();
    for host in &inv.hosts {
        dns(&host.name, "[[host]] name")?;
        if !seen.insert(host.name.as_str()) {
            bail!("[[host]] name {:?} appears twice: every host needs its own name", host.name);
        }
    }
    Ok(())
}

fn cn(common_name: &str) -> Subject {
    Subject { common_name: common_name.into(), organizations: vec![] }
}

fn cn_o(common_name: &str, organization: &str) -> Subject {
    Subject { common_name: common_name.into(), organizations: vec![organization.into()] }
}

fn client(id: CertId, issuer: CertId, subject: Subject) -> LeafSpec {
    LeafSpec { id, issuer, subject, sans: BTreeSet::new(), server_auth: false, client_auth: true }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub fn inventory(extra_hosts: &str) -> Inventory {
        toml::from_str(&format!(
            r#"
[cluster]
name = "lab"
kubernetes_version = "1.34.2"
etcd_version = "3.5.21"
api_endpoint = "api.lab.example"
service_cidr = "10.32.0.0/24"
pod_cidr = "10.200.0.0/16"

[[host]]
name = "node1"
address = "127.0.4.1"
roles = ["etcd", "control-plane"]

[[host]]
name = "db1"
address = "127.0.4.9"
roles = ["etcd"]
{extra_hosts}
"#
        ))
        .unwrap()
    }

    fn spec<'a>(specs: &'a [LeafSpec], id: &CertId) -> &'a LeafSpec {
        specs.iter().find(|s| &s.id == id).unwrap()
    }

    #[test]
    fn apiserver_names_hosts_endpoint_service_ip_and_cluster_names() {
        let specs = leaf_specs(&inventory("")).unwrap();
        let names: Vec<String> = spec(&specs, &CertId::ApiServer).sans.iter().map(|s| s.to_string()).collect();
        assert_eq!(
            names,
            [
                "DNS:api.lab.example",
                "DNS:kubernetes",
                "DNS:kubernetes.default",
                "DNS:kubernetes.default.svc",
                "DNS:kubernetes.default.svc.cluster.local",
                "DNS:localhost",
                "DNS:node1",
                "IP:10.32.0.1",
                "IP:127.0.0.1",
                "IP:127.0.4.1",
            ]
        );
    }

    #[test]
    fn etcd_only_hosts_get_etcd_certs_but_no_kubelet() {
        let specs = leaf_specs(&inventory("[[host]]\nname = \"w1\"\naddress = \"127.0.4.5\"\nroles = [\"worker\"]\n")).unwrap();
        let ids: BTreeSet<String> = specs.iter().map(|s| s.id.to_string()).collect();
        assert!(ids.contains("etcd-server-db1") && ids.contains("etcd-peer-db1"));
        assert!(!ids.contains("kubelet-db1"));
        assert!(ids.contains("kubelet-node1") && ids.contains("kubelet-w1"));
        assert!(!ids.contains("etcd-server-w1"));
        let kubelet = spec(&specs, &CertId::Kubelet("w1".into()));
        assert_eq!(kubelet.subject.to_string(), "CN=system:node:w1, O=system:nodes");
        assert!(kubelet.server_auth && kubelet.client_auth);
    }

    #[test]
    fn a_service_cidr_without_room_is_refused() {
        let mut inv = inventory("");
        inv.cluster.service_cidr = "10.0.0.4/31".parse().unwrap();
        let err = leaf_specs(&inv).unwrap_err().to_string();
        assert!(err.contains("service_cidr 10.0.0.4/31"), "{err}");
        inv.cluster.service_cidr = "fd00:10::/108".parse().unwrap();
        let specs = leaf_specs(&inv).unwrap();
        assert!(spec(&specs, &CertId::ApiServer).sans.contains(&San::Ip("fd00:10::1".parse().unwrap())));
    }

    #[test]
    fn bad_names_are_refused_with_the_field() {
        let mut inv = inventory("");
        inv.cluster.api_endpoint = "https://api:6443".into();
        let err = format!("{:#}", leaf_specs(&inv).unwrap_err());
        assert!(err.contains("[cluster].api_endpoint") && err.contains("api_port"), "{err}");
        let mut inv = inventory("");
        inv.hosts[0].name = "../etc".into();
        assert!(leaf_specs(&inv).unwrap_err().to_string().contains("[[host]] name"));
    }
}
