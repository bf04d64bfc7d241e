//! What each phase IS, in one table: its place in the apply order, its name, the
//! components whose files and units it installs, what the next phase waits for after it
//! started units, the gate of its rolling restarts, and the ports its daemons listen on.
//!
//! Adding a phase (e.g. CNI) is: a `Phase` variant, a `Component` variant if it installs
//! files, one row in `PHASES` (in apply order), one line in `daemon_ports`, and its
//! executor in `apply::phases::run`. A phase of cluster objects applied through the API
//! names its template in `objects` and shares the API executor. The plan (`diff`,
//! `rollout`, `reset`, `api_objects`) and preflight read everything else from here.

use super::action::Phase;
use crate::desired::Component;
use crate::inventory::Inventory;

/// What the next phase waits for once this phase started or restarted units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterStart {
    /// The started units are `active`.
    UnitsActive,
    /// The started units are `active`, then every etcd member is healthy with a quorum.
    EtcdQuorum,
    /// The started units are `active`, then kube-apiserver answers `/readyz`.
    ApiserverReady,
}

/// How a running unit of this phase restarts: one host at a time behind this gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RollingGate {
    /// Member healthy and caught up with the leader, quorum held; leader last.
    EtcdMember,
    /// Units active, then `/readyz` 200.
    ApiserverReady,
    /// Units active.
    UnitsActive,
}

#[derive(Debug, Clone, Copy)]
pub struct PhaseSpec {
    pub phase: Phase,
    /// As shown in plans and events (`[etcd]`, `== etcd: ...`).
    pub name: &'static str,
    /// Components whose users, dirs, files and units this phase installs.
    pub components: &'static [Component],
    pub after_start: AfterStart,
    /// None: the phase has no units of its own (or they are not restarted one by one).
    pub rolling: Option<RollingGate>,
    /// The template of the cluster objects this phase applies through kube-apiserver (one
    /// YAML document per object); planned only when the Kubernetes tier is rendered.
    pub objects: Option<&'static str>,
}

/// Every phase, in apply order.
pub const PHASES: &[PhaseSpec] = &[
    PhaseSpec {
        phase: Phase::Preflight,
        name: "preflight",
        components: &[],
        after_start: AfterStart::UnitsActive,
        rolling: None,
        objects: None,
    },
    PhaseSpec {
        phase: Phase::Base,
        name: "base",
        components: &[Component::Base],
        after_start: AfterStart::UnitsActive,
        rolling: None,
        objects: None,
    },
    PhaseSpec {
        phase: Phase::Etcd,
        name: "etcd",
        components: &[Component::Etcd],
        after_start: AfterStart::EtcdQuorum,
        rolling: Some(RollingGate::EtcdMember),
        objects: None,
    },
    PhaseSpec {
        phase: Phase::KubeApiserver,
        name: "kube-apiserver",
        components: &[Component::KubeApiserver],
        after_start: AfterStart::ApiserverReady,
        rolling: Some(RollingGate::ApiserverReady),
        objects: None,
    },
    PhaseSpec {
        phase: Phase::Controllers,
        name: "controller-manager+scheduler",
        components: &[Component::KubeControllerManager, Component::KubeScheduler],
        after_start: AfterStart::UnitsActive,
        rolling: Some(RollingGate::UnitsActive),
        objects: None,
    },
    PhaseSpec {
        phase: Phase::BootstrapRbac,
        name: "bootstrap-rbac",
        components: &[],
        after_start: AfterStart::UnitsActive,
        rolling: None,
        objects: Some(crate::kube::objects::TEMPLATE),
    },
    // Before the kubelets, which need the runtime's socket. containerd is a daemon like
    // the others: a running one whose config or unit changed restarts one host at a time
    // (its containers keep running: KillMode=process), gated on its units being active;
    // the oneshot kernel and pod-route units count as active once they ran.
    PhaseSpec {
        phase: Phase::Runtime,
        name: "runtime",
        components: &[Component::Runtime],
        after_start: AfterStart::UnitsActive,
        rolling: Some(RollingGate::UnitsActive),
        objects: None,
    },
    PhaseSpec {
        phase: Phase::Kubelet,
        name: "kubelet",
        components: &[Component::Kubelet],
        after_start: AfterStart::UnitsActive,
        rolling: Some(RollingGate::UnitsActive),
        objects: None,
    },
    // After the kubelets: the Deployment's pods need nodes to run on (apply does not wait
    // for them to be ready; the objects are accepted or not). The Service's address is the
    // kubelets' clusterDNS, so pods started earlier already resolve through it.
    PhaseSpec {
        phase: Phase::ClusterDns,
        name: "cluster-dns",
        components: &[],
        after_start: AfterStart::UnitsActive,
        rolling: None,
        objects: Some(crate::kube::objects::COREDNS_TEMPLATE),
    },
];

