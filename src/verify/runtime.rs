//! `runtime.pods`: on every host with the runtime tier, what pods need from the node,
//! read over SSH in one round trip: the running containerd is the binary of the runtime
//! source (`/proc/<MainPID>/exe`) and answers on its socket (server version from `ctr
//! version`; with crictl on the host also a real CRI Version call, `crictl version`),
//! runc and the CNI plugins are where the source puts them (their versions), the CNI
//! config's subnet is the node's slice, and the kernel routes every other node's slice via
//! that node's address.

use std::collections::BTreeMap;

use futures::future::join_all;

use super::report::{CheckResult, HostOutcome};
use crate::artifacts::Binary;
use crate::inventory::Inventory;
use crate::inventory::pod_slices::{self, NodeSlice};
use crate::render::paths;
use crate::render::pod_network::{self, PodNetworkCtx};
use crate::render::runtime::RuntimeBins;
use crate::ssh::Session;

pub const RUNTIME_PODS: &str = "runtime.pods";

/// The one script: sections between `== name` markers, read by `judge`. The binaries are
/// run from where the runtime source puts them (`bins`), not from PATH.
fn script(bins: &RuntimeBins) -> String {
    format!(
        "PATH=/usr/local/bin:/usr/bin:/usr/sbin:/bin:/sbin\n\
         echo '== exe'; readlink /proc/$(systemctl show -p MainPID --value containerd.service)/exe 2>&1\n\
         echo '== ctr'; ctr --address {socket} version 2>&1\n\
         echo '== crictl'; if command -v crictl >/dev/null; then crictl --runtime-endpoint unix://{socket} version 2>&1; else echo absent; fi\n\
         echo '== runc'; {runc} --version 2>&1 | head -n 1\n\
         echo '== cni'; for p in {plugins}; do [ -x {bin}/$p ] && echo \"$p $({bin}/$p 2>&1 | head -n 1)\" || echo \"$p missing\"; done\n\
         echo '== conflist'; cat {conflist} 2>&1\n\
         echo '== routes'; ip route show 2>&1\n",
        socket = paths::CONTAINERD_SOCKET,
        runc = bins.runc,
        bin = bins.cni_bin_dir,
        plugins = Binary::CNI_PLUGINS.map(|b| b.name()).join(" "),
        conflist = paths::CNI_CONFLIST,
    )
}

