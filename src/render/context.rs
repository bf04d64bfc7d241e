//! The tera context: everything templates may use, computed once from the inventory
//! (cluster-wide values) plus one `host` object per host. Secrets are NOT in this
//! context: the encryption key and PEM material are handed only to the one template
//! that writes them (see security_files.rs and kubeconfig.rs).

use std::net::IpAddr;

use anyhow::{Context as _, bail};
use ipnet::IpNet;
use serde::Serialize;

use super::paths::{self, TEMPLATE_PATHS, TemplatePaths};
use crate::inventory::{EncryptionProvider, EtcdSource, Host, Inventory, PodSecurityLevel, Role};

/// Kubernetes minor versions whose flag lists are in data/flags and checked by tests.
pub const SUPPORTED_MINORS: &[u32] = &[32, 33, 34];

/// TLS cipher suites for every component: the intersection of what CIS 1.2.29
/// (apiserver) and 4.2.12 (kubelet) allow and what etcd 3.4-3.6 accept by name
/// (the CHACHA20 names differ between Go versions, so they are left out).
pub const TLS_CIPHER_SUITES: &[&str] = &[
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
];

#[derive(Debug, Clone, Serialize)]
pub struct ClusterCtx {
    pub name: String,
    pub kubernetes_version: String,
    pub api_endpoint: String,
    pub api_port: u16,
    /// https://<api_endpoint>:<port>, bracketed for IPv6.
    pub api_server_url: String,
    pub service_cidr: String,
    pub pod_cidr: String,
    pub cluster_domain: String,
    /// The 10th address of the service range (the kubeadm convention for CoreDNS).
    pub cluster_dns: String,
    pub service_account_issuer: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct EtcdMemberCtx {
    pub name: String,
    pub client_url: String,
    pub peer_url: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct EtcdCtx {
    pub binary: String,
    pub data_dir: String,
    pub client_port: u16,
    pub peer_port: u16,
    pub members: Vec<EtcdMemberCtx>,
    /// --etcd-servers value: every member's client URL.
    pub servers: String,
    /// --initial-cluster value.
    pub initial_cluster: String,
    pub initial_cluster_token: String,
    pub heartbeat_interval_ms: u32,
    pub election_timeout_ms: u32,
    pub quota_backend_bytes: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct SecurityCtx {
    /// "aescbc" or "secretbox": the first provider of the encryption config.
    pub encryption_provider: &'static str,
    pub audit_log: bool,
    pub audit_log_maxage_days: u32,
    pub audit_log_maxbackup: u32,
    pub audit_log_maxsize_mb: u32,
    pub pod_security: &'static str,
    pub tls_min_version: &'static str,
    pub tls_cipher_suites: String,
    pub tls_cipher_suites_list: Vec<&'static str>,
}

#[derive(Debug, Clone, Serialize)]
pub struct HostCtx {
    pub name: String,
    pub address: String,
    /// The address as it appears in a URL (IPv6 in brackets).
    pub url_address: String,
    pub etcd_client_url: String,
    /// --listen-client-urls: the host address, plus 127.0.0.1 for local clients unless the
    /// host address is itself a loopback address (lab hosts share one network namespace
    /// on 127.0.1.x, where a second listener on 127.0.0.1 would collide).
    pub etcd_listen_client_urls: String,
    pub etcd_peer_url: String,
    /// https://<host address>:<api port>: how components on this host reach their local
    /// kube-apiserver (it binds to the host address only).
    pub local_api_server_url: String,
}

/// The cluster-wide part of the context; `for_host` adds the host.
#[derive(Debug, Clone, Serialize)]
pub struct BaseCtx {
    pub cluster: ClusterCtx,
    pub etcd: EtcdCtx,
    pub security: SecurityCtx,
    pub kubelet: crate::inventory::KubeletSettings,
    pub paths: TemplatePaths,
}

impl BaseCtx {
    pub fn new(inv: &Inventory) -> anyhow::Result<BaseCtx> {
        check_inputs(inv)?;
        let c = &inv.cluster;
        let e = &inv.etcd;
        let members: Vec<EtcdMemberCtx> = inv
            .hosts_with(Role::Etcd)
            .map(|h| EtcdMemberCtx {
                name: h.name.clone(),
                client_url: format!("https://{}:{}", url_host(&h.address), e.client_port),
                peer_url: format!("https://{}:{}", url_host(&h.address), e.peer_port),
            })
            .collect();
        let servers = members.iter().map(|m| m.client_url.as_str()).collect::<Vec<_>>().join(",");
        let initial_cluster =
            members.iter().map(|m| format!("{}={}", m.name, m.peer_url)).collect::<Vec<_>>().join(",");
        let cluster_dns = nth_address(&c.service_cidr, 10)
            .with_context(|| format!("cluster.service_cidr {}: no room for the DNS service address", c.service_cidr))?;
        Ok(BaseCtx {
            cluster: ClusterCtx {
                name: c.name.clone(),
                kubernetes_version: c.kubernetes_version.clone(),
                api_endpoint: c.api_endpoint.clone(),
                api_port: c.api_port,
                api_server_url: format!("https://{}:{}", url_host_str(&c.api_endpoint), c.api_port),
                service_cidr: c.service_cidr.to_string(),
                pod_cidr: c.pod_cidr.to_string(),
                cluster_domain: c.cluster_domain.clone(),
                cluster_dns: cluster_dns.to_string(),
                service_account_issuer: format!("https://kubernetes.default.svc.{}", c.cluster_domain),
            },
            etcd: EtcdCtx {
                binary: match inv.artifacts.etcd {
                    EtcdSource::Preinstalled => paths::ETCD_BIN_PREINSTALLED.to_string(),
                    EtcdSource::Download | EtcdSource::Directory => paths::ETCD_BIN_INSTALLED.to_string(),
                },
                data_dir: e.data_dir.clone(),
                client_port: e.client_port,
                peer_port: e.peer_port,
                members,
                servers,
                initial_cluster,
                initial_cluster_token: format!("provision-{}", c.name),
                heartbeat_interval_ms: e.heartbeat_interval_ms,
                election_timeout_ms: e.election_timeout_ms,
                quota_backend_bytes: e.quota_backend_bytes,
            },
            security: SecurityCtx {
                encryption_provider: match inv.security.encryption {
                    EncryptionProvider::Aescbc => "aescbc",
                    EncryptionProvider::Secretbox => "secretbox",
                },
                audit_log: inv.security.audit_log,
                audit_log_maxage_days: inv.security.audit_log_maxage_days,
                audit_log_maxbackup: inv.security.audit_log_maxbackup,
                audit_log_maxsize_mb: inv.security.audit_log_maxsize_mb,
                pod_security: match inv.security.pod_security {
                    PodSecurityLevel::Restricted => "restricted",
                    PodSecurityLevel::Baseline => "baseline",
                    PodSecurityLevel::Privileged => "privileged",
                },
                tls_min_version: "VersionTLS12",
                tls_cipher_suites: TLS_CIPHER_SUITES.join(","),
                tls_cipher_suites_list: TLS_CIPHER_SUITES.to_vec(),
            },
            kubelet: inv.kubelet.clone(),
            paths: TEMPLATE_PATHS,
        })
    }

    pub fn host(&self, inv: &Inventory, host: &Host) -> HostCtx {
        let url_address = url_host(&host.address);
        let client_url = format!("https://{url_address}:{}", inv.etcd.client_port);
        let etcd_listen_client_urls = if host.address.is_loopback() {
            client_url.clone()
        } else {
            format!("{client_url},https://127.0.0.1:{}", inv.etcd.client_port)
        };
        HostCtx {
            name: host.name.clone(),
            address: host.address.to_string(),
            etcd_client_url: client_url,
            etcd_listen_client_urls,
            etcd_peer_url: format!("https://{url_address}:{}", inv.etcd.peer_port),
            local_api_server_url: format!("https://{url_address}:{}", inv.cluster.api_port),
            url_address,
        }
    }

    /// The tera context for templates rendered for `host`.
    pub fn for_host(&self, host: &HostCtx) -> anyhow::Result<tera::Context> {
        let mut ctx = tera::Context::from_serialize(self).context("cannot build the template context")?;
        ctx.insert("host", host);
        Ok(ctx)
    }
}

/// The minor version of `cluster.kubernetes_version` ("1.34.2" -> 34), or an error
/// saying which versions are supported.
pub fn kubernetes_minor(version: &str) -> anyhow::Result<u32> {
    let v = version.strip_prefix('v').unwrap_or(version);
    let mut parts = v.split('.');
    let (major, minor) = (parts.next(), parts.next());
    let minor: Option<u32> = match (major, minor) {
        (Some("1"), Some(m)) => m.parse().ok(),
        _ => None,
    };
    match minor {
        Some(m) if SUPPORTED_MINORS.contains(&m) => Ok(m),
        _ => bail!(
            "cluster.kubernetes_version = \"{version}\": provision renders Kubernetes 1.{} only \
             (its flags are checked against those releases); pick one of them",
            SUPPORTED_MINORS.iter().map(|m| m.to_string()).collect::<Vec<_>>().join(", 1.")
        ),
    }
}

/// Values that end up inside systemd ExecStart lines and URLs must not carry spaces,
/// quotes or newlines (they would split or inject flags). The inventory loader validates
/// most of this; render checks again because it is the one writing the unit files.
fn check_inputs(inv: &Inventory) -> anyhow::Result<()> {
    let mut problems = Vec::new();
    let safe = |s: &str, extra: &str| {
        !s.is_empty() && s.chars().all(|ch| ch.is_ascii_alphanumeric() || "-._".contains(ch) || extra.contains(ch))
    };
    if !safe(&inv.cluster.name, "") {
        problems.push(format!("cluster.name = {:?}: only letters, digits, '-', '.', '_' are allowed", inv.cluster.name));
    }
    if !safe(&inv.cluster.api_endpoint, ":") {
        problems.push(format!(
            "cluster.api_endpoint = {:?}: must be a host name or IP address (letters, digits, '-', '.', ':')",
            inv.cluster.api_endpoint
        ));
    }
    if !safe(&inv.cluster.cluster_domain, "") {
        problems.push(format!("cluster.cluster_domain = {:?}: must be a DNS domain", inv.cluster.cluster_domain));
    }
    let dd = &inv.etcd.data_dir;
    if !dd.starts_with('/') || !safe(dd, "/") || dd.split('/').any(|c| c == "..") || dd == "/" {
        problems.push(format!(
            "etcd.data_dir = {dd:?}: must be an absolute path of letters, digits, '-', '.', '_' and '/'"
        ));
    }
    for h in &inv.hosts {
        if !safe(&h.name, "") {
            problems.push(format!("host {:?}: name may only hold letters, digits, '-', '.', '_'", h.name));
        }
    }
    if inv.hosts_with(Role::Etcd).next().is_none() {
        problems.push("no host has the \"etcd\" role: at least one etcd member is needed".to_string());
    }
    if problems.is_empty() { Ok(()) } else { bail!("cannot render this inventory:\n  - {}", problems.join("\n  - ")) }
}

/// An address as it appears in a URL host part.
pub fn url_host(addr: &IpAddr) -> String {
    match addr {
        IpAddr::V4(a) => a.to_string(),
        IpAddr::V6(a) => format!("[{a}]"),
    }
}

fn url_host_str(endpoint: &str) -> String {
    match endpoint.parse::<IpAddr>() {
        Ok(ip) => url_host(&ip),
        Err(_) => endpoint.to_string(),
    }
}

/// The n-th address of a network (network address + n), if it lies inside it.
pub fn nth_address(net: &IpNet, n: u32) -> anyhow::Result<IpAddr> {
    let out = match net.network() {
        IpAddr::V4(a) => IpAddr::V4(std::net::Ipv4Addr::from(u32::from(a).checked_add(n).context("overflow")?)),
        IpAddr::V6(a) => IpAddr::V6(std::net::Ipv6Addr::from(u128::from(a).checked_add(n as u128).context("overflow")?)),
    };
    if !net.contains(&out) || out == net.broadcast() && matches!(out, IpAddr::V4(_)) {
        bail!("{net} has fewer than {} addresses", n + 2);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minor_version_parsing() {
        assert_eq!(kubernetes_minor("1.34.2").unwrap(), 34);
        assert_eq!(kubernetes_minor("v1.32.0").unwrap(), 32);
        let err = kubernetes_minor("1.30.1").unwrap_err().to_string();
        assert!(err.contains("1.30.1") && err.contains("1.32, 1.33, 1.34"), "{err}");
        assert!(kubernetes_minor("banana").is_err());
    }

    #[test]
    fn tenth_service_address() {
        let net: IpNet = "10.32.0.0/24".parse().unwrap();
        assert_eq!(nth_address(&net, 10).unwrap().to_string(), "10.32.0.10");
        let v6: IpNet = "fd00:10::/108".parse().unwrap();
        assert_eq!(nth_address(&v6, 10).unwrap().to_string(), "fd00:10::a");
        let tiny: IpNet = "10.0.0.0/29".parse().unwrap();
        assert!(nth_address(&tiny, 10).is_err());
    }

    #[test]
    fn ipv6_urls_are_bracketed() {
        assert_eq!(url_host(&"fd00::1".parse().unwrap()), "[fd00::1]");
        assert_eq!(url_host_str("fd00::1"), "[fd00::1]");
        assert_eq!(url_host_str("api.example.com"), "api.example.com");
    }
}
