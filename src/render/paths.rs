//! Canonical host paths: the one place that says where every managed file lives.
//!
//! These are the paths CIS scanners (kube-bench) and operators look at: see
//! shared notes cis-benchmark.md. Templates receive them through the context, so a
//! path is never spelled twice.

use serde::Serialize;

pub const KUBERNETES_DIR: &str = "/etc/kubernetes";
pub const PKI_DIR: &str = "/etc/kubernetes/pki";
pub const PKI_ETCD_DIR: &str = "/etc/kubernetes/pki/etcd";

pub const CA_CRT: &str = "/etc/kubernetes/pki/ca.crt";
/// Only on control-plane hosts: the controller-manager signs kubelet CSRs with it.
pub const CA_KEY: &str = "/etc/kubernetes/pki/ca.key";
pub const APISERVER_CRT: &str = "/etc/kubernetes/pki/apiserver.crt";
pub const APISERVER_KEY: &str = "/etc/kubernetes/pki/apiserver.key";
pub const APISERVER_KUBELET_CLIENT_CRT: &str = "/etc/kubernetes/pki/apiserver-kubelet-client.crt";
pub const APISERVER_KUBELET_CLIENT_KEY: &str = "/etc/kubernetes/pki/apiserver-kubelet-client.key";
pub const APISERVER_ETCD_CLIENT_CRT: &str = "/etc/kubernetes/pki/apiserver-etcd-client.crt";
pub const APISERVER_ETCD_CLIENT_KEY: &str = "/etc/kubernetes/pki/apiserver-etcd-client.key";
pub const FRONT_PROXY_CA_CRT: &str = "/etc/kubernetes/pki/front-proxy-ca.crt";
pub const FRONT_PROXY_CLIENT_CRT: &str = "/etc/kubernetes/pki/front-proxy-client.crt";
pub const FRONT_PROXY_CLIENT_KEY: &str = "/etc/kubernetes/pki/front-proxy-client.key";
pub const SA_KEY: &str = "/etc/kubernetes/pki/sa.key";
pub const SA_PUB: &str = "/etc/kubernetes/pki/sa.pub";
/// The etcd CA as kube-apiserver sees it (a copy of /etc/etcd/pki/ca.crt, root-owned).
pub const ETCD_CA_FOR_APISERVER: &str = "/etc/kubernetes/pki/etcd/ca.crt";

pub const ADMIN_CONF: &str = "/etc/kubernetes/admin.conf";
pub const SUPER_ADMIN_CONF: &str = "/etc/kubernetes/super-admin.conf";
pub const CONTROLLER_MANAGER_CONF: &str = "/etc/kubernetes/controller-manager.conf";
pub const SCHEDULER_CONF: &str = "/etc/kubernetes/scheduler.conf";
pub const ENCRYPTION_CONFIG: &str = "/etc/kubernetes/encryption-config.yaml";
pub const AUDIT_POLICY: &str = "/etc/kubernetes/audit-policy.yaml";
pub const ADMISSION_CONFIG: &str = "/etc/kubernetes/admission-config.yaml";
pub const EVENT_RATE_LIMIT_CONFIG: &str = "/etc/kubernetes/eventratelimit.yaml";
pub const SCHEDULER_CONFIG: &str = "/etc/kubernetes/kube-scheduler.yaml";

pub const AUDIT_LOG_DIR: &str = "/var/log/kubernetes/audit";
pub const AUDIT_LOG: &str = "/var/log/kubernetes/audit/audit.log";
pub const LOG_DIR: &str = "/var/log/kubernetes";

/// etcd's own files: owned by the etcd user because etcd runs as that user. CIS 1.1.19
/// (root:root) covers /etc/kubernetes/pki only.
pub const ETCD_DIR: &str = "/etc/etcd";
pub const ETCD_PKI_DIR: &str = "/etc/etcd/pki";
pub const ETCD_CA_CRT: &str = "/etc/etcd/pki/ca.crt";
pub const ETCD_SERVER_CRT: &str = "/etc/etcd/pki/server.crt";
pub const ETCD_SERVER_KEY: &str = "/etc/etcd/pki/server.key";
pub const ETCD_PEER_CRT: &str = "/etc/etcd/pki/peer.crt";
pub const ETCD_PEER_KEY: &str = "/etc/etcd/pki/peer.key";

