//! The inventory file's schema: what an operator may write, with defaults.
//!
//! These types are the single description of the TOML format. Validation beyond
//! syntax (unique names, CIDR overlap, etcd member count, ...) lives in
//! `validate.rs`; locating a key's line and column for error messages lives in
//! `locate.rs`.

use std::net::IpAddr;
use std::path::PathBuf;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Inventory {
    pub cluster: Cluster,
    #[serde(default)]
    pub ssh: SshSettings,
    #[serde(default)]
    pub security: Security,
    #[serde(default)]
    pub pki: PkiSettings,
    #[serde(default)]
    pub etcd: EtcdSettings,
    #[serde(default)]
    pub artifacts: Artifacts,
    #[serde(default)]
    pub kubelet: KubeletSettings,
    #[serde(rename = "host", default)]
    pub hosts: Vec<Host>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Cluster {
    /// Lower-case letters, digits and '-'; names the state directory `.provision/<name>/`.
    pub name: String,
    /// Exact release, e.g. "1.34.2". The minor version selects the flag list checked.
    pub kubernetes_version: String,
    /// Exact etcd release, e.g. "3.5.21" (used when etcd is downloaded).
    pub etcd_version: String,
    /// Address or DNS name clients use for the API (a load balancer, or one host).
    pub api_endpoint: String,
    #[serde(default = "default_api_port")]
    pub api_port: u16,
    pub service_cidr: IpNet,
    pub pod_cidr: IpNet,
    #[serde(default = "default_cluster_domain")]
    pub cluster_domain: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SshSettings {
    /// root, or a user with passwordless sudo.
    #[serde(default = "default_ssh_user")]
    pub user: String,
    /// Private key file. When absent, ssh-agent (SSH_AUTH_SOCK) and then
    /// ~/.ssh/id_ed25519, id_ecdsa, id_rsa are tried.
    #[serde(default)]
    pub private_key: Option<PathBuf>,
    #[serde(default = "default_ssh_port")]
    pub port: u16,
    #[serde(default)]
    pub host_keys: HostKeyPolicy,
    /// Extra known_hosts file consulted besides the state directory's and ~/.ssh/known_hosts.
    #[serde(default)]
    pub known_hosts: Option<PathBuf>,
    /// Optional bastion, as "user@host:port" (user and port optional).
    #[serde(default)]
    pub jump_host: Option<String>,
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_secs: u64,
    #[serde(default = "default_command_timeout")]
    pub command_timeout_secs: u64,
    /// How many hosts are worked on at once (default: all).
    #[serde(default)]
    pub parallelism: Option<usize>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum HostKeyPolicy {
    /// Only keys already in a known_hosts file are accepted.
    #[default]
    Strict,
    /// Unknown hosts are pinned on first use; a changed key is still refused.
    AcceptNew,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Security {
    #[serde(default)]
    pub encryption: EncryptionProvider,
    #[serde(default = "default_true")]
    pub audit_log: bool,
    #[serde(default = "default_audit_maxage")]
    pub audit_log_maxage_days: u32,
    #[serde(default = "default_audit_maxbackup")]
    pub audit_log_maxbackup: u32,
    #[serde(default = "default_audit_maxsize")]
    pub audit_log_maxsize_mb: u32,
    #[serde(default)]
    pub pod_security: PodSecurityLevel,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EncryptionProvider {
    #[default]
    Aescbc,
    Secretbox,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PodSecurityLevel {
    #[default]
    Restricted,
    Baseline,
    Privileged,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PkiSettings {
    #[serde(default)]
    pub key_algorithm: KeyAlgorithm,
    #[serde(default = "default_ca_days")]
    pub ca_validity_days: u32,
    #[serde(default = "default_leaf_days")]
    pub leaf_validity_days: u32,
    /// A leaf certificate with fewer days left than this is renewed by the next run.
    #[serde(default = "default_renew_days")]
    pub renew_before_days: u32,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyAlgorithm {
    #[default]
    EcdsaP256,
    EcdsaP384,
    Rsa2048,
    Rsa3072,
    Rsa4096,
}

/// Settings of every node's kubelet (templates/kubelet-config.yaml).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KubeletSettings {
    /// The kubelet refuses to start on a host with swap on (its default). false: it
    /// starts, and no pod uses swap (memorySwap.swapBehavior = NoSwap).
    #[serde(default = "default_true")]
    pub fail_swap_on: bool,
}

impl Default for KubeletSettings {
    fn default() -> Self {
        KubeletSettings { fail_swap_on: true }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EtcdSettings {
    #[serde(default = "default_etcd_client_port")]
    pub client_port: u16,
    #[serde(default = "default_etcd_peer_port")]
    pub peer_port: u16,
    #[serde(default = "default_etcd_data_dir")]
    pub data_dir: String,
    /// etcd --heartbeat-interval in ms. Raise it on slow (emulated) machines.
    #[serde(default = "default_heartbeat_ms")]
    pub heartbeat_interval_ms: u32,
    /// etcd --election-timeout in ms; at least 5x the heartbeat.
    #[serde(default = "default_election_ms")]
    pub election_timeout_ms: u32,
    #[serde(default = "default_quota_bytes")]
    pub quota_backend_bytes: u64,
    /// systemd OnCalendar= expression for snapshots taken on the hosts (none when absent).
    #[serde(default)]
    pub backup_schedule: Option<String>,
    /// How many snapshots are kept, on the hosts and by `etcd backup`.
    #[serde(default = "default_backup_retention")]
    pub backup_retention: u32,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Artifacts {
    /// Where kube-apiserver, kube-controller-manager, kube-scheduler, kubelet and kubectl
    /// come from. "skip" stops after the etcd tier and says so.
    #[serde(default)]
    pub kubernetes: KubernetesSource,
    /// Where etcd comes from. "preinstalled" uses the etcd already on the hosts.
    #[serde(default)]
    pub etcd: EtcdSource,
    /// Local directory holding the binaries, for the "directory" sources (air-gapped installs).
    #[serde(default)]
    pub directory: Option<PathBuf>,
    /// Download cache on the operator's machine (default: ~/.cache/provision).
    #[serde(default)]
    pub cache_dir: Option<PathBuf>,
    /// Where containerd, runc, the CNI plugins and crictl come from, for every host with a
    /// kubelet. Unset: "preinstalled" when the kubernetes tier is rendered, else "skip".
    #[serde(default)]
    pub runtime: Option<RuntimeSource>,
    #[serde(default = "default_kubernetes_url")]
    pub kubernetes_base_url: String,
    #[serde(default = "default_etcd_url")]
    pub etcd_base_url: String,
    /// Where the runtime tier's releases are downloaded from: GitHub, or a mirror that
    /// reproduces GitHub's `<owner>/<repo>/releases/download/...` paths.
    #[serde(default = "default_runtime_url")]
    pub runtime_base_url: String,
    /// The runtime releases installed when `runtime` is "download" or "directory".
    #[serde(default = "default_containerd_version")]
    pub containerd_version: String,
    #[serde(default = "default_runc_version")]
    pub runc_version: String,
    #[serde(default = "default_cni_plugins_version")]
    pub cni_plugins_version: String,
    #[serde(default = "default_crictl_version")]
    pub crictl_version: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum KubernetesSource {
    #[default]
    Download,
    Directory,
    Skip,
}

/// The container runtime tier (containerd, runc, CNI plugins, their configuration, the
/// kernel prerequisites and the pod routes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RuntimeSource {
    /// The hosts' own packages (Debian: containerd, runc, containernetworking-plugins);
    /// provision renders their configuration.
    Preinstalled,
    /// The official releases (containerd, runc, CNI plugins, crictl) from
    /// `runtime_base_url`, checked against their published checksums.
    Download,
    /// The same files from `artifacts.directory` (air-gapped installs).
    Directory,
    /// Nothing of the runtime tier is rendered (the operator brings a runtime and a CNI).
    Skip,
}

impl RuntimeSource {
    /// Whether provision installs the runtime binaries itself (under /usr/local/bin and
    /// /opt/cni/bin) rather than using the host's packages.
    pub fn installs_binaries(self) -> bool {
        matches!(self, RuntimeSource::Download | RuntimeSource::Directory)
    }
}

impl Artifacts {
    /// The runtime source in effect: a kubelet needs a runtime, so it follows the
    /// kubernetes tier unless set.
    pub fn runtime_source(&self) -> RuntimeSource {
        self.runtime.unwrap_or(match self.kubernetes {
            KubernetesSource::Skip => RuntimeSource::Skip,
            KubernetesSource::Download | KubernetesSource::Directory => RuntimeSource::Preinstalled,
        })
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EtcdSource {
    #[default]
    Download,
    Directory,
    Preinstalled,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Host {
    /// Host name; also the node name and the etcd member name.
    pub name: String,
    /// Address the host is reached on and the cluster uses.
    pub address: IpAddr,
    pub roles: Vec<Role>,
    /// Overrides [ssh].port for this host.
    #[serde(default)]
    pub ssh_port: Option<u16>,
    /// Overrides [ssh].user for this host.
    #[serde(default)]
    pub ssh_user: Option<String>,
    /// This node's slice of cluster.pod_cidr (control-plane and worker hosts); by
    /// default the next free /24 (/64), see `pod_slices`.
    #[serde(default)]
    pub pod_cidr: Option<IpNet>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    Etcd,
    ControlPlane,
    Worker,
}

impl Cluster {
    /// The first address of the Service range: the `kubernetes` Service's ClusterIP,
    /// which kube-apiserver's serving certificate must list as a SAN.
    pub fn first_service_ip(&self) -> IpAddr {
        nth_address(&self.service_cidr, 1)
    }

    /// The tenth address of the Service range, by convention the cluster DNS Service
    /// (the kubelet's clusterDNS).
    pub fn dns_service_ip(&self) -> IpAddr {
        nth_address(&self.service_cidr, 10)
    }
}

/// The `n`th address after the network address. A validated inventory's Service
/// range holds at least 16 addresses; a smaller one yields the network address.
fn nth_address(net: &IpNet, n: u8) -> IpAddr {
    let candidate = match net.network() {
        IpAddr::V4(a) => u32::from(a).checked_add(u32::from(n)).map(|v| IpAddr::V4(v.into())),
        IpAddr::V6(a) => u128::from(a).checked_add(u128::from(n)).map(|v| IpAddr::V6(v.into())),
    };
    candidate.filter(|ip| net.contains(ip)).unwrap_or(net.network())
}

impl Host {
    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    /// Every host with the control-plane or worker role runs a kubelet (and so has a pod
    /// slice and the runtime tier); etcd-only hosts do not.
    pub fn runs_kubelet(&self) -> bool {
        self.has(Role::ControlPlane) || self.has(Role::Worker)
    }
}

impl Inventory {
    pub fn hosts_with(&self, role: Role) -> impl Iterator<Item = &Host> {
        self.hosts.iter().filter(move |h| h.has(role))
    }

    /// The host called `name` (names are unique: validation refuses duplicates).
    pub fn host(&self, name: &str) -> Option<&Host> {
        self.hosts.iter().find(|h| h.name == name)
    }
}

fn default_api_port() -> u16 {
    6443
}
fn default_cluster_domain() -> String {
    "cluster.local".into()
}
fn default_ssh_user() -> String {
    "root".into()
}
fn default_ssh_port() -> u16 {
    22
}
fn default_connect_timeout() -> u64 {
    10
}
fn default_command_timeout() -> u64 {
    300
}
fn default_true() -> bool {
    true
}
fn default_audit_maxage() -> u32 {
    30
}
fn default_audit_maxbackup() -> u32 {
    10
}
fn default_audit_maxsize() -> u32 {
    100
}
fn default_ca_days() -> u32 {
    3650
}
fn default_leaf_days() -> u32 {
    365
}
fn default_renew_days() -> u32 {
    30
}
fn default_etcd_client_port() -> u16 {
    2379
}
fn default_etcd_peer_port() -> u16 {
    2380
}
fn default_etcd_data_dir() -> String {
    "/var/lib/etcd".into()
}
fn default_heartbeat_ms() -> u32 {
    100
}
fn default_election_ms() -> u32 {
    1000
}
fn default_quota_bytes() -> u64 {
    8 * 1024 * 1024 * 1024
}
fn default_backup_retention() -> u32 {
    7
}
fn default_kubernetes_url() -> String {
    "https://dl.k8s.io".into()
}
fn default_etcd_url() -> String {
    "https://github.com/etcd-io/etcd/releases/download".into()
}
fn default_runtime_url() -> String {
    "https://github.com".into()
}
/// The runtime releases' defaults: containerd 2.1 and runc 1.3 (current, supported
/// releases), the CNI plugins' latest, crictl of the newest supported Kubernetes minor.
pub const DEFAULT_CONTAINERD_VERSION: &str = "2.1.4";
pub const DEFAULT_RUNC_VERSION: &str = "1.3.0";
pub const DEFAULT_CNI_PLUGINS_VERSION: &str = "1.7.1";
pub const DEFAULT_CRICTL_VERSION: &str = "1.34.0";
fn default_containerd_version() -> String {
    DEFAULT_CONTAINERD_VERSION.into()
}
fn default_runc_version() -> String {
    DEFAULT_RUNC_VERSION.into()
}
fn default_cni_plugins_version() -> String {
    DEFAULT_CNI_PLUGINS_VERSION.into()
}
fn default_crictl_version() -> String {
    DEFAULT_CRICTL_VERSION.into()
}

macro_rules! default_from_serde {
    ($($t:ty),*) => {$(
        impl Default for $t {
            fn default() -> Self {
                // Every field has a serde default, so an empty table is the default value.
                toml::from_str("").expect("all fields have defaults")
            }
        }
    )*};
}
default_from_serde!(SshSettings, Security, PkiSettings, EtcdSettings, Artifacts);
