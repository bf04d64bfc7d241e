//! What a host must offer before the runtime tier and a kubelet go on it, judged from
//! its facts (`facts.sh`, record `node`) in preflight, so that `plan` says it and `apply`
//! stops before any change, instead of containerd or the kubelet failing mid-phase:
//! - swap on, where a kubelet would refuse to start (its `failSwapOn`, `[kubelet]
//!   fail_swap_on`);
//! - cgroup v1 only: Kubernetes keeps cgroup v1 in maintenance mode since 1.31 and the
//!   1.35 kubelet refuses it; containerd alone still runs (a warning then);
//! - the kernel features containerd and the pod network need: the overlay filesystem (the
//!   default snapshotter) and br_netfilter (bridged pod traffic through kube-proxy's rules).

use crate::inventory::KubeletSettings;
use crate::plan::facts::{KernelFeature, NodeFacts};

/// Problems (the host is refused) and warnings for one host with the runtime tier.
/// `kubelet`: the kubelet's settings when the host runs one.
pub fn judge(node: &NodeFacts, kubelet: Option<&KubeletSettings>) -> (Vec<String>, Vec<String>) {
    let mut problems = Vec::new();
    let mut warnings = Vec::new();
    if node.swap_kb > 0
        && let Some(k) = kubelet
        && k.fail_swap_on
    {
        problems.push(format!(
            "swap is on ({} in /proc/swaps) and the kubelet refuses to start with swap: turn it off (`swapoff -a`, \
             and remove the swap entries from /etc/fstab) or set [kubelet] fail_swap_on = false (the kubelet then \
             starts and no pod uses swap)",
            mib(node.swap_kb)
        ));
    }
    if !node.cgroup_fs.is_empty() && node.cgroup_fs != "cgroup2fs" {
        let what = format!(
            "cgroup v1 only (/sys/fs/cgroup is {}): Kubernetes keeps cgroup v1 in maintenance mode since 1.31 and the \
             1.35 kubelet refuses it; boot the host with cgroup v2 (the default since Debian 11; kernel parameter \
             systemd.unified_cgroup_hierarchy=1)",
            node.cgroup_fs
        );
        match kubelet {
            Some(_) => problems.push(what),
            None => warnings.push(format!("{what}. containerd runs on it; a kubelet would not")),
        }
    }
    let features = [
        (node.overlay, "overlay filesystem", "containerd's default snapshotter needs it", "CONFIG_OVERLAY_FS"),
        (
            node.br_netfilter,
            "br_netfilter",
            "without it bridged pod traffic bypasses the iptables rules of kube-proxy and of the pod masquerade",
            "CONFIG_BRIDGE_NETFILTER",
        ),
    ];
    for (state, name, why, config) in features {
        if state == KernelFeature::Missing {
            problems.push(format!(
                "the kernel has no {name} (not in use, and modprobe finds no module): {why}; install the running \
                 kernel's modules (Debian: the linux-image package of `uname -r`) or use a kernel built with {config}"
            ));
        }
    }
    (problems, warnings)
}

fn mib(kb: u64) -> String {
    format!("{} MiB", kb.div_ceil(1024))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fit() -> NodeFacts {
        NodeFacts {
            swap_kb: 0,
            cgroup_fs: "cgroup2fs".into(),
            overlay: KernelFeature::Loaded,
            br_netfilter: KernelFeature::Module,
        }
    }

    const KUBELET: KubeletSettings = KubeletSettings { fail_swap_on: true };
    const SWAP_OK: KubeletSettings = KubeletSettings { fail_swap_on: false };

    #[test]
    fn a_fit_host_passes_with_or_without_a_kubelet() {
        assert_eq!(judge(&fit(), Some(&KUBELET)), (vec![], vec![]));
        assert_eq!(judge(&fit(), None), (vec![], vec![]));
    }

    #[test]
    fn swap_is_refused_only_where_a_kubelet_would_refuse_it() {
        let node = NodeFacts { swap_kb: 2_097_148, ..fit() };
        let (problems, _) = judge(&node, Some(&KUBELET));
        assert_eq!(problems.len(), 1);
        assert!(problems[0].starts_with("swap is on (2048 MiB in /proc/swaps)"), "{}", problems[0]);
        assert!(problems[0].contains("swapoff -a") && problems[0].contains("[kubelet] fail_swap_on = false"));
        assert_eq!(judge(&node, Some(&SWAP_OK)), (vec![], vec![]));
        assert_eq!(judge(&node, None), (vec![], vec![]), "containerd alone does not mind swap");
    }

    #[test]
    fn cgroup_v1_refuses_a_kubelet_and_warns_for_containerd_alone() {
        let node = NodeFacts { cgroup_fs: "tmpfs".into(), ..fit() };
        let (problems, warnings) = judge(&node, Some(&KUBELET));
        assert!(warnings.is_empty());
        assert!(problems[0].starts_with("cgroup v1 only (/sys/fs/cgroup is tmpfs)"), "{problems:?}");
        assert!(problems[0].contains("systemd.unified_cgroup_hierarchy=1"));
        let (problems, warnings) = judge(&node, None);
        assert!(problems.is_empty());
        assert!(warnings[0].ends_with("containerd runs on it; a kubelet would not"), "{warnings:?}");
        // An unanswered stat (no /sys/fs/cgroup reading) judges nothing.
        assert_eq!(judge(&NodeFacts { cgroup_fs: String::new(), ..fit() }, Some(&KUBELET)), (vec![], vec![]));
    }

    #[test]
    fn missing_kernel_features_are_refused_with_the_config_option_to_look_for() {
        let node = NodeFacts { overlay: KernelFeature::Missing, br_netfilter: KernelFeature::Missing, ..fit() };
        let (problems, _) = judge(&node, None);
        assert_eq!(problems.len(), 2);
        assert!(problems[0].starts_with("the kernel has no overlay filesystem (not in use"), "{problems:?}");
        assert!(problems[0].contains("CONFIG_OVERLAY_FS"));
        assert!(
            problems[1].starts_with("the kernel has no br_netfilter")
                && problems[1].contains("CONFIG_BRIDGE_NETFILTER")
        );
    }
}
