//! `runtime.pods`: on every host with the runtime tier, what pods need from the node,
//! read over SSH in one round trip: containerd answers on its socket (client and server
//! version from `ctr version`), runc and the bridge/host-local CNI plugins are there
//! (their versions), the CNI config's subnet is the node's slice, the kernel routes
//! every other node's slice via that node's address, and pod egress is masqueraded while
//! pod-to-pod traffic is not (the nat chain of templates/pod-masquerade.rules).

use std::collections::BTreeMap;

use futures::future::join_all;

use super::report::{CheckResult, HostOutcome};
use crate::inventory::Inventory;
use crate::inventory::pod_slices::{self, NodeSlice};
use crate::render::paths;
use crate::render::pod_network::{self, PodNetworkCtx};
use crate::ssh::Session;

pub const RUNTIME_PODS: &str = "runtime.pods";

/// The one script: sections between `== name` markers, read by `judge`.
fn script(ipv6: bool) -> String {
    format!(
        "PATH=/usr/local/bin:/usr/bin:/usr/sbin:/bin:/sbin\n\
         echo '== ctr'; ctr --address {socket} version 2>&1\n\
         echo '== runc'; runc --version 2>&1 | head -n 1\n\
         echo '== cni'; for p in {plugins}; do [ -x {bin}/$p ] && echo \"$p $({bin}/$p 2>&1 | head -n 1)\" || echo \"$p missing\"; done\n\
         echo '== conflist'; cat {conflist} 2>&1\n\
         echo '== routes'; ip {family} route show 2>&1\n\
         echo '== masquerade'; {iptables} -w -t nat -S {chain} 2>&1; {iptables} -w -t nat -S POSTROUTING 2>&1\n",
        family = if ipv6 { "-6" } else { "-4" },
        iptables = if ipv6 { "ip6tables" } else { "iptables" },
        chain = crate::render::runtime::MASQUERADE_CHAIN,
        socket = paths::CONTAINERD_SOCKET,
        bin = paths::CNI_BIN_DIR_PREINSTALLED,
        plugins = cni_plugins().join(" "),
        conflist = paths::CNI_CONFLIST,
    )
}

/// The CNI plugins the runtime tier needs: the ones preflight requires, by name.
fn cni_plugins() -> Vec<&'static str> {
    let dir = format!("{}/", paths::CNI_BIN_DIR_PREINSTALLED);
    crate::render::runtime::PREINSTALLED_BINARIES.iter().filter_map(|(p, _)| p.strip_prefix(dir.as_str())).collect()
}

/// None when no host has the runtime tier (the check is not run).
pub async fn run(inv: &Inventory, sessions: &BTreeMap<String, Session>) -> Option<CheckResult> {
    if inv.artifacts.runtime_source() == crate::inventory::RuntimeSource::Skip {
        return None;
    }
    let slices: Vec<NodeSlice> = pod_slices::of_inventory(inv).ok()?;
    let pod_cidr = inv.cluster.pod_cidr.to_string();
    let script = script(inv.cluster.pod_cidr.addr().is_ipv6());
    if slices.is_empty() {
        return None;
    }
    let outcomes = join_all(slices.iter().map(|s| {
        let (slices, script, pod_cidr) = (&slices, &script, &pod_cidr);
        async move {
            let Some(net) = pod_network::for_host(slices, &s.host) else {
                return HostOutcome::fail(&s.host, "no pod slice");
            };
            let Some(session) = sessions.get(&s.host) else {
                return HostOutcome::fail(&s.host, "no SSH session");
            };
            // exec runs as root (sudo -n for a non-root login): ctr needs the root-only socket.
            match session.exec(script, None).await {
                Ok(out) => judge(&s.host, &net, pod_cidr, &out.stdout_text()),
                Err(e) => HostOutcome::fail(&s.host, format!("reading the runtime: {e:#}")),
            }
        }
    }))
    .await;
    Some(CheckResult::from_hosts(
        RUNTIME_PODS,
        "containerd answers, runc and the CNI plugins are there, the CNI subnet is the node's slice, routes to every other slice",
        outcomes,
    ))
}

fn sections(text: &str) -> BTreeMap<&str, Vec<&str>> {
    let mut out: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    let mut current = "";
    for line in text.lines() {
        if let Some(name) = line.strip_prefix("== ") {
            current = name.trim();
            out.entry(current).or_default();
        } else {
            out.entry(current).or_default().push(line);
        }
    }
    out
}

