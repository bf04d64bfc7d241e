//! Address ranges and ports: the Service and Pod ranges, host addresses, and the
//! ports the stacked control-plane services listen on (all on the same hosts).

use std::net::IpAddr;

use ipnet::IpNet;

use super::Part;
use crate::inventory::locate::KeyPath;
use crate::inventory::pod_slices;
use crate::inventory::report::Reporter;
use crate::inventory::schema::{Cluster, EtcdSettings, Host, SshSettings};

fn key(name: &str) -> KeyPath {
    KeyPath::root().key("cluster").key(name)
}

/// Service addresses used by the cluster itself: .1 (the kubernetes Service) and
/// .10 (cluster DNS), so the range needs 16 addresses.
const MIN_SERVICE_HOST_BITS: u8 = 4;
/// kube-apiserver refuses a Service range of more than 2^20 addresses.
const MAX_SERVICE_HOST_BITS: u8 = 20;
/// kube-controller-manager gives each node a /24 (IPv4) or /64 (IPv6) of Pod
/// addresses (--node-cidr-mask-size defaults, `pod_slices::default_prefix`), and refuses
/// a cluster range more than 16 bits shorter than that.
const MAX_NODE_MASK_DIFF: u8 = 16;

pub fn check_ranges(part: &Part<Cluster>, rep: &mut Reporter<'_>) {
    let c = &part.value;
    for (name, net) in [("service_cidr", &c.service_cidr), ("pod_cidr", &c.pod_cidr)] {
        if part.ok(name) && net.addr() != net.network() {
            rep.error(&key(name), format!("{net} has host bits set (did you mean {}?)", net.trunc()));
        }
    }
    if part.ok("service_cidr") {
        check_service_range_size(c, rep);
    }
    if part.ok("pod_cidr") {
        check_pod_range_size(c, rep);
    }
    let (service, pod) = (c.service_cidr.trunc(), c.pod_cidr.trunc());
    if part.ok("service_cidr") && part.ok("pod_cidr") && overlaps(&service, &pod) {
        rep.error(
            &key("pod_cidr"),
            format!(
                "{pod} overlaps cluster.service_cidr {service} (the Pod and Service ranges must not share addresses)"
            ),
        );
    }
    if let Some(ip) = c.api_endpoint.parse::<IpAddr>().ok().filter(|_| part.ok("api_endpoint"))
        && let Some(range) = containing_range(part, ip)
    {
        rep.error(
            &key("api_endpoint"),
            format!("{ip} lies inside {range} (the API endpoint must be outside the Service and Pod ranges)"),
        );
    }
}

fn check_service_range_size(c: &Cluster, rep: &mut Reporter<'_>) {
    let service = c.service_cidr.trunc();
    let host_bits = service.max_prefix_len() - service.prefix_len();
    if host_bits < MIN_SERVICE_HOST_BITS {
        let longest = service.max_prefix_len() - MIN_SERVICE_HOST_BITS;
        rep.error(
            &key("service_cidr"),
            format!("{service} is too small: the cluster needs at least 16 Service addresses (.1 is the kubernetes Service, .10 the cluster DNS); use a prefix of /{longest} or shorter"),
        );
    } else if host_bits > MAX_SERVICE_HOST_BITS {
        let shortest = service.max_prefix_len() - MAX_SERVICE_HOST_BITS;
        rep.error(
            &key("service_cidr"),
            format!("{service} is too large: kube-apiserver accepts at most 2^20 Service addresses; use a prefix of /{shortest} or longer"),
        );
    }
}

fn check_pod_range_size(c: &Cluster, rep: &mut Reporter<'_>) {
    let pod = c.pod_cidr.trunc();
    let node = pod_slices::default_prefix(&pod);
    if pod.prefix_len() > node {
        rep.error(
            &key("pod_cidr"),
            format!(
                "{pod} is too small: each node gets a /{node} of Pod addresses, so use a prefix of /{node} or shorter"
            ),
        );
    } else if node - pod.prefix_len() > MAX_NODE_MASK_DIFF {
        rep.error(
            &key("pod_cidr"),
            format!("{pod} is too large: kube-controller-manager splits it into at most 2^16 node ranges of /{node}; use a prefix of /{} or longer", node - MAX_NODE_MASK_DIFF),
        );
    }
}

fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// "cluster.service_cidr 10.32.0.0/24" when `ip` is in one of the cluster's (usable) ranges.
fn containing_range(part: &Part<Cluster>, ip: IpAddr) -> Option<String> {
    let c = &part.value;
    [("service_cidr", c.service_cidr.trunc()), ("pod_cidr", c.pod_cidr.trunc())]
        .into_iter()
        .find(|(name, net)| part.ok(name) && net.contains(&ip))
        .map(|(name, net)| format!("cluster.{name} {net}"))
}

