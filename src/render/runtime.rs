//! The container runtime tier of a host with a kubelet: containerd (config + unit), the
//! kernel prerequisites (modules-load.d, sysctl.d, and a unit that applies them when they
//! change), the bridge CNI configuration for the node's pod slice, and the routes to every
//! other node's slice (a file plus a oneshot unit, so they survive reboots). Rendered
//! when `artifacts.runtime` is in effect (`Artifacts::runtime_source`), even without the
//! kubernetes tier. All of it is the Runtime component: apply's runtime phase.

use anyhow::Context as _;
use serde::Serialize;

use super::builder::{HostBuilder, Perm, ROOT_0600, ROOT_0644, ROOT_0755};
use super::paths;
use super::{HostCx, RenderCx};
use crate::artifacts::Binary;
use crate::desired::Component;
use crate::inventory::{Artifacts, RuntimeSource};

pub const CONTAINERD_UNIT: &str = "containerd.service";
pub const CONTAINERD_CONFIG_TEMPLATE: &str = "containerd-config.toml";
/// containerd 2.x's configuration format (version 3).
pub const CONTAINERD_CONFIG_V3_TEMPLATE: &str = "containerd-config-v3.toml";
pub const CRICTL_TEMPLATE: &str = "crictl.yaml";
pub const KERNEL_UNIT: &str = "provision-k8s-kernel.service";
pub const MODULES_TEMPLATE: &str = "provision-k8s-modules.conf";
pub const SYSCTL_TEMPLATE: &str = "provision-k8s-sysctl.conf";
pub const CNI_TEMPLATE: &str = "10-provision-bridge.conflist";
pub const ROUTES_UNIT: &str = "provision-pod-routes.service";
pub const ROUTES_TEMPLATE: &str = "pod-routes";
pub const MASQUERADE_TEMPLATE: &str = "pod-masquerade.rules";
/// The nat chain that masquerades pod egress (see templates/pod-masquerade.rules).
pub const MASQUERADE_CHAIN: &str = "PROVISION-POD-MASQ";

/// The iptables of the pod range's family: what the pod routes unit loads the masquerade
/// with, and what verify reads it back with.
pub fn iptables_for(pod_cidr: &ipnet::IpNet) -> &'static str {
    if pod_cidr.addr().is_ipv6() { "/usr/sbin/ip6tables" } else { "/usr/sbin/iptables" }
}

/// The pause image of the supported Kubernetes releases (1.32-1.34 use 3.10), pinned so
/// that containerd never pulls another one.
pub const SANDBOX_IMAGE: &str = "registry.k8s.io/pause:3.10";
/// overlay: containerd's snapshotter; br_netfilter: bridged pod traffic through iptables.
pub const KERNEL_MODULES: &[&str] = &["overlay", "br_netfilter"];
/// Pods reach other nodes (forwarding) and Services (kube-proxy's rules see bridged traffic).
pub const SYSCTLS: &[(&str, &str)] = &[
    ("net.ipv4.ip_forward", "1"),
    ("net.bridge.bridge-nf-call-iptables", "1"),
    ("net.bridge.bridge-nf-call-ip6tables", "1"),
];
/// An IPv6 Pod range needs IPv6 forwarding too.
pub const SYSCTLS_IPV6: &[(&str, &str)] = &[("net.ipv6.conf.all.forwarding", "1")];
/// What artifacts.runtime = "preinstalled" needs on a host: (path, Debian package). The
/// paths are those of Debian's packages (bookworm: containerd 1.6, runc 1.1,
/// containernetworking-plugins 1.1; trixie: 1.7, 1.1, 1.1); preflight refuses a host
/// without them. The CNI plugins are the one list of `Binary::CNI_PLUGINS`.
pub fn preinstalled_binaries() -> Vec<(String, &'static str)> {
    let mut out = vec![
        (paths::CONTAINERD_BIN_PREINSTALLED.to_string(), "containerd"),
        (paths::CONTAINERD_SHIM_PREINSTALLED.to_string(), "containerd"),
        (paths::RUNC_BIN_PREINSTALLED.to_string(), "runc"),
    ];
    out.extend(
        Binary::CNI_PLUGINS
            .iter()
            .map(|b| (format!("{}/{}", paths::CNI_BIN_DIR_PREINSTALLED, b.name()), "containernetworking-plugins")),
    );
    out
}