/// Pure: the host's outcome from the script's output (unit-tested).
pub fn judge(host: &str, net: &PodNetworkCtx, pod_cidr: &str, text: &str) -> HostOutcome {
    let s = sections(text);
    let get = |k: &str| s.get(k).cloned().unwrap_or_default();
    let mut bad = Vec::new();
    let mut good = Vec::new();
    // `ctr version` prints Client and Server blocks; the server's Version proves the socket answers.
    let ctr = get("ctr");
    let server = ctr.iter().skip_while(|l| !l.starts_with("Server:")).find_map(|l| l.trim().strip_prefix("Version:"));
    match server {
        Some(v) => good.push(format!("containerd {} answers", v.trim())),
        None => {
            bad.push(format!("containerd does not answer on {}: {}", paths::CONTAINERD_SOCKET, ctr.join(" ").trim()))
        }
    }
    match get("runc").first() {
        Some(l) if l.starts_with("runc version") => good.push(l.trim().to_string()),
        other => bad.push(format!("runc: {}", other.map(|l| l.trim()).unwrap_or("no answer"))),
    }
    let missing: Vec<&str> = get("cni").into_iter().filter(|l| l.ends_with(" missing")).collect();
    if missing.is_empty() {
        let version =
            get("cni").first().and_then(|l| l.split_whitespace().last().map(str::to_string)).unwrap_or_default();
        good.push(format!("CNI plugins {version}"));
    } else {
        bad.push(format!("CNI plugins missing in {}: {}", paths::CNI_BIN_DIR_PREINSTALLED, missing.join(", ")));
    }
    let conflist = get("conflist").join("\n");
    let subnet = serde_json::from_str::<serde_json::Value>(&conflist).ok().and_then(|v| {
        v["plugins"].as_array()?.iter().find(|p| p["type"] == "bridge")?["ipam"]["ranges"][0][0]["subnet"]
            .as_str()
            .map(str::to_string)
    });
    match subnet {
        Some(sub) if sub == net.slice => good.push(format!("CNI subnet {sub}")),
        Some(sub) => bad.push(format!("{} has subnet {sub}, the node's slice is {}", paths::CNI_CONFLIST, net.slice)),
        None => bad.push(format!("{} is missing or has no bridge subnet", paths::CNI_CONFLIST)),
    }
    let routes = get("routes");
    let mut missing_routes = Vec::new();
    for r in &net.routes {
        let found = routes.iter().any(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            w.first() == Some(&r.dst.as_str()) && w.windows(2).any(|p| p[0] == "via" && p[1] == r.via)
        });
        if !found {
            missing_routes.push(format!("{} via {} ({})", r.dst, r.via, r.node));
        }
    }
    if missing_routes.is_empty() {
        good.push(format!("{} pod route(s)", net.routes.len()));
    } else {
        bad.push(format!("no route to {}", missing_routes.join(", ")));
    }
    match masquerade(&get("masquerade"), pod_cidr) {
        Ok(()) => good.push(format!("egress masqueraded except to {pod_cidr}")),
        Err(why) => bad.push(why),
    }
    if bad.is_empty() { HostOutcome::pass(host, good.join("; ")) } else { HostOutcome::fail(host, bad.join("; ")) }
}