pub const KUBELET_DIR: &str = "/var/lib/kubelet";
pub const KUBELET_PKI_DIR: &str = "/var/lib/kubelet/pki";
pub const KUBELET_CONFIG: &str = "/var/lib/kubelet/config.yaml";
pub const KUBELET_KUBECONFIG: &str = "/var/lib/kubelet/kubeconfig";
pub const KUBELET_CRT: &str = "/var/lib/kubelet/pki/kubelet.crt";
pub const KUBELET_KEY: &str = "/var/lib/kubelet/pki/kubelet.key";

pub const KUBE_PROXY_DIR: &str = "/var/lib/kube-proxy";
pub const KUBE_PROXY_CONFIG: &str = "/var/lib/kube-proxy/kube-proxy-config.yaml";
pub const KUBE_PROXY_KUBECONFIG: &str = "/var/lib/kube-proxy/kubeconfig";

// The container runtime tier (render/runtime.rs).
pub const CONTAINERD_DIR: &str = "/etc/containerd";
pub const CONTAINERD_CONFIG: &str = "/etc/containerd/config.toml";
pub const CONTAINERD_SOCKET: &str = "/run/containerd/containerd.sock";
/// Debian's containerd package.
pub const CONTAINERD_BIN_PREINSTALLED: &str = "/usr/bin/containerd";
pub const CONTAINERD_SHIM_PREINSTALLED: &str = "/usr/bin/containerd-shim-runc-v2";
/// The parent of the CNI plugins' directory when provision installs them (/opt/cni/bin).
pub const OPT_CNI_DIR: &str = "/opt/cni";
/// Debian's runc package.
pub const RUNC_BIN_PREINSTALLED: &str = "/usr/sbin/runc";
/// crictl's configuration (the runtime and image endpoints).
pub const CRICTL_CONFIG: &str = "/etc/crictl.yaml";
/// Debian's containernetworking-plugins package.
pub const CNI_BIN_DIR_PREINSTALLED: &str = "/usr/lib/cni";
pub const CNI_DIR: &str = "/etc/cni";
pub const CNI_CONF_DIR: &str = "/etc/cni/net.d";
pub const CNI_CONFLIST: &str = "/etc/cni/net.d/10-provision-bridge.conflist";
pub const MODULES_LOAD_CONF: &str = "/etc/modules-load.d/provision-k8s.conf";
pub const SYSCTL_CONF: &str = "/etc/sysctl.d/90-provision-k8s.conf";
pub const PROVISION_ETC_DIR: &str = "/etc/provision";
/// `ip -batch` commands: this node's routes to every other node's pod slice.
pub const POD_ROUTES: &str = "/etc/provision/pod-routes";
/// `iptables-restore --noflush` input: pod traffic leaving the pod network is masqueraded.
pub const POD_MASQUERADE: &str = "/etc/provision/pod-masquerade.rules";

pub const SYSTEMD_DIR: &str = "/etc/systemd/system";
/// etcd.service's drop-in directory and its bootstrap-only flags (templates/etcd-bootstrap.conf).
pub const ETCD_DROPIN_DIR: &str = "/etc/systemd/system/etcd.service.d";
pub const ETCD_BOOTSTRAP_DROPIN: &str = "/etc/systemd/system/etcd.service.d/10-bootstrap.conf";

/// Kubernetes binaries are always installed here (downloaded or from a directory).
pub const KUBE_BIN_DIR: &str = "/usr/local/bin";
/// Where Debian's etcd-server package puts etcd (artifacts.etcd = "preinstalled").
pub const ETCD_BIN_PREINSTALLED: &str = "/usr/bin/etcd";
pub const ETCD_BIN_INSTALLED: &str = "/usr/local/bin/etcd";

/// The unit file of `unit` ("etcd.service").
pub fn unit_path(unit: &str) -> String {
    format!("{SYSTEMD_DIR}/{unit}")
}

