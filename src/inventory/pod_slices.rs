//! Pod slices: the part of `cluster.pod_cidr` each node's pods get their addresses from.
//!
//! Why provision assigns them instead of kube-controller-manager (--allocate-node-cidrs):
//! a slice known before anything runs is shown by `plan`, goes into the node's CNI
//! configuration and kubelet config, and lets every node's routes to every other node's
//! pods be rendered as files, before any controller is up. The controller-manager's
//! allocation exists only once nodes registered, and would not match these.
//!
//! Every host that runs a kubelet (control-plane or worker role) gets one, in inventory
//! order: a host's `pod_cidr` key sets it explicitly; every other host gets the next
//! /24 (IPv4) or /64 (IPv6) of the cluster range that no explicit slice overlaps. Adding
//! a host at the end therefore never moves the slices of the hosts before it.

use std::net::IpAddr;

use ipnet::IpNet;

use super::schema::{Host, Inventory};

/// The default slice sizes, those kube-controller-manager uses (--node-cidr-mask-size).
pub const DEFAULT_PREFIX_V4: u8 = 24;
pub const DEFAULT_PREFIX_V6: u8 = 64;
/// An explicit slice needs room for the network address, the bridge's gateway address,
/// at least one pod and (IPv4) the broadcast address.
pub const MIN_HOST_BITS: u8 = 2;

/// The default slice size in a cluster range of this family.
pub fn default_prefix(pod_cidr: &IpNet) -> u8 {
    match pod_cidr {
        IpNet::V4(_) => DEFAULT_PREFIX_V4,
        IpNet::V6(_) => DEFAULT_PREFIX_V6,
    }
}

/// What the allocation needs to know of one node.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    pub name: &'a str,
    /// The host's `pod_cidr` key, if written.
    pub explicit: Option<IpNet>,
}

/// A problem with the requests. `node` indexes the request list (None: the cluster range).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub node: Option<usize>,
    pub message: String,
}

/// One slice per request (None where a problem left the node without one), and the problems.
#[derive(Debug, Clone)]
pub struct Allocation {
    pub slices: Vec<Option<IpNet>>,
    pub problems: Vec<Problem>,
}

/// Assigns the slices of `pod_cidr` to `nodes` (in inventory order). Pure: the same
/// inputs always give the same slices.
pub fn allocate(pod_cidr: IpNet, nodes: &[Request]) -> Allocation {
    let pod = pod_cidr.trunc();
    let mut slices: Vec<Option<IpNet>> = vec![None; nodes.len()];
    let mut problems = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        let Some(net) = node.explicit else { continue };
        let message = if family(&net) != family(&pod) {
            Some(format!("{net} is {} but cluster.pod_cidr {pod} is {}", family(&net), family(&pod)))
        } else if net.addr() != net.network() {
            Some(format!("{net} has host bits set (did you mean {}?)", net.trunc()))
        } else if !pod.contains(&net) {
            Some(format!(
                "{net} lies outside cluster.pod_cidr {pod} (a node's pods take their addresses from the cluster's Pod range)"
            ))
        } else if net.max_prefix_len() - net.prefix_len() < MIN_HOST_BITS {
            Some(format!(
                "{net} is too small for a node's pods (gateway, pods, broadcast); use a prefix of /{} or shorter",
                net.max_prefix_len() - MIN_HOST_BITS
            ))
        } else if let Some(j) = (0..i).find(|&j| slices[j].is_some_and(|s| overlaps(&s, &net))) {
            let other = slices[j].map(|s| s.to_string()).unwrap_or_default();
            Some(format!(
                "{net} overlaps the pod_cidr {other} of host {} (every node needs its own slice)",
                nodes[j].name
            ))
        } else {
            None
        };
        match message {
            Some(message) => problems.push(Problem { node: Some(i), message }),
            None => slices[i] = Some(net),
        }
    }
    let explicit: Vec<IpNet> = slices.iter().flatten().copied().collect();
    let mut free = pod
        .subnets(default_prefix(&pod))
        .into_iter()
        .flatten()
        .filter(move |s| !explicit.iter().any(|e| overlaps(e, s)));
    let mut left_out = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        if node.explicit.is_some() {
            continue;
        }
        match free.next() {
            Some(s) => slices[i] = Some(s),
            None => left_out.push(node.name),
        }
    }
    if !left_out.is_empty() {
        let size = default_prefix(&pod);
        problems.push(Problem {
            node: None,
            message: format!(
                "{pod} has no free /{size} left for the pods of {} (every control-plane and worker host needs its own slice); use a shorter prefix, or give hosts smaller slices with their pod_cidr key",
                left_out.join(", ")
            ),
        });
    }
    Allocation { slices, problems }
}

/// A node's slice, with what render needs to know of the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSlice {
    pub host: String,
    pub address: IpAddr,
    pub slice: IpNet,
}

/// The slices of every kubelet host of a (validated) inventory, in inventory order.
pub fn of_inventory(inv: &Inventory) -> anyhow::Result<Vec<NodeSlice>> {
    let nodes: Vec<&Host> = inv.hosts.iter().filter(|h| h.runs_kubelet()).collect();
    let requests: Vec<Request> = nodes.iter().map(|h| Request { name: &h.name, explicit: h.pod_cidr }).collect();
    let a = allocate(inv.cluster.pod_cidr, &requests);
    if let Some(p) = a.problems.first() {
        let at =
            p.node.map(|i| format!("host {}: pod_cidr ", nodes[i].name)).unwrap_or_else(|| "cluster.pod_cidr ".into());
        anyhow::bail!("cannot assign the pod slices: {at}{}", p.message);
    }
    Ok(nodes
        .iter()
        .zip(a.slices)
        .filter_map(|(h, s)| s.map(|slice| NodeSlice { host: h.name.clone(), address: h.address, slice }))
        .collect())
}