/// Where the runtime's binaries are on a host, by `artifacts.runtime`: Debian's packages'
/// paths, or where provision installs the releases.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuntimeBins {
    pub containerd: String,
    pub runc: String,
    pub cni_bin_dir: String,
}

impl RuntimeBins {
    pub fn of(source: RuntimeSource) -> RuntimeBins {
        if source.installs_binaries() {
            RuntimeBins {
                containerd: Binary::Containerd.host_path(),
                runc: Binary::Runc.host_path(),
                cni_bin_dir: crate::artifacts::CNI_BIN_DIR.to_string(),
            }
        } else {
            RuntimeBins {
                containerd: paths::CONTAINERD_BIN_PREINSTALLED.to_string(),
                runc: paths::RUNC_BIN_PREINSTALLED.to_string(),
                cni_bin_dir: paths::CNI_BIN_DIR_PREINSTALLED.to_string(),
            }
        }
    }
}

/// The containerd configuration format the host's containerd reads: 3 for containerd 2.x,
/// 2 for 1.6/1.7. The packages (preinstalled) are Debian's 1.6 (bookworm) or 1.7
/// (trixie); a release provision installs is the inventory's containerd_version.
/// Also whether the CNI directory is written `bin_dirs` (a list: containerd 2.1 deprecated
/// `bin_dir`).
pub fn containerd_config_format(a: &Artifacts) -> (u8, bool) {
    if !a.runtime_source().installs_binaries() {
        return (2, false);
    }
    let mut parts = a.containerd_version.trim_start_matches('v').split('.').map(|p| p.parse::<u64>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    if major >= 2 { (3, (major, minor) >= (2, 1)) } else { (2, false) }
}

/// What the runtime tier runs on a host whatever its source: (path, Debian package).
/// The pod routes unit loads the pod egress masquerade (templates/pod-masquerade.rules).
pub const HOST_TOOLS: &[(&str, &str)] = &[("/usr/sbin/iptables-restore", "iptables")];
/// CIS 1.1.9/1.1.10: CNI files 600 or stricter, root:root.
pub const CNI_PERM: Perm = ROOT_0600;

#[derive(Serialize)]
struct Sysctl {
    key: &'static str,
    value: &'static str,
}

/// What the runtime templates get besides the host's context, as `runtime`.
#[derive(Serialize)]
struct RuntimeCtx {
    socket: &'static str,
    sandbox_image: &'static str,
    containerd_bin: String,
    containerd_version: String,
    runc_bin: String,
    containerd_config: &'static str,
    cni_bin_dir: String,
    cni_bin_dirs: bool,
    cni_conf_dir: &'static str,
    kernel_unit: &'static str,
    kernel_modules: &'static [&'static str],
    sysctls: Vec<Sysctl>,
    modules_load_conf: &'static str,
    sysctl_conf: &'static str,
    routes_unit: &'static str,
    pod_routes: &'static str,
    pod_masquerade: &'static str,
    masquerade_chain: &'static str,
    /// `POSTROUTING -s <pod_cidr> -j <chain>`: after `-C`/`-A` in the routes unit.
    masquerade_jump: String,
    /// iptables or ip6tables, for the pod range's family.
    iptables: &'static str,
    multicast: &'static str,
}

/// `cni_bin_dirs`: the config writes the CNI directory as a list ([`containerd_config_format`]).
fn runtime_ctx(a: &Artifacts, pod_cidr: &ipnet::IpNet, cni_bin_dirs: bool) -> RuntimeCtx {
    let ipv6 = pod_cidr.addr().is_ipv6();
    let extra = if ipv6 { SYSCTLS_IPV6 } else { &[] };
    let bins = RuntimeBins::of(a.runtime_source());
    RuntimeCtx {
        socket: paths::CONTAINERD_SOCKET,
        sandbox_image: SANDBOX_IMAGE,
        containerd_bin: bins.containerd,
        containerd_version: a.containerd_version.clone(),
        runc_bin: bins.runc,
        containerd_config: paths::CONTAINERD_CONFIG,
        cni_bin_dir: bins.cni_bin_dir,
        cni_bin_dirs,
        cni_conf_dir: paths::CNI_CONF_DIR,
        kernel_unit: KERNEL_UNIT,
        kernel_modules: KERNEL_MODULES,
        sysctls: SYSCTLS.iter().chain(extra).map(|(key, value)| Sysctl { key, value }).collect(),
        modules_load_conf: paths::MODULES_LOAD_CONF,
        sysctl_conf: paths::SYSCTL_CONF,
        routes_unit: ROUTES_UNIT,
        pod_routes: paths::POD_ROUTES,
        pod_masquerade: paths::POD_MASQUERADE,
        masquerade_chain: MASQUERADE_CHAIN,
        masquerade_jump: format!(
            "POSTROUTING -s {pod_cidr} -m comment --comment provision-pod-egress -j {MASQUERADE_CHAIN}"
        ),
        iptables: iptables_for(pod_cidr),
        multicast: if ipv6 { "ff00::/8" } else { "224.0.0.0/4" },
    }
}