pub fn spec(phase: Phase) -> &'static PhaseSpec {
    PHASES.iter().find(|s| s.phase == phase).expect("every Phase has a row in PHASES (tested)")
}

/// The phases that apply cluster objects through the API, in apply order, with their
/// templates.
pub fn object_phases() -> impl Iterator<Item = (Phase, &'static str)> {
    PHASES.iter().filter_map(|s| s.objects.map(|t| (s.phase, t)))
}

/// The phase that installs `component`.
pub fn phase_of(component: Component) -> Phase {
    PHASES
        .iter()
        .find(|s| s.components.contains(&component))
        .map(|s| s.phase)
        .expect("every Component has a phase (tested)")
}

/// The daemon's unit of a component and the TCP ports that daemon listens on (preflight
/// refuses a port another process holds while that unit is not running). Only the daemon's
/// own unit owns the ports: a component also has units that listen on nothing (the etcd
/// backup timer, kube-proxy beside the kubelet), and a port held by the running daemon must
/// not be blamed on a sibling that is stopped. The controller-manager, scheduler and kubelet
/// use their upstream secure ports.
pub fn daemon_ports(component: Component, inventory: &Inventory) -> Option<(&'static str, Vec<u16>)> {
    match component {
        Component::Etcd => Some(("etcd.service", vec![inventory.etcd.client_port, inventory.etcd.peer_port])),
        Component::KubeApiserver => Some(("kube-apiserver.service", vec![inventory.cluster.api_port])),
        Component::KubeControllerManager => Some(("kube-controller-manager.service", vec![10257])),
        Component::KubeScheduler => Some(("kube-scheduler.service", vec![10259])),
        Component::Kubelet => Some(("kubelet.service", vec![10250])),
        // containerd serves on a unix socket only; the kernel and route units are oneshots.
        Component::Runtime | Component::Base => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_covers_every_phase_once_in_apply_order() {
        let order: Vec<Phase> = PHASES.iter().map(|s| s.phase).collect();
        assert_eq!(order, Phase::ALL.to_vec(), "PHASES lists every phase once, in the order of Phase::ALL");
        let mut sorted = order.clone();
        sorted.sort();
        assert_eq!(sorted, order, "the Phase enum's order is the apply order");
        for p in Phase::ALL {
            assert_eq!(spec(p).phase, p);
            assert_eq!(p.name(), spec(p).name);
        }
    }

    #[test]
    fn every_component_has_exactly_one_phase() {
        for c in [
            Component::Base,
            Component::Etcd,
            Component::KubeApiserver,
            Component::KubeControllerManager,
            Component::KubeScheduler,
            Component::Runtime,
            Component::Kubelet,
        ] {
            let owners = PHASES.iter().filter(|s| s.components.contains(&c)).count();
            assert_eq!(owners, 1, "{c:?}");
        }
        assert_eq!(phase_of(Component::KubeScheduler), Phase::Controllers);
        assert_eq!(phase_of(Component::Etcd), Phase::Etcd);
        assert!(phase_of(Component::Runtime) < phase_of(Component::Kubelet), "the kubelet needs the runtime's socket");
    }

    #[test]
    fn etcd_never_rolls_more_than_its_member_gate() {
        assert_eq!(spec(Phase::Etcd).rolling, Some(RollingGate::EtcdMember));
        assert_eq!(spec(Phase::Etcd).after_start, AfterStart::EtcdQuorum);
        assert_eq!(spec(Phase::KubeApiserver).rolling, Some(RollingGate::ApiserverReady));
    }

    #[test]
    fn object_phases_install_nothing_on_hosts_and_dns_follows_the_kubelets() {
        let phases: Vec<Phase> = object_phases().map(|(p, _)| p).collect();
        assert_eq!(phases, [Phase::BootstrapRbac, Phase::ClusterDns]);
        for p in phases {
            assert!(spec(p).components.is_empty() && spec(p).rolling.is_none(), "{p}");
        }
        assert!(Phase::ClusterDns > Phase::Kubelet, "CoreDNS pods need nodes");
        assert_eq!(Phase::ClusterDns.name(), "cluster-dns");
    }
}