/// Every path a template may mention, handed to tera as `paths.*`.
#[derive(Debug, Clone, Serialize)]
pub struct TemplatePaths {
    pub ca_crt: &'static str,
    pub ca_key: &'static str,
    pub apiserver_crt: &'static str,
    pub apiserver_key: &'static str,
    pub apiserver_kubelet_client_crt: &'static str,
    pub apiserver_kubelet_client_key: &'static str,
    pub apiserver_etcd_client_crt: &'static str,
    pub apiserver_etcd_client_key: &'static str,
    pub front_proxy_ca_crt: &'static str,
    pub front_proxy_client_crt: &'static str,
    pub front_proxy_client_key: &'static str,
    pub sa_key: &'static str,
    pub sa_pub: &'static str,
    pub etcd_ca_for_apiserver: &'static str,
    pub admin_conf: &'static str,
    pub controller_manager_conf: &'static str,
    pub scheduler_conf: &'static str,
    pub encryption_config: &'static str,
    pub audit_policy: &'static str,
    pub audit_log: &'static str,
    pub admission_config: &'static str,
    pub event_rate_limit_config: &'static str,
    pub scheduler_config: &'static str,
    pub etcd_ca_crt: &'static str,
    pub etcd_server_crt: &'static str,
    pub etcd_server_key: &'static str,
    pub etcd_peer_crt: &'static str,
    pub etcd_peer_key: &'static str,
    pub kubelet_config: &'static str,
    pub kubelet_kubeconfig: &'static str,
    pub kubelet_crt: &'static str,
    pub kubelet_key: &'static str,
    pub kube_proxy_config: &'static str,
    pub kube_proxy_kubeconfig: &'static str,
    pub kube_bin_dir: &'static str,
}

pub const TEMPLATE_PATHS: TemplatePaths = TemplatePaths {
    ca_crt: CA_CRT,
    ca_key: CA_KEY,
    apiserver_crt: APISERVER_CRT,
    apiserver_key: APISERVER_KEY,
    apiserver_kubelet_client_crt: APISERVER_KUBELET_CLIENT_CRT,
    apiserver_kubelet_client_key: APISERVER_KUBELET_CLIENT_KEY,
    apiserver_etcd_client_crt: APISERVER_ETCD_CLIENT_CRT,
    apiserver_etcd_client_key: APISERVER_ETCD_CLIENT_KEY,
    front_proxy_ca_crt: FRONT_PROXY_CA_CRT,
    front_proxy_client_crt: FRONT_PROXY_CLIENT_CRT,
    front_proxy_client_key: FRONT_PROXY_CLIENT_KEY,
    sa_key: SA_KEY,
    sa_pub: SA_PUB,
    etcd_ca_for_apiserver: ETCD_CA_FOR_APISERVER,
    admin_conf: ADMIN_CONF,
    controller_manager_conf: CONTROLLER_MANAGER_CONF,
    scheduler_conf: SCHEDULER_CONF,
    encryption_config: ENCRYPTION_CONFIG,
    audit_policy: AUDIT_POLICY,
    audit_log: AUDIT_LOG,
    admission_config: ADMISSION_CONFIG,
    event_rate_limit_config: EVENT_RATE_LIMIT_CONFIG,
    scheduler_config: SCHEDULER_CONFIG,
    etcd_ca_crt: ETCD_CA_CRT,
    etcd_server_crt: ETCD_SERVER_CRT,
    etcd_server_key: ETCD_SERVER_KEY,
    etcd_peer_crt: ETCD_PEER_CRT,
    etcd_peer_key: ETCD_PEER_KEY,
    kubelet_config: KUBELET_CONFIG,
    kubelet_kubeconfig: KUBELET_KUBECONFIG,
    kubelet_crt: KUBELET_CRT,
    kubelet_key: KUBELET_KEY,
    kube_proxy_config: KUBE_PROXY_CONFIG,
    kube_proxy_kubeconfig: KUBE_PROXY_KUBECONFIG,
    kube_bin_dir: KUBE_BIN_DIR,
};