/// None when no host has the runtime tier (the check is not run).
pub async fn run(inv: &Inventory, sessions: &BTreeMap<String, Session>) -> Option<CheckResult> {
    let source = inv.artifacts.runtime_source();
    if source == crate::inventory::RuntimeSource::Skip {
        return None;
    }
    let bins = RuntimeBins::of(source);
    let slices: Vec<NodeSlice> = pod_slices::of_inventory(inv).ok()?;
    if slices.is_empty() {
        return None;
    }
    let outcomes = join_all(slices.iter().map(|s| {
        let (slices, bins) = (&slices, &bins);
        async move {
            let Some(net) = pod_network::for_host(slices, &s.host) else {
                return HostOutcome::fail(&s.host, "no pod slice");
            };
            let Some(session) = sessions.get(&s.host) else {
                return HostOutcome::fail(&s.host, "no SSH session");
            };
            // exec runs as root (sudo -n for a non-root login): ctr needs the root-only socket.
            match session.exec(&script(bins), None).await {
                Ok(out) => judge(&s.host, &net, bins, &out.stdout_text()),
                Err(e) => HostOutcome::fail(&s.host, format!("reading the runtime: {e:#}")),
            }
        }
    }))
    .await;
    Some(CheckResult::from_hosts(
        RUNTIME_PODS,
        "the source's containerd runs and answers (CRI v1 via crictl when installed), runc and the CNI plugins are there, the CNI subnet is the node's slice, routes to every other slice",
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
pub fn judge(host: &str, net: &PodNetworkCtx, bins: &RuntimeBins, text: &str) -> HostOutcome {
    let s = sections(text);
    let get = |k: &str| s.get(k).cloned().unwrap_or_default();
    let mut bad = Vec::new();
    let mut good = Vec::new();
    // The running daemon is the source's binary (a package's containerd left running after
    // a switch to "download" would answer too).
    match get("exe").first().map(|l| l.trim().trim_end_matches(" (deleted)")) {
        Some(exe) if exe == bins.containerd => {}
        other => bad.push(format!(
            "containerd.service runs {}, not {}",
            other.filter(|e| !e.is_empty()).unwrap_or("nothing"),
            bins.containerd
        )),
    }
    // `ctr version` prints Client and Server blocks; the server's Version proves the socket answers.
    let ctr = get("ctr");
    let server = ctr.iter().skip_while(|l| !l.starts_with("Server:")).find_map(|l| l.trim().strip_prefix("Version:"));
    match server {
        Some(v) => good.push(format!("containerd {} answers", v.trim())),
        None => {
            bad.push(format!("containerd does not answer on {}: {}", paths::CONTAINERD_SOCKET, ctr.join(" ").trim()))
        }
    }
    let crictl = get("crictl");
    if crictl.first().map(|l| l.trim()) != Some("absent") {
        let field = |k: &str| crictl.iter().find_map(|l| l.trim().strip_prefix(k)).map(str::trim);
        match (field("RuntimeApiVersion:"), field("RuntimeVersion:")) {
            (Some(api), Some(version)) if api == "v1" => good.push(format!("crictl: CRI {api}, runtime {version}")),
            _ => bad.push(format!("crictl version: {}", crictl.join(" ").trim())),
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
        bad.push(format!("CNI plugins missing in {}: {}", bins.cni_bin_dir, missing.join(", ")));
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
    if bad.is_empty() { HostOutcome::pass(host, good.join("; ")) } else { HostOutcome::fail(host, bad.join("; ")) }
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

    fn debian() -> RuntimeBins {
        RuntimeBins::of(crate::inventory::RuntimeSource::Preinstalled)
    }

    const GOOD: &str = "== exe\n/usr/bin/containerd\n== crictl\nabsent\n== ctr\nClient:\n  Version:  1.6.20~ds1\n\nServer:\n  Version:  1.6.20~ds1\n  Revision: x\n\
== runc\nrunc version 1.1.5+ds1\n== cni\nbridge CNI bridge plugin v1.1.1\nhost-local CNI host-local plugin v1.1.1\n\
portmap CNI portmap plugin v1.1.1\n== conflist\n{\"plugins\":[{\"type\":\"bridge\",\"ipam\":{\"ranges\":[[{\"subnet\":\"10.200.0.0/24\"}]]}}]}\n\
== routes\ndefault via 10.0.2.2 dev eth0\n10.200.1.0/24 via 192.168.56.12 dev eth1 proto static\n";

    #[test]
    fn a_node_ready_for_pods_passes_with_its_figures() {
        let o = judge("node1", &net(), &debian(), GOOD);
        assert!(o.status == crate::verify::report::Status::Pass, "{o:?}");
        assert!(o.evidence.contains("containerd 1.6.20~ds1 answers") && o.evidence.contains("1 pod route(s)"), "{o:?}");
    }

    #[test]
    fn each_missing_part_is_named() {
        let no_server = GOOD.replace("Server:\n  Version:  1.6.20~ds1\n", "ctr: failed to dial\n");
        assert!(judge("n", &net(), &debian(), &no_server).evidence.contains("containerd does not answer"));
        let other_slice = GOOD.replace("\"10.200.0.0/24\"", "\"10.200.9.0/24\"");
        assert!(
            judge("n", &net(), &debian(), &other_slice)
                .evidence
                .contains("subnet 10.200.9.0/24, the node's slice is 10.200.0.0/24")
        );
        let no_route = GOOD.replace("10.200.1.0/24 via 192.168.56.12 dev eth1 proto static\n", "");
        assert!(
            judge("n", &net(), &debian(), &no_route)
                .evidence
                .contains("no route to 10.200.1.0/24 via 192.168.56.12 (node2)")
        );
        let no_plugin = GOOD.replace("portmap CNI portmap plugin v1.1.1", "portmap missing");
        let o = judge("n", &net(), &debian(), &no_plugin);
        assert!(o.status == crate::verify::report::Status::Fail && o.evidence.contains("portmap missing"), "{o:?}");
    }

    #[test]
    fn a_runtime_provision_installs_is_judged_at_its_paths_with_crictl() {
        let ours = RuntimeBins::of(crate::inventory::RuntimeSource::Download);
        // The package's daemon still running after a switch: named.
        let o = judge("n", &net(), &ours, GOOD);
        assert!(
            o.evidence.contains("containerd.service runs /usr/bin/containerd, not /usr/local/bin/containerd"),
            "{o:?}"
        );
        let crictl =
            "== crictl\nVersion:  0.1.0\nRuntimeName:  containerd\nRuntimeVersion:  v2.1.4\nRuntimeApiVersion:  v1\n";
        let good = GOOD.replace(
            "== exe\n/usr/bin/containerd\n== crictl\nabsent\n",
            &format!("== exe\n/usr/local/bin/containerd\n{crictl}"),
        );
        let o = judge("n", &net(), &ours, &good);
        assert!(o.status == crate::verify::report::Status::Pass, "{o:?}");
        assert!(o.evidence.contains("crictl: CRI v1, runtime v2.1.4"), "{o:?}");
        let broken = good.replace("RuntimeApiVersion:  v1\n", "");
        assert!(judge("n", &net(), &ours, &broken).evidence.contains("crictl version: "), "no CRI answer is a failure");
        let no_cni = good.replace("portmap CNI portmap plugin v1.1.1", "portmap missing");
        assert!(
            judge("n", &net(), &ours, &no_cni)
                .evidence
                .contains("CNI plugins missing in /opt/cni/bin: portmap missing")
        );
    }
}