pub fn check_hosts_outside_ranges<'h>(
    c: &Part<Cluster>,
    hosts: impl Iterator<Item = (usize, &'h Part<Host>)>,
    rep: &mut Reporter<'_>,
) {
    for (i, host) in hosts.filter(|(_, h)| h.ok("address")) {
        let host = &host.value;
        if let Some(range) = containing_range(c, host.address) {
            rep.error(
                &KeyPath::host(i).key("address"),
                format!(
                    "{} lies inside {range} (host addresses must be outside the Service and Pod ranges)",
                    host.address
                ),
            );
        }
    }
}

/// Every host that runs a kubelet gets its own slice of the Pod range (`pod_slices`):
/// a host's explicit `pod_cidr` must fit, and the range must hold a slice for every node.
pub fn check_pod_slices<'h>(
    c: &Part<Cluster>,
    hosts: impl Iterator<Item = (usize, &'h Part<Host>)>,
    rep: &mut Reporter<'_>,
) {
    let pod = c.value.pod_cidr;
    // A range smaller than one default slice is reported by check_pod_range_size.
    if !c.ok("pod_cidr") || pod.prefix_len() > pod_slices::default_prefix(&pod) {
        return;
    }
    let mut nodes: Vec<usize> = Vec::new();
    let mut requests: Vec<pod_slices::Request> = Vec::new();
    for (i, part) in hosts {
        let host = &part.value;
        let explicit = host.pod_cidr.filter(|_| part.ok("pod_cidr"));
        if !host.runs_kubelet() {
            if explicit.is_some() {
                rep.error(
                    &KeyPath::host(i).key("pod_cidr"),
                    "is set but this host runs no kubelet (pod slices are for control-plane and worker hosts); remove it",
                );
            }
            continue;
        }
        nodes.push(i);
        requests.push(pod_slices::Request { name: &host.name, explicit });
    }
    for p in pod_slices::allocate(pod, &requests).problems {
        match p.node {
            Some(n) => rep.error(&KeyPath::host(nodes[n]).key("pod_cidr"), p.message),
            None => rep.error(&key("pod_cidr"), p.message),
        }
    }
}