pub(super) fn add(cx: &RenderCx, h: &HostCx, b: &mut HostBuilder) -> anyhow::Result<()> {
    let c = Component::Runtime;
    let (format, cni_bin_dirs) = containerd_config_format(&cx.inv.artifacts);
    let mut ctx = h.ctx.clone();
    ctx.insert("runtime", &runtime_ctx(&cx.inv.artifacts, &cx.inv.cluster.pod_cidr, cni_bin_dirs));
    let render =
        |name: &str| cx.templates.render(name, &ctx).with_context(|| format!("host {}: template {name}", h.host.name));

    b.text(paths::MODULES_LOAD_CONF, ROOT_0644, render(MODULES_TEMPLATE)?, c)?;
    b.text(paths::SYSCTL_CONF, ROOT_0644, render(SYSCTL_TEMPLATE)?, c)?;
    b.unit(KERNEL_UNIT, render(KERNEL_UNIT)?, c, &[paths::MODULES_LOAD_CONF, paths::SYSCTL_CONF])?;

    b.dir(paths::CONTAINERD_DIR, ROOT_0755, c);
    let config = match format {
        3 => CONTAINERD_CONFIG_V3_TEMPLATE,
        _ => CONTAINERD_CONFIG_TEMPLATE,
    };
    b.text(paths::CONTAINERD_CONFIG, ROOT_0600, render(config)?, c)?;
    b.text(paths::CRICTL_CONFIG, ROOT_0644, render(CRICTL_TEMPLATE)?, c)?;
    b.unit(CONTAINERD_UNIT, render(CONTAINERD_UNIT)?, c, &[paths::CONTAINERD_CONFIG])?;

    // The releases' CNI plugins go to /opt/cni/bin, which no package creates.
    if cx.inv.artifacts.runtime_source().installs_binaries() {
        b.dir(paths::OPT_CNI_DIR, ROOT_0755, c);
        b.dir(crate::artifacts::CNI_BIN_DIR, ROOT_0755, c);
    }
    // containerd watches the CNI directory and picks a changed configuration up itself.
    b.dir(paths::CNI_DIR, ROOT_0755, c);
    b.dir(paths::CNI_CONF_DIR, ROOT_0755, c);
    b.text(paths::CNI_CONFLIST, CNI_PERM, render(CNI_TEMPLATE)?, c)?;

    b.dir(paths::PROVISION_ETC_DIR, ROOT_0755, c);
    b.text(paths::POD_ROUTES, ROOT_0644, render(ROUTES_TEMPLATE)?, c)?;
    b.text(paths::POD_MASQUERADE, ROOT_0644, render(MASQUERADE_TEMPLATE)?, c)?;
    b.unit(ROUTES_UNIT, render(ROUTES_UNIT)?, c, &[paths::POD_ROUTES, paths::POD_MASQUERADE])
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::desired::DesiredHost;
    use crate::inventory::pod_slices::{self, NodeSlice};
    use crate::inventory::{Inventory, KubernetesSource, RuntimeSource};
    use crate::render::{Templates, render};
    use crate::state::StateDir;

    /// inventories/example-ha.toml: 3 control-plane (+etcd) hosts and 2 workers.
    fn ha() -> Inventory {
        toml::from_str(include_str!("../../inventories/example-ha.toml")).unwrap()
    }

    fn rendered(inv: &Inventory) -> Vec<DesiredHost> {
        let dir = tempfile::tempdir().unwrap();
        let pki = crate::pki::ensure(inv, &StateDir::at(dir.path())).unwrap();
        render(inv, &pki, &Templates::embedded().unwrap()).unwrap().desired.hosts
    }

    fn text(h: &DesiredHost, path: &str) -> String {
        let f = h.file(path).unwrap_or_else(|| panic!("{}: no {path}", h.host));
        String::from_utf8(f.content.to_vec()).unwrap()
    }

    const RUNTIME_FILES: &[&str] = &[
        paths::CONTAINERD_CONFIG,
        paths::CRICTL_CONFIG,
        paths::CNI_CONFLIST,
        paths::MODULES_LOAD_CONF,
        paths::SYSCTL_CONF,
        paths::POD_ROUTES,
        paths::POD_MASQUERADE,
        "/etc/systemd/system/containerd.service",
        "/etc/systemd/system/provision-k8s-kernel.service",
        "/etc/systemd/system/provision-pod-routes.service",
    ];

    #[test]
    fn every_node_of_a_3_plus_2_cluster_gets_the_runtime_files_with_cis_modes() {
        let inv = ha();
        let hosts = rendered(&inv);
        assert_eq!(hosts.len(), 5);
        for h in &hosts {
            let runtime: BTreeMap<&str, (u32, &str, &str)> = h
                .files
                .iter()
                .filter(|f| f.component == Component::Runtime)
                .map(|f| (f.path.as_str(), (f.mode, f.owner.as_str(), f.group.as_str())))
                .collect();
            let mut want: Vec<&str> = RUNTIME_FILES.to_vec();
            want.sort();
            assert_eq!(runtime.keys().copied().collect::<Vec<_>>(), want, "{}", h.host);
            // CIS 1.1.9/1.1.10 for the CNI file; unit files 0600 like every unit.
            assert_eq!(runtime[paths::CNI_CONFLIST], (0o600, "root", "root"));
            assert_eq!(runtime[paths::CONTAINERD_CONFIG], (0o600, "root", "root"));
            for unit in [CONTAINERD_UNIT, KERNEL_UNIT, ROUTES_UNIT] {
                assert_eq!(runtime[paths::unit_path(unit).as_str()], (0o600, "root", "root"));
            }
            for f in [paths::MODULES_LOAD_CONF, paths::SYSCTL_CONF, paths::POD_ROUTES, paths::POD_MASQUERADE, paths::CRICTL_CONFIG] {
                assert_eq!(runtime[f], (0o644, "root", "root"));
            }
            let units: BTreeMap<&str, &Vec<String>> = h
                .units
                .iter()
                .filter(|u| u.component == Component::Runtime)
                .map(|u| (u.name.as_str(), &u.watches))
                .collect();
            assert_eq!(units.len(), 3);
            assert!(units[CONTAINERD_UNIT].contains(&paths::CONTAINERD_CONFIG.to_string()));
            assert!(units[ROUTES_UNIT].contains(&paths::POD_ROUTES.to_string()));
            assert!(units[ROUTES_UNIT].contains(&paths::POD_MASQUERADE.to_string()));
            assert!(units[KERNEL_UNIT].contains(&paths::SYSCTL_CONF.to_string()));
            assert!(units[KERNEL_UNIT].contains(&paths::MODULES_LOAD_CONF.to_string()));
            assert_eq!(
                text(h, paths::MODULES_LOAD_CONF).lines().filter(|l| !l.starts_with('#')).collect::<Vec<_>>(),
                ["overlay", "br_netfilter"]
            );
            let sysctls: Vec<String> = text(h, paths::SYSCTL_CONF)
                .lines()
                .filter(|l| !l.starts_with('#'))
                .map(|l| l.replace(' ', ""))
                .collect();
            assert_eq!(
                sysctls,
                [
                    "net.ipv4.ip_forward=1",
                    "net.bridge.bridge-nf-call-iptables=1",
                    "net.bridge.bridge-nf-call-ip6tables=1"
                ]
            );
            let kernel = text(h, &paths::unit_path(KERNEL_UNIT));
            assert!(kernel.contains("ExecStart=/sbin/modprobe --all overlay br_netfilter\n"), "{kernel}");
            assert!(kernel.contains("Before=containerd.service"));
        }
    }

    #[test]
    fn containerd_config_is_version_2_with_cri_systemd_cgroups_and_a_pinned_pause_image() {
        let hosts = rendered(&ha());
        for h in &hosts {
            let c: toml::Table = toml::from_str(&text(h, paths::CONTAINERD_CONFIG)).unwrap();
            assert_eq!(c["version"].as_integer(), Some(2));
            assert_eq!(c["disabled_plugins"].as_array().map(|a| a.len()), Some(0));
            let grpc = c["grpc"].as_table().unwrap();
            assert_eq!(grpc["address"].as_str(), Some(paths::CONTAINERD_SOCKET));
            assert_eq!((grpc["uid"].as_integer(), grpc["gid"].as_integer()), (Some(0), Some(0)));
            let cri = c["plugins"]["io.containerd.grpc.v1.cri"].as_table().unwrap();
            assert_eq!(cri["sandbox_image"].as_str(), Some(SANDBOX_IMAGE));
            let runc = &cri["containerd"]["runtimes"]["runc"];
            assert_eq!(runc["runtime_type"].as_str(), Some("io.containerd.runc.v2"));
            assert_eq!(runc["options"]["SystemdCgroup"].as_bool(), Some(true));
            assert_eq!(runc["options"]["BinaryName"].as_str(), Some("/usr/sbin/runc"));
            assert_eq!(cri["cni"]["conf_dir"].as_str(), Some(paths::CNI_CONF_DIR));
            assert_eq!(cri["cni"]["bin_dir"].as_str(), Some(paths::CNI_BIN_DIR_PREINSTALLED));
            let unit = text(h, &paths::unit_path(CONTAINERD_UNIT));
            assert!(unit.contains("ExecStart=/usr/bin/containerd --config=/etc/containerd/config.toml\n"), "{unit}");
            assert!(unit.contains("Delegate=yes"));
            // The kubelet talks to exactly this socket, with the same cgroup driver.
            let kubelet: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text(h, paths::KUBELET_CONFIG)).unwrap();
            assert_eq!(kubelet["containerRuntimeEndpoint"].as_str(), Some("unix:///run/containerd/containerd.sock"));
            assert_eq!(kubelet["cgroupDriver"].as_str(), Some("systemd"));
        }
    }

    /// containerd 2.x (download/directory with containerd_version >= 2.0): format 3, the
    /// split CRI plugins, the binaries provision installs.
    #[test]
    fn containerd_2_gets_config_version_3_with_the_installed_binaries() {
        let mut inv = ha();
        inv.artifacts.runtime = Some(RuntimeSource::Download);
        for h in &rendered(&inv) {
            let c: toml::Table = toml::from_str(&text(h, paths::CONTAINERD_CONFIG)).unwrap();
            assert_eq!(c["version"].as_integer(), Some(3));
            assert_eq!(c["grpc"]["address"].as_str(), Some(paths::CONTAINERD_SOCKET));
            assert_eq!(
                c["plugins"]["io.containerd.cri.v1.images"]["pinned_images"]["sandbox"].as_str(),
                Some(SANDBOX_IMAGE)
            );
            let rt = &c["plugins"]["io.containerd.cri.v1.runtime"];
            let runc = &rt["containerd"]["runtimes"]["runc"];
            assert_eq!(rt["containerd"]["default_runtime_name"].as_str(), Some("runc"));
            assert_eq!(runc["runtime_type"].as_str(), Some("io.containerd.runc.v2"));
            assert_eq!(runc["options"]["SystemdCgroup"].as_bool(), Some(true));
            assert_eq!(runc["options"]["BinaryName"].as_str(), Some("/usr/local/bin/runc"));
            // 2.1 deprecated bin_dir for the bin_dirs list.
            assert_eq!(rt["cni"]["bin_dirs"].as_array().unwrap()[0].as_str(), Some("/opt/cni/bin"));
            assert!(rt["cni"].get("bin_dir").is_none());
            assert_eq!(rt["cni"]["conf_dir"].as_str(), Some(paths::CNI_CONF_DIR));
            assert_eq!(rt["cni"]["max_conf_num"].as_integer(), Some(1));
            let cri = &c["plugins"]["io.containerd.grpc.v1.cri"];
            assert_eq!(cri["stream_server_address"].as_str(), Some("127.0.0.1"));
            assert_eq!(cri["disable_tcp_service"].as_bool(), Some(true));
            // No 1.x table name may linger: containerd 2 would ignore its settings.
            assert!(!text(h, paths::CONTAINERD_CONFIG).contains("io.containerd.grpc.v1.cri\".containerd"));
            let unit = text(h, &paths::unit_path(CONTAINERD_UNIT));
            assert!(
                unit.contains("ExecStart=/usr/local/bin/containerd --config=/etc/containerd/config.toml\n"),
                "{unit}"
            );
            assert!(unit.contains("KillMode=process\n"), "running containers survive a restart");
        }
        // containerd 2.0 reads format 3 but has only bin_dir.
        inv.artifacts.containerd_version = "2.0.6".into();
        let c: toml::Table = toml::from_str(&text(&rendered(&inv)[0], paths::CONTAINERD_CONFIG)).unwrap();
        assert_eq!(c["version"].as_integer(), Some(3));
        assert_eq!(c["plugins"]["io.containerd.cri.v1.runtime"]["cni"]["bin_dir"].as_str(), Some("/opt/cni/bin"));
        // A 1.7 release from the directory: format 2, at provision's paths.
        inv.artifacts.runtime = Some(RuntimeSource::Directory);
        inv.artifacts.containerd_version = "1.7.24".into();
        let h = &rendered(&inv)[0];
        let c: toml::Table = toml::from_str(&text(h, paths::CONTAINERD_CONFIG)).unwrap();
        assert_eq!(c["version"].as_integer(), Some(2));
        let cri = &c["plugins"]["io.containerd.grpc.v1.cri"];
        assert_eq!(cri["sandbox_image"].as_str(), Some(SANDBOX_IMAGE));
        assert_eq!(cri["cni"]["bin_dir"].as_str(), Some("/opt/cni/bin"));
        assert_eq!(
            cri["containerd"]["runtimes"]["runc"]["options"]["BinaryName"].as_str(),
            Some("/usr/local/bin/runc")
        );
        assert_eq!(cri["containerd"]["runtimes"]["runc"]["options"]["SystemdCgroup"].as_bool(), Some(true));
        assert!(text(h, &paths::unit_path(CONTAINERD_UNIT)).contains("ExecStart=/usr/local/bin/containerd "));
        // The directory the CNI plugins are pushed into exists first (no package makes it).
        let dirs: Vec<&str> = h.dirs.iter().map(|d| d.path.as_str()).collect();
        assert!(dirs.contains(&"/opt/cni") && dirs.contains(&"/opt/cni/bin"), "{dirs:?}");
        assert!(!rendered(&ha())[0].dirs.iter().any(|d| d.path.starts_with("/opt/cni")), "not for the packages");
    }

    #[test]
    fn crictl_talks_to_the_containerd_socket() {
        let h = &rendered(&ha())[0];
        let f = h.file(paths::CRICTL_CONFIG).unwrap();
        assert_eq!((f.mode, f.owner.as_str(), f.group.as_str()), (0o644, "root", "root"));
        let y: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text(h, paths::CRICTL_CONFIG)).unwrap();
        assert_eq!(y["runtime-endpoint"].as_str(), Some("unix:///run/containerd/containerd.sock"));
        assert_eq!(y["image-endpoint"].as_str(), Some("unix:///run/containerd/containerd.sock"));
        assert_eq!(y["timeout"].as_i64(), Some(10));
    }

    #[test]
    fn cni_subnet_and_kubelet_pod_cidr_are_the_hosts_slice_and_routes_reach_exactly_the_others() {
        let inv = ha();
        let slices: Vec<NodeSlice> = pod_slices::of_inventory(&inv).unwrap();
        let hosts = rendered(&inv);
        let mut seen = Vec::new();
        for h in &hosts {
            let own = slices.iter().find(|s| s.host == h.host).unwrap();
            let cni: serde_json::Value = serde_json::from_str(&text(h, paths::CNI_CONFLIST)).unwrap();
            let plugins = cni["plugins"].as_array().unwrap();
            assert_eq!(plugins.iter().map(|p| p["type"].as_str().unwrap()).collect::<Vec<_>>(), ["bridge", "portmap"]);
            assert_eq!(plugins[0]["ipam"]["type"], "host-local");
            assert_eq!(plugins[0]["ipam"]["ranges"][0][0]["subnet"], own.slice.to_string());
            assert_eq!(plugins[0]["ipam"]["routes"][0]["dst"], "0.0.0.0/0");
            let kubelet: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text(h, paths::KUBELET_CONFIG)).unwrap();
            assert_eq!(kubelet["podCIDR"].as_str(), Some(own.slice.to_string().as_str()));

            let routes: Vec<String> =
                text(h, paths::POD_ROUTES).lines().filter(|l| !l.starts_with('#')).map(String::from).collect();
            let others: Vec<String> = slices
                .iter()
                .filter(|s| s.host != h.host)
                .map(|s| format!("route replace {} via {}", s.slice, s.address))
                .collect();
            assert_eq!(routes, others, "{}", h.host);
            assert_eq!(routes.len(), 4);
            assert!(!routes.iter().any(|r| r.contains(&format!(" {} ", own.slice))));
            seen.push(own.slice);
        }
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 5, "every node has its own slice");
    }

    /// The bridge plugin's ipMasq would also translate traffic to other nodes' pods (it
    /// exempts only the node's own slice); the rendered rules exempt the whole pod range.
    #[test]
    fn pod_to_pod_traffic_keeps_its_addresses_and_only_egress_is_masqueraded() {
        let inv = ha();
        for h in &rendered(&inv) {
            let cni: serde_json::Value = serde_json::from_str(&text(h, paths::CNI_CONFLIST)).unwrap();
            assert_eq!(cni["plugins"][0]["ipMasq"], false, "{}", h.host);
            let rules: Vec<String> =
                text(h, paths::POD_MASQUERADE).lines().filter(|l| !l.starts_with('#')).map(String::from).collect();
            assert_eq!(
                rules,
                [
                    "*nat",
                    ":PROVISION-POD-MASQ - [0:0]",
                    "-A PROVISION-POD-MASQ -d 10.200.0.0/16 -m comment --comment \"pod to pod: no translation\" -j RETURN",
                    "-A PROVISION-POD-MASQ -d 224.0.0.0/4 -j RETURN",
                    "-A PROVISION-POD-MASQ -m comment --comment \"pod egress: leaves with the node address\" -j MASQUERADE",
                    "COMMIT",
                ]
            );
            let unit = text(h, &paths::unit_path(ROUTES_UNIT));
            let jump = "POSTROUTING -s 10.200.0.0/16 -m comment --comment provision-pod-egress -j PROVISION-POD-MASQ";
            assert!(
                unit.contains("ExecStart=/usr/sbin/iptables-restore --wait --noflush /etc/provision/pod-masquerade.rules\n"),
                "{unit}"
            );
            assert!(
                unit.contains(&format!(
                    "ExecStart=/bin/sh -c '/usr/sbin/iptables --wait -t nat -C {jump} 2>/dev/null || /usr/sbin/iptables --wait -t nat -A {jump}'\n"
                )),
                "{unit}"
            );
        }
    }

    #[test]
    fn the_runtime_tier_follows_kubernetes_unless_set() {
        let runtime_files = |hosts: &[DesiredHost]| {
            hosts.iter().flat_map(|h| &h.files).filter(|f| f.component == Component::Runtime).count()
        };
        let mut inv = ha();
        inv.artifacts.runtime = Some(RuntimeSource::Skip);
        assert_eq!(runtime_files(&rendered(&inv)), 0);
        inv.artifacts.kubernetes = KubernetesSource::Skip;
        inv.artifacts.runtime = None;
        assert_eq!(runtime_files(&rendered(&inv)), 0, "kubernetes = skip and runtime unset renders no runtime");
        inv.artifacts.runtime = Some(RuntimeSource::Preinstalled);
        let hosts = rendered(&inv);
        assert_eq!(runtime_files(&hosts), 5 * RUNTIME_FILES.len());
        assert!(hosts.iter().all(|h| h.file(paths::KUBELET_CONFIG).is_none()), "still no kubelet");
    }

    #[test]
    fn an_ipv6_pod_range_gets_ipv6_forwarding_and_default_route() {
        let mut inv = ha();
        inv.cluster.pod_cidr = "fd00:200::/56".parse().unwrap();
        let hosts = rendered(&inv);
        let h = &hosts[0];
        assert!(text(h, paths::SYSCTL_CONF).contains("net.ipv6.conf.all.forwarding = 1"));
        let cni: serde_json::Value = serde_json::from_str(&text(h, paths::CNI_CONFLIST)).unwrap();
        assert_eq!(cni["plugins"][0]["ipam"]["ranges"][0][0]["subnet"], "fd00:200::/64");
        assert_eq!(cni["plugins"][0]["ipam"]["routes"][0]["dst"], "::/0");
        let rules = text(h, paths::POD_MASQUERADE);
        assert!(rules.contains("-d fd00:200::/56 -m comment") && rules.contains("-d ff00::/8 -j RETURN"), "{rules}");
        assert!(text(h, &paths::unit_path(ROUTES_UNIT)).contains("/usr/sbin/ip6tables-restore --wait --noflush"));
    }
}
