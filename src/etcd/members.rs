//! The etcd members an inventory describes: every host with the `etcd` role.

use std::net::{IpAddr, SocketAddr};

use serde::Serialize;

use crate::inventory::{Inventory, Role};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Member {
    /// Inventory host name, which is also the etcd member name (`--name`).
    pub name: String,
    pub address: IpAddr,
    /// https://<address>:<etcd.client_port> (IPv6 in brackets).
    pub client_url: String,
    /// https://<address>:<etcd.peer_port>
    pub peer_url: String,
}

/// The etcd members in inventory order.
pub fn members(inventory: &Inventory) -> Vec<Member> {
    let etcd = &inventory.etcd;
    inventory
        .hosts_with(Role::Etcd)
        .map(|h| Member {
            name: h.name.clone(),
            address: h.address,
            client_url: format!("https://{}", SocketAddr::new(h.address, etcd.client_port)),
            peer_url: format!("https://{}", SocketAddr::new(h.address, etcd.peer_port)),
        })
        .collect()
}

/// How many of `voters` voting members must be up for the cluster to have quorum.
pub fn quorum(voters: usize) -> usize {
    voters / 2 + 1
}

/// `name1=https://a:2380,name2=...`: the value of etcd's `--initial-cluster`.
pub fn initial_cluster(members: &[Member]) -> String {
    members.iter().map(|m| format!("{}={}", m.name, m.peer_url)).collect::<Vec<_>>().join(",")
}

/// The numeric id etcd's API takes, from the hex form statuses and member lists show.
pub fn numeric_id(hex: &str) -> anyhow::Result<u64> {
    u64::from_str_radix(hex, 16).map_err(|e| anyhow::anyhow!(e).context(format!("member id {hex:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inventory() -> Inventory {
        toml::from_str(
            r#"
[cluster]
name = "lab"
kubernetes_version = "1.34.2"
etcd_version = "3.5.21"
api_endpoint = "10.0.0.1"
service_cidr = "10.32.0.0/24"
pod_cidr = "10.200.0.0/16"
[etcd]
client_port = 12379
[[host]]
name = "a"
address = "10.0.0.1"
roles = ["etcd", "control-plane"]
[[host]]
name = "w"
address = "10.0.0.9"
roles = ["worker"]
[[host]]
name = "b"
address = "fd00::2"
roles = ["etcd"]
"#,
        )
        .expect("test inventory parses")
    }

    #[test]
    fn member_ids_are_hex() {
        assert_eq!(numeric_id("9f2c42dbcace19f5").unwrap(), 0x9f2c42dbcace19f5);
        let e = numeric_id("node1").unwrap_err();
        assert!(format!("{e:#}").starts_with("member id \"node1\": invalid digit"), "{e:#}");
    }

    #[test]
    fn only_etcd_hosts_with_their_urls() {
        let m = members(&inventory());
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].client_url, "https://10.0.0.1:12379");
        assert_eq!(m[0].peer_url, "https://10.0.0.1:2380");
        assert_eq!(m[1].client_url, "https://[fd00::2]:12379");
        assert_eq!(initial_cluster(&m), "a=https://10.0.0.1:2380,b=https://[fd00::2]:2380");
    }
}