/// Control-plane components share each host: their ports must all differ.
pub fn check_ports(
    cluster: Option<&Part<Cluster>>,
    etcd: Option<&Part<EtcdSettings>>,
    ssh: Option<&Part<SshSettings>>,
    rep: &mut Reporter<'_>,
) {
    let mut ports: Vec<(KeyPath, u16, &str)> = Vec::new();
    if let Some(ssh) = ssh.filter(|s| s.ok("port")) {
        ports.push((KeyPath::root().key("ssh").key("port"), ssh.value.port, "sshd"));
    }
    if let Some(c) = cluster.filter(|c| c.ok("api_port")) {
        ports.push((key("api_port"), c.value.api_port, "kube-apiserver"));
    }
    if let Some(e) = etcd {
        if e.ok("client_port") {
            ports.push((KeyPath::root().key("etcd").key("client_port"), e.value.client_port, "etcd clients"));
        }
        if e.ok("peer_port") {
            ports.push((KeyPath::root().key("etcd").key("peer_port"), e.value.peer_port, "etcd peers"));
        }
    }
    const FIXED: &[(u16, &str)] =
        &[(10250, "the kubelet"), (10257, "kube-controller-manager"), (10259, "kube-scheduler")];
    for (i, (path, port, what)) in ports.iter().enumerate() {
        if let Some((earlier, _, other)) = ports[..i].iter().find(|(_, p, _)| p == port) {
            // Point at whichever of the two the operator wrote (a default is not in the file).
            let at = if rep.is_written(path) || !rep.is_written(earlier) { path } else { earlier };
            rep.error(at, format!("port {port} is used twice: by {other} ({earlier}) and by {what} ({path}); every port must be different"));
        } else if let Some((_, other)) = FIXED.iter().find(|(p, _)| p == port) {
            rep.error(path, format!("port {port} for {what} is the port of {other}; choose another"));
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::inventory::validate::testing::{diagnose, only_error, replaced, with};

    #[test]
    fn host_bits_must_be_zero() {
        let e = only_error(&replaced("\"10.32.0.0/24\"", "\"10.32.0.5/24\""));
        assert!(
            e.ends_with("cluster.service_cidr: 10.32.0.5/24 has host bits set (did you mean 10.32.0.0/24?)"),
            "{e}"
        );
    }

    #[test]
    fn service_range_size() {
        assert!(
            only_error(&replaced("\"10.32.0.0/24\"", "\"10.32.0.0/29\""))
                .contains("too small: the cluster needs at least 16 Service addresses")
        );
        assert!(diagnose(&replaced("\"10.32.0.0/24\"", "\"10.32.0.0/28\"")).0.is_empty());
        assert!(
            only_error(&replaced("\"10.32.0.0/24\"", "\"10.32.0.0/11\"")).contains("use a prefix of /12 or longer")
        );
        assert!(diagnose(&replaced("\"10.32.0.0/24\"", "\"10.32.0.0/12\"")).0.is_empty());
    }

    #[test]
    fn pod_range_size() {
        assert!(only_error(&replaced("\"10.200.0.0/16\"", "\"10.200.0.0/25\"")).contains("each node gets a /24"));
        assert!(
            only_error(&replaced("\"10.200.0.0/16\"", "\"10.200.0.0/23\""))
                .contains("cluster.pod_cidr: 10.200.0.0/23 has no free /24 left for the pods of node3")
        );
        assert!(diagnose(&replaced("\"10.200.0.0/16\"", "\"10.200.0.0/22\"")).0.is_empty());
        assert!(only_error(&replaced("\"10.200.0.0/16\"", "\"12.0.0.0/7\"")).contains("at most 2^16 node ranges"));
    }

    #[test]
    fn explicit_pod_slices_are_checked_where_written() {
        let at = |extra: &str| replaced("address = \"10.0.0.12\"", &format!("address = \"10.0.0.12\"\n{extra}"));
        let e = only_error(&at("pod_cidr = \"10.201.0.0/24\""));
        assert!(
            e.contains(":18:12: host[1].pod_cidr: 10.201.0.0/24 lies outside cluster.pod_cidr 10.200.0.0/16"),
            "{e}"
        );
        let e = only_error(&at("pod_cidr = \"fd00::/64\""));
        assert!(e.contains("host[1].pod_cidr: fd00::/64 is IPv6 but cluster.pod_cidr 10.200.0.0/16 is IPv4"), "{e}");
        assert!(diagnose(&at("pod_cidr = \"10.200.9.0/24\"")).0.is_empty());
        // node1 takes 10.200.0.0/24 by default before node2's explicit slice is known: the
        // defaults skip every explicit slice, so this is no overlap but node1 moves on.
        assert!(diagnose(&at("pod_cidr = \"10.200.0.0/24\"")).0.is_empty());
        let etcd_only = replaced(
            "roles = [\"etcd\", \"control-plane\"]\n\n[[host]]\nname = \"node2\"",
            "roles = [\"etcd\"]\npod_cidr = \"10.200.9.0/24\"\n\n[[host]]\nname = \"node2\"",
        );
        let e = only_error(&etcd_only);
        assert!(e.contains("host[0].pod_cidr: is set but this host runs no kubelet"), "{e}");
    }

    #[test]
    fn service_and_pod_ranges_are_disjoint() {
        let e = only_error(&replaced("\"10.200.0.0/16\"", "\"10.32.0.0/16\""));
        assert!(e.contains("cluster.pod_cidr: 10.32.0.0/16 overlaps cluster.service_cidr 10.32.0.0/24"), "{e}");
    }

    #[test]
    fn hosts_and_api_endpoint_lie_outside_the_ranges() {
        let e = only_error(&replaced("\"10.0.0.12\"", "\"10.200.3.4\""));
        assert!(e.contains("host[1].address: 10.200.3.4 lies inside cluster.pod_cidr 10.200.0.0/16"), "{e}");
        let e = only_error(&replaced("\"10.0.0.10\"", "\"10.32.0.1\""));
        assert!(e.contains("cluster.api_endpoint: 10.32.0.1 lies inside cluster.service_cidr 10.32.0.0/24"), "{e}");
    }

    #[test]
    fn ports_must_differ() {
        let e = only_error(&with("[etcd]\npeer_port = 2379"));
        assert!(e.contains(":26:13: etcd.peer_port: port 2379 is used twice: by etcd clients (etcd.client_port) and by etcd peers (etcd.peer_port)"), "{e}");
        assert!(
            only_error(&with("[etcd]\nclient_port = 6443"))
                .contains("etcd.client_port: port 6443 is used twice: by kube-apiserver (cluster.api_port)")
        );
        assert!(only_error(&with("[etcd]\nclient_port = 10250")).contains("is the port of the kubelet"));
        // The default etcd peer port is not in the file: the message points at ssh.port.
        let e = only_error(&with("[ssh]\nport = 2380"));
        assert!(e.contains(":26:8: ssh.port: port 2380 is used twice: by sshd (ssh.port) and by etcd peers"), "{e}");
    }

    #[test]
    fn ipv6_ranges_work() {
        let text = replaced("\"10.32.0.0/24\"", "\"fd00:32::/112\"").replace("\"10.200.0.0/16\"", "\"fd00:200::/56\"");
        assert_eq!(diagnose(&text).0, Vec::<String>::new());
    }
}