fn family(net: &IpNet) -> &'static str {
    match net {
        IpNet::V4(_) => "IPv4",
        IpNet::V6(_) => "IPv6",
    }
}

fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    fn req<'a>(name: &'a str, explicit: Option<&str>) -> Request<'a> {
        Request { name, explicit: explicit.map(net) }
    }

    fn slices(a: &Allocation) -> Vec<String> {
        a.slices.iter().map(|s| s.map(|s| s.to_string()).unwrap_or_default()).collect()
    }

    #[test]
    fn defaults_are_consecutive_slices_in_inventory_order() {
        let a = allocate(net("10.200.0.0/16"), &[req("a", None), req("b", None), req("c", None)]);
        assert!(a.problems.is_empty(), "{:?}", a.problems);
        assert_eq!(slices(&a), ["10.200.0.0/24", "10.200.1.0/24", "10.200.2.0/24"]);
        let a = allocate(net("fd00:200::/56"), &[req("a", None), req("b", None)]);
        assert_eq!(slices(&a), ["fd00:200::/64", "fd00:200:0:1::/64"]);
    }

    #[test]
    fn explicit_slices_are_kept_and_skipped_by_the_defaults() {
        let a = allocate(
            net("10.200.0.0/16"),
            &[req("a", None), req("b", Some("10.200.1.0/25")), req("c", None), req("d", Some("10.200.0.0/24"))],
        );
        assert!(a.problems.is_empty(), "{:?}", a.problems);
        // a would have had 10.200.0.0/24 but d claims it; 10.200.1.0/24 holds b's /25.
        assert_eq!(slices(&a), ["10.200.2.0/24", "10.200.1.0/25", "10.200.3.0/24", "10.200.0.0/24"]);
    }

    #[test]
    fn bad_explicit_slices_are_named() {
        let a = allocate(
            net("10.200.0.0/16"),
            &[
                req("a", Some("10.201.0.0/24")),
                req("b", Some("fd00::/64")),
                req("c", Some("10.200.0.5/24")),
                req("d", Some("10.200.0.0/31")),
                req("e", Some("10.200.4.0/23")),
                req("f", Some("10.200.5.0/24")),
                req("g", None),
            ],
        );
        let got: Vec<(Option<usize>, &str)> = a.problems.iter().map(|p| (p.node, p.message.as_str())).collect();
        assert_eq!(
            got,
            [
                (
                    Some(0),
                    "10.201.0.0/24 lies outside cluster.pod_cidr 10.200.0.0/16 (a node's pods take their addresses from the cluster's Pod range)"
                ),
                (Some(1), "fd00::/64 is IPv6 but cluster.pod_cidr 10.200.0.0/16 is IPv4"),
                (Some(2), "10.200.0.5/24 has host bits set (did you mean 10.200.0.0/24?)"),
                (
                    Some(3),
                    "10.200.0.0/31 is too small for a node's pods (gateway, pods, broadcast); use a prefix of /30 or shorter"
                ),
                (
                    Some(5),
                    "10.200.5.0/24 overlaps the pod_cidr 10.200.4.0/23 of host e (every node needs its own slice)"
                ),
            ]
        );
        assert_eq!(a.slices[4], Some(net("10.200.4.0/23")));
        assert_eq!(a.slices[6], Some(net("10.200.0.0/24")), "a refused slice does not block the defaults");
    }

    #[test]
    fn exhaustion_names_the_hosts_left_out() {
        let a = allocate(
            net("10.200.0.0/23"),
            &[req("a", None), req("b", Some("10.200.1.0/26")), req("c", None), req("d", None)],
        );
        assert_eq!(slices(&a), ["10.200.0.0/24", "10.200.1.0/26", "", ""]);
        assert_eq!(a.problems.len(), 1);
        assert_eq!(a.problems[0].node, None);
        assert!(
            a.problems[0].message.starts_with("10.200.0.0/23 has no free /24 left for the pods of c, d"),
            "{:?}",
            a.problems
        );
    }

    #[test]
    fn inventory_slices_go_to_kubelet_hosts_only() {
        let text = include_str!("../../inventories/example-ha.toml");
        let inv: Inventory = toml::from_str(text).unwrap();
        let s = of_inventory(&inv).unwrap();
        let expected_nodes: Vec<&str> =
            inv.hosts.iter().filter(|h| h.runs_kubelet()).map(|h| h.name.as_str()).collect();
        assert_eq!(s.iter().map(|n| n.host.as_str()).collect::<Vec<_>>(), expected_nodes);
        assert_eq!(s.len(), 5);
        for (i, n) in s.iter().enumerate() {
            assert!(inv.cluster.pod_cidr.contains(&n.slice));
            assert_eq!(n.slice.prefix_len(), 24);
            assert!(s[..i].iter().all(|o| !overlaps(&o.slice, &n.slice)));
        }
    }
}
