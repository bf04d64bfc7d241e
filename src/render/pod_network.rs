//! The pod network of one node, for the templates: its slice of cluster.pod_cidr (see
//! `inventory::pod_slices`) and the routes to every other node's slice via that node's
//! address (the Hard Way's routes: nodes share one link, no overlay).

use serde::Serialize;

use crate::inventory::pod_slices::NodeSlice;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PodRoute {
    /// Another node's slice.
    pub dst: String,
    /// That node's address.
    pub via: String,
    pub node: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PodNetworkCtx {
    /// This node's slice: the kubelet's podCIDR and the bridge's host-local IPAM subnet.
    pub slice: String,
    /// The family's default route, which pods get through the bridge.
    pub default_route: &'static str,
    /// Every other node's slice, in inventory order.
    pub routes: Vec<PodRoute>,
}

/// The pod network of `host`, or None when it runs no kubelet (has no slice).
pub fn for_host(slices: &[NodeSlice], host: &str) -> Option<PodNetworkCtx> {
    let own = slices.iter().find(|s| s.host == host)?;
    let routes = slices
        .iter()
        .filter(|s| s.host != host)
        .map(|s| PodRoute { dst: s.slice.to_string(), via: s.address.to_string(), node: s.host.clone() })
        .collect();
    let default_route = if own.slice.addr().is_ipv4() { "0.0.0.0/0" } else { "::/0" };
    Some(PodNetworkCtx { slice: own.slice.to_string(), default_route, routes })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(host: &str, address: &str, slice: &str) -> NodeSlice {
        NodeSlice { host: host.into(), address: address.parse().unwrap(), slice: slice.parse().unwrap() }
    }

    #[test]
    fn routes_go_to_every_other_node() {
        let all = [
            s("a", "10.0.0.1", "10.200.0.0/24"),
            s("b", "10.0.0.2", "10.200.1.0/24"),
            s("c", "10.0.0.3", "10.200.2.0/24"),
        ];
        let b = for_host(&all, "b").unwrap();
        assert_eq!(b.slice, "10.200.1.0/24");
        assert_eq!(b.default_route, "0.0.0.0/0");
        let r: Vec<(&str, &str)> = b.routes.iter().map(|r| (r.dst.as_str(), r.via.as_str())).collect();
        assert_eq!(r, [("10.200.0.0/24", "10.0.0.1"), ("10.200.2.0/24", "10.0.0.3")]);
        assert_eq!(for_host(&all, "etcd-only"), None);
        let v6 = for_host(&[s("a", "fd00::1", "fd00:200::/64")], "a").unwrap();
        assert_eq!((v6.default_route, v6.routes.len()), ("::/0", 0));
    }
}