/// `iptables -S` of the masquerade chain and of POSTROUTING: traffic from the pod range
/// jumps to the chain, which returns for the pod range and masquerades the rest.
fn masquerade(rules: &[&str], pod_cidr: &str) -> Result<(), String> {
    let chain = crate::render::runtime::MASQUERADE_CHAIN;
    let words = |l: &&str| l.split_whitespace().map(str::to_string).collect::<Vec<_>>();
    let has = |w: &[String], flag: &str, value: &str| w.windows(2).any(|p| p[0] == flag && p[1] == value);
    let rules: Vec<Vec<String>> = rules.iter().map(words).collect();
    let jump = rules.iter().any(|w| has(w, "-A", "POSTROUTING") && has(w, "-s", pod_cidr) && has(w, "-j", chain));
    let exempt = rules.iter().position(|w| has(w, "-A", chain) && has(w, "-d", pod_cidr) && has(w, "-j", "RETURN"));
    let masq = rules.iter().position(|w| has(w, "-A", chain) && has(w, "-j", "MASQUERADE"));
    match (jump, exempt, masq) {
        (true, Some(e), Some(m)) if e < m => Ok(()),
        (false, ..) => Err(format!("no POSTROUTING jump from {pod_cidr} to {chain}: pod egress is not masqueraded")),
        (_, None, _) => Err(format!("{chain} does not exempt {pod_cidr}: pod-to-pod traffic would be translated")),
        _ => Err(format!("{chain} masquerades nothing, or before exempting {pod_cidr}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::pod_network::PodRoute;

    fn net() -> PodNetworkCtx {
        PodNetworkCtx {
            slice: "10.200.0.0/24".into(),
            default_route: "0.0.0.0/0",
            routes: vec![PodRoute { dst: "10.200.1.0/24".into(), via: "192.168.56.12".into(), node: "node2".into() }],
        }
    }

    const GOOD: &str = "== ctr\nClient:\n  Version:  1.6.20~ds1\n\nServer:\n  Version:  1.6.20~ds1\n  Revision: x\n\
== runc\nrunc version 1.1.5+ds1\n== cni\nbridge CNI bridge plugin v1.1.1\nhost-local CNI host-local plugin v1.1.1\n\
portmap CNI portmap plugin v1.1.1\n== conflist\n{\"plugins\":[{\"type\":\"bridge\",\"ipam\":{\"ranges\":[[{\"subnet\":\"10.200.0.0/24\"}]]}}]}\n\
== routes\ndefault via 10.0.2.2 dev eth0\n10.200.1.0/24 via 192.168.56.12 dev eth1 proto static\n\
== masquerade\n-N PROVISION-POD-MASQ\n\
-A PROVISION-POD-MASQ -d 10.200.0.0/16 -m comment --comment \"pod to pod: no translation\" -j RETURN\n\
-A PROVISION-POD-MASQ -d 224.0.0.0/4 -j RETURN\n\
-A PROVISION-POD-MASQ -m comment --comment \"pod egress: leaves with the node address\" -j MASQUERADE\n\
-P POSTROUTING ACCEPT\n-A POSTROUTING -s 10.200.0.0/16 -m comment --comment provision-pod-egress -j PROVISION-POD-MASQ\n";

    const POD_CIDR: &str = "10.200.0.0/16";

    #[test]
    fn a_node_ready_for_pods_passes_with_its_figures() {
        let o = judge("node1", &net(), POD_CIDR, GOOD);
        assert!(o.status == crate::verify::report::Status::Pass, "{o:?}");
        assert!(o.evidence.contains("containerd 1.6.20~ds1 answers") && o.evidence.contains("1 pod route(s)"), "{o:?}");
    }

    #[test]
    fn each_missing_part_is_named() {
        let no_server = GOOD.replace("Server:\n  Version:  1.6.20~ds1\n", "ctr: failed to dial\n");
        assert!(judge("n", &net(), POD_CIDR, &no_server).evidence.contains("containerd does not answer"));
        let other_slice = GOOD.replace("\"10.200.0.0/24\"", "\"10.200.9.0/24\"");
        assert!(
            judge("n", &net(), POD_CIDR, &other_slice)
                .evidence
                .contains("subnet 10.200.9.0/24, the node's slice is 10.200.0.0/24")
        );
        let no_route = GOOD.replace("10.200.1.0/24 via 192.168.56.12 dev eth1 proto static\n", "");
        assert!(
            judge("n", &net(), POD_CIDR, &no_route)
                .evidence
                .contains("no route to 10.200.1.0/24 via 192.168.56.12 (node2)")
        );
        let no_plugin = GOOD.replace("portmap CNI portmap plugin v1.1.1", "portmap missing");
        let o = judge("n", &net(), POD_CIDR, &no_plugin);
        assert!(o.status == crate::verify::report::Status::Fail && o.evidence.contains("portmap missing"), "{o:?}");
        let no_jump = GOOD.replace("-A POSTROUTING -s 10.200.0.0/16", "-A POSTROUTING -s 10.9.0.0/16");
        assert!(judge("n", &net(), POD_CIDR, &no_jump).evidence.contains("no POSTROUTING jump from 10.200.0.0/16"));
        let no_exempt =
            GOOD.replace("-d 10.200.0.0/16 -m comment --comment \"pod to pod: no translation\" -j RETURN", "");
        assert!(judge("n", &net(), POD_CIDR, &no_exempt).evidence.contains("pod-to-pod traffic would be translated"));
        let no_chain = GOOD.replace(
            "-A PROVISION-POD-MASQ -m comment --comment \"pod egress: leaves with the node address\" -j MASQUERADE",
            "iptables: No chain/target/match by that name.",
        );
        assert!(judge("n", &net(), POD_CIDR, &no_chain).evidence.contains("masquerades nothing"));
    }
}
