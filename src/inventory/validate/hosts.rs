//! [[host]]: names, addresses, roles, and the role counts an HA control plane needs.

use std::collections::HashMap;
use std::net::IpAddr;

use super::Part;
use super::names::{is_dns_label, is_user_name, label_suggestion};
use crate::inventory::diagnostics::quoted;
use crate::inventory::locate::KeyPath;
use crate::inventory::report::Reporter;
use crate::inventory::schema::{Host, Role};
use crate::inventory::spec::ROLES;

/// etcd's documentation recommends at most 7 members: more slow every write down.
const MAX_RECOMMENDED_ETCD_MEMBERS: usize = 7;

pub fn check_each<'h>(hosts: impl Iterator<Item = (usize, &'h Part<Host>)>, rep: &mut Reporter<'_>) {
    for (i, part) in hosts {
        let host = &part.value;
        // The name is also the Kubernetes node name and the etcd member name.
        if part.ok("name") && !is_dns_label(&host.name) {
            let hint = label_suggestion(&host.name).map(|s| format!("; e.g. {}", quoted(&s))).unwrap_or_default();
            rep.error(
                &KeyPath::host(i).key("name"),
                format!("{} is not a valid host name (expected 1-63 lower-case letters, digits and '-', starting and ending with a letter or digit{hint})", quoted(&host.name)),
            );
        }
        if part.ok("roles") && host.roles.is_empty() {
            rep.error(
                &KeyPath::host(i).key("roles"),
                format!("is empty (expected one or more of: {})", ROLES.join(", ")),
            );
        }
        for (j, role) in host.roles.iter().enumerate() {
            if host.roles[..j].contains(role) {
                rep.error(
                    &KeyPath::host(i).key("roles").index(j),
                    format!("{} is listed twice", quoted(role_name(*role))),
                );
            }
        }
        if let Some(user) = &host.ssh_user
            && !is_user_name(user)
        {
            rep.error(
                &KeyPath::host(i).key("ssh_user"),
                format!("{} is not a valid user name (expected e.g. root or admin)", quoted(user)),
            );
        }
    }
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Etcd => "etcd",
        Role::ControlPlane => "control-plane",
        Role::Worker => "worker",
    }
}

pub fn check_unique<'h>(hosts: impl Iterator<Item = (usize, &'h Part<Host>)>, rep: &mut Reporter<'_>) {
    let mut names: HashMap<&str, usize> = HashMap::new();
    let mut addresses: HashMap<IpAddr, usize> = HashMap::new();
    for (i, part) in hosts {
        let host = &part.value;
        if part.ok("name") {
            match names.get(host.name.as_str()) {
                Some(first) => rep.error(
                    &KeyPath::host(i).key("name"),
                    format!("{} is already the name of host[{first}] (host names must be unique)", quoted(&host.name)),
                ),
                None => {
                    names.insert(&host.name, i);
                }
            }
        }
        if part.ok("address") {
            // An IPv4-mapped IPv6 address is the same host as its IPv4 form.
            match addresses.get(&host.address.to_canonical()) {
                Some(first) => rep.error(
                    &KeyPath::host(i).key("address"),
                    format!("{} is already the address of host[{first}] (host addresses must be unique)", host.address),
                ),
                None => {
                    addresses.insert(host.address.to_canonical(), i);
                }
            }
        }
    }
}

pub fn check_roles_present(hosts: &[&Host], rep: &mut Reporter<'_>) {
    let at = KeyPath::root().key("host");
    if hosts.is_empty() {
        rep.error(&at, "no hosts: add one [[host]] table per machine, with name, address and roles (e.g. roles = [\"etcd\", \"control-plane\"])");
        return;
    }
    let etcd = hosts.iter().filter(|h| h.has(Role::Etcd)).count();
    match etcd {
        0 => rep.error(&at, "no host has the etcd role (give it to 1, 3 or 5 hosts; 3 tolerate one failure)"),
        n if n % 2 == 0 => rep.warning(
            &at,
            format!(
                "{n} hosts have the etcd role: {n} members tolerate no more failures than {} (a quorum of {} must stay up); use {} or {}",
                n - 1,
                crate::etcd::members::quorum(n),
                n - 1,
                n + 1
            ),
        ),
        n if n > MAX_RECOMMENDED_ETCD_MEMBERS => rep.warning(
            &at,
            format!("{n} hosts have the etcd role: etcd recommends at most {MAX_RECOMMENDED_ETCD_MEMBERS} members (each one slows every write)"),
        ),
        _ => {}
    }
    if !hosts.iter().any(|h| h.has(Role::ControlPlane)) {
        rep.error(&at, "no host has the control-plane role (give it to at least one host; 3 for high availability)");
    }
}

#[cfg(test)]
mod tests {
    use crate::inventory::validate::testing::{diagnose, only_error, only_warning, replaced, with};

    #[test]
    fn host_names_are_dns_labels() {
        let e = only_error(&replaced("\"node2\"", "\"Node_2\""));
        assert!(e.contains("host[1].name: \"Node_2\" is not a valid host name"), "{e}");
        assert!(e.contains("e.g. \"node-2\""), "{e}");
    }

    #[test]
    fn names_and_addresses_are_unique() {
        let e = only_error(&replaced("\"node3\"", "\"node1\""));
        assert!(e.contains("host[2].name: \"node1\" is already the name of host[0]"), "{e}");
        let e = only_error(&replaced("\"10.0.0.13\"", "\"10.0.0.11\""));
        assert!(e.contains("host[2].address: 10.0.0.11 is already the address of host[0]"), "{e}");
        let e = only_error(&replaced("\"10.0.0.13\"", "\"::ffff:10.0.0.11\""));
        assert!(e.contains("already the address of host[0]"), "{e}");
    }

    #[test]
    fn roles_are_non_empty_and_listed_once() {
        // node3 loses etcd: two etcd members left, an even count (a warning).
        let (errors, _) = diagnose(&replaced(
            "name = \"node3\"\naddress = \"10.0.0.13\"\nroles = [\"etcd\", \"control-plane\"]",
            "name = \"node3\"\naddress = \"10.0.0.13\"\nroles = []",
        ));
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].contains("host[2].roles: is empty (expected one or more of: etcd, control-plane, worker)"),
            "{}",
            errors[0]
        );
        let e = only_error(&replaced(
            "roles = [\"etcd\", \"control-plane\"]",
            "roles = [\"etcd\", \"control-plane\", \"etcd\"]",
        ));
        assert!(e.contains(":13:35: host[0].roles[2]: \"etcd\" is listed twice"), "{e}");
    }

    #[test]
    fn unknown_roles_are_named() {
        let e = only_error(&replaced("roles = [\"etcd\", \"control-plane\"]", "roles = [\"etcd\", \"master\"]"));
        assert!(e.contains("host[0].roles[1]: \"master\" is not a role (expected one of: etcd, control-plane, worker; did you mean \"control-plane\"?)"), "{e}");
    }

    #[test]
    fn etcd_member_count() {
        let w = only_warning(&with("[[host]]\nname = \"node4\"\naddress = \"10.0.0.14\"\nroles = [\"etcd\"]"));
        assert!(w.contains("warning: host: 4 hosts have the etcd role"), "{w}");
        assert!(w.contains("use 3 or 5"), "{w}");
        let no_etcd = super::super::testing::VALID.replace("[\"etcd\", \"control-plane\"]", "[\"control-plane\"]");
        let e = only_error(&no_etcd);
        assert!(e.contains(":10:1: host: no host has the etcd role"), "{e}");
    }

    #[test]
    fn a_control_plane_host_is_required() {
        let text = super::super::testing::VALID.replace("[\"etcd\", \"control-plane\"]", "[\"etcd\", \"worker\"]");
        assert!(only_error(&text).contains("no host has the control-plane role"));
    }

    #[test]
    fn hosts_are_required() {
        let text = super::super::testing::VALID.split("[[host]]").next().unwrap_or_default().to_string();
        assert!(only_error(&text).contains("test.toml:1:1: host: no hosts: add one [[host]] table per machine"));
    }

    #[test]
    fn host_ssh_user_is_a_user_name() {
        let e = only_error(&replaced("address = \"10.0.0.11\"", "address = \"10.0.0.11\"\nssh_user = \"bad user\""));
        assert!(e.contains("host[0].ssh_user: \"bad user\" is not a valid user name"), "{e}");
    }
}
