//! `runtime.pods`: on every host with the runtime tier, what pods need from the node:
//! containerd's CRI answers as the kubelet will ask it (CRI v1, RuntimeReady; NetworkReady
//! false is a warning: the CNI config is not loaded yet), runc and the bridge/host-local
//! CNI plugins are where the runtime source puts them (their versions), the running
//! containerd is the source's binary (`/proc/<MainPID>/exe`: a package's daemon left
//! running after a switch to "download" would answer too), the CNI config's subnet is the node's slice,
//! the kernel routes every other node's slice via that node's address, and pod egress is
//! masqueraded while pod-to-pod traffic is not (the nat chain of
//! templates/pod-masquerade.rules).
//!
//! CRI is asked over gRPC through an SSH channel to containerd's socket (src/cri/). sshd
//! opens that socket as the login user and it is root-only, so for a sudo login (or an
//! sshd forbidding the channel) `crictl` under sudo answers instead when the host has it,
//! else `ctr version` (containerd's own API: proves the daemon, not its CRI plugin); the
//! evidence says which path was taken and why.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::future::join_all;

use super::report::{CheckResult, HostOutcome, Status};
use crate::artifacts::Binary;
use crate::cri::{self, CriAnswer, CriError};
use crate::inventory::Inventory;
use crate::inventory::pod_slices::{self, NodeSlice};
use crate::render::paths;
use crate::render::pod_network::{self, PodNetworkCtx};
use crate::render::runtime::RuntimeBins;
use crate::ssh::{Session, SshError};

pub const RUNTIME_PODS: &str = "runtime.pods";

/// What every node is held to: where the runtime source puts the binaries, the pod range.
#[derive(Debug, Clone)]
pub struct Expected {
    pub bins: RuntimeBins,
    pub pod_cidr: ipnet::IpNet,
}

impl Expected {
    pub fn of(inv: &Inventory) -> Expected {
        Expected { bins: RuntimeBins::of(inv.artifacts.runtime_source()), pod_cidr: inv.cluster.pod_cidr }
    }
}

/// How CRI was asked on a host, before the script runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CriProbe {
    /// gRPC through the SSH channel answered.
    Answered(CriAnswer),
    /// The channel opened but CRI did not answer properly (the plugin is off, ...).
    Failed(String),
    /// Not asked over SSH, and why: the script tries crictl, else ctr.
    NotAsked(String),
}

/// CRI through SSH when the login may open the root-only socket, else the reason not to.
async fn probe(session: &Session, limit: Duration) -> CriProbe {
    if session.uses_sudo() {
        return CriProbe::NotAsked(format!("login is '{}', the socket is root-only", session.user()));
    }
    match cri::ask(session, paths::CONTAINERD_SOCKET, limit).await {
        Ok(answer) => CriProbe::Answered(answer),
        // The host name is the outcome's already.
        Err(CriError::NoChannel(SshError::StreamLocalRefused { reason, .. })) => CriProbe::NotAsked(reason),
        Err(CriError::NoChannel(e)) => CriProbe::NotAsked(e.to_string()),
        Err(e) => CriProbe::Failed(e.to_string()),
    }
}

/// The one script: sections between `== name` markers, read by `judge`; crictl (under
/// the sudo every command runs with) only when CRI was not asked over SSH. runc and the
/// CNI plugins are run from where the runtime source puts them, not from PATH.
fn script(expected: &Expected, crictl: bool) -> String {
    let ipv6 = expected.pod_cidr.addr().is_ipv6();
    let crictl = if crictl {
        format!(
            "echo '== crictl'; if command -v crictl >/dev/null 2>&1; then \
             crictl --runtime-endpoint unix://{socket} version 2>&1; \
             echo '== crictl-info'; crictl --runtime-endpoint unix://{socket} info 2>&1; \
             else echo '{NO_CRICTL}'; fi\n",
            socket = paths::CONTAINERD_SOCKET
        )
    } else {
        String::new()
    };
    format!(
        "PATH=/usr/local/bin:/usr/bin:/usr/sbin:/bin:/sbin\n\
         echo '== exe'; readlink /proc/$(systemctl show -p MainPID --value {unit})/exe 2>&1\n\
         echo '== ctr'; ctr --address {socket} version 2>&1\n\
         {crictl}\
         echo '== runc'; {runc} --version 2>&1 | head -n 1\n\
         echo '== cni'; for p in {plugins}; do [ -x {bin}/$p ] && echo \"$p $({bin}/$p 2>&1 | head -n 1)\" || echo \"$p missing\"; done\n\
         echo '== conflist'; cat {conflist} 2>&1\n\
         echo '== routes'; ip {family} route show 2>&1\n\
         echo '== masquerade'; {iptables} -w -t nat -S {chain} 2>&1; {iptables} -w -t nat -S POSTROUTING 2>&1\n",
        family = if ipv6 { "-6" } else { "-4" },
        iptables = crate::render::runtime::iptables_for(&expected.pod_cidr),
        chain = crate::render::runtime::MASQUERADE_CHAIN,
        socket = paths::CONTAINERD_SOCKET,
        unit = crate::render::runtime::CONTAINERD_UNIT,
        runc = expected.bins.runc,
        bin = expected.bins.cni_bin_dir,
        plugins = Binary::CNI_PLUGINS.map(|b| b.name()).join(" "),
        conflist = paths::CNI_CONFLIST,
    )
}

const NO_CRICTL: &str = "no crictl on the host";

/// None when no host has the runtime tier (the check is not run). `limit` bounds each
/// CRI call.
pub async fn run(inv: &Inventory, sessions: &BTreeMap<String, Session>, limit: Duration) -> Option<CheckResult> {
    if inv.artifacts.runtime_source() == crate::inventory::RuntimeSource::Skip {
        return None;
    }
    let slices: Vec<NodeSlice> = pod_slices::of_inventory(inv).ok()?;
    if slices.is_empty() {
        return None;
    }
    let expected = Expected::of(inv);
    let outcomes = join_all(slices.iter().map(|s| {
        let (slices, expected) = (&slices, &expected);
        async move {
            let Some(net) = pod_network::for_host(slices, &s.host) else {
                return HostOutcome::fail(&s.host, "no pod slice");
            };
            let Some(session) = sessions.get(&s.host) else {
                return HostOutcome::fail(&s.host, "no SSH session");
            };
            check_host(session, &net, expected, limit).await
        }
    }))
    .await;
    Some(CheckResult::from_hosts(
        RUNTIME_PODS,
        "containerd's CRI answers and is ready, runc and the CNI plugins are there, the CNI subnet is the node's slice, \
         routes to every other slice",
        outcomes,
    ))
}

/// One host's part: CRI asked over SSH (or why not), then the script, judged.
pub async fn check_host(session: &Session, net: &PodNetworkCtx, expected: &Expected, limit: Duration) -> HostOutcome {
    let cri = probe(session, limit).await;
    // exec runs as root (sudo -n for a non-root login): ctr and crictl need the root-only socket.
    let script = script(expected, matches!(cri, CriProbe::NotAsked(_)));
    match session.exec(&script, None).await {
        Ok(out) => judge(session.host(), net, expected, &out.stdout_text(), &cri),
        Err(e) => HostOutcome::fail(session.host(), format!("reading the runtime: {e:#}")),
    }
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

/// Pure: the host's outcome from the CRI probe and the script's output (unit-tested).
pub fn judge(host: &str, net: &PodNetworkCtx, expected: &Expected, text: &str, cri: &CriProbe) -> HostOutcome {
    let s = sections(text);
    let get = |k: &str| s.get(k).cloned().unwrap_or_default();
    let mut bad = Vec::new();
    let mut good = Vec::new();
    let mut warn = Vec::new();
    let bins = &expected.bins;
    match get("exe").first().map(|l| l.trim().trim_end_matches(" (deleted)")) {
        Some(exe) if exe == bins.containerd => {}
        other => bad.push(format!(
            "{} runs {}, not {}",
            crate::render::runtime::CONTAINERD_UNIT,
            other.filter(|e| !e.is_empty()).unwrap_or("nothing"),
            bins.containerd
        )),
    }
    let crictl = || CriAnswer::from_crictl(&get("crictl").join("\n"), &get("crictl-info").join("\n"));
    match (cri, crictl()) {
        (CriProbe::Answered(a), _) => judge_cri(a, "", &mut good, &mut bad, &mut warn),
        (CriProbe::NotAsked(why), Some(a)) => {
            judge_cri(&a, &format!(" (crictl on the host; not over SSH: {why})"), &mut good, &mut bad, &mut warn)
        }
        (CriProbe::NotAsked(why), None) => {
            let said = get("crictl").join(" ");
            let also = if said.trim() == NO_CRICTL {
                format!(", {NO_CRICTL}")
            } else {
                format!(", crictl did not answer: {}", said.trim())
            };
            judge_ctr(&get("ctr"), &format!(" (CRI not asked: {why}{also})"), &mut good, &mut bad);
        }
        (CriProbe::Failed(e), _) => {
            bad.push(format!("containerd's CRI does not answer on {}: {e}", paths::CONTAINERD_SOCKET));
            judge_ctr(&get("ctr"), "", &mut good, &mut bad);
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
    let pod_cidr = expected.pod_cidr.to_string();
    match masquerade(&get("masquerade"), &pod_cidr) {
        Ok(()) => good.push(format!("egress masqueraded except to {pod_cidr}")),
        Err(why) => bad.push(why),
    }
    if !bad.is_empty() {
        // What is fine too, so that one missing part does not hide what was proven.
        let fine = if good.is_empty() { String::new() } else { format!(" (fine: {})", good.join("; ")) };
        HostOutcome::fail(host, format!("{}{fine}", bad.join("; ")))
    } else if !warn.is_empty() {
        HostOutcome::new(host, Status::Warn, format!("warning: {}; {}", warn.join("; "), good.join("; ")))
    } else {
        HostOutcome::pass(host, good.join("; "))
    }
}

fn judge_cri(a: &CriAnswer, via: &str, good: &mut Vec<String>, bad: &mut Vec<String>, warn: &mut Vec<String>) {
    let failures = a.failures();
    if failures.is_empty() {
        good.push(format!("{}{via}", a.summary()));
    } else {
        bad.push(format!("{}{via}: {}", a.summary(), failures.join(", ")));
    }
    warn.extend(a.network_not_ready());
}

/// `ctr version` prints Client and Server blocks; the server's Version proves the socket answers.
fn judge_ctr(ctr: &[&str], note: &str, good: &mut Vec<String>, bad: &mut Vec<String>) {
    let server = ctr.iter().skip_while(|l| !l.starts_with("Server:")).find_map(|l| l.trim().strip_prefix("Version:"));
    match server {
        Some(v) => good.push(format!("containerd {} answers{note}", v.trim())),
        None => {
            bad.push(format!("containerd does not answer on {}: {}", paths::CONTAINERD_SOCKET, ctr.join(" ").trim()))
        }
    }
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

    fn debian() -> Expected {
        Expected {
            bins: RuntimeBins::of(crate::inventory::RuntimeSource::Preinstalled),
            pod_cidr: "10.200.0.0/16".parse().unwrap(),
        }
    }

    const GOOD: &str = "== exe\n/usr/bin/containerd\n== ctr\nClient:\n  Version:  1.6.20~ds1\n\nServer:\n  Version:  1.6.20~ds1\n  Revision: x\n\
== runc\nrunc version 1.1.5+ds1\n== cni\nbridge CNI bridge plugin v1.1.1\nhost-local CNI host-local plugin v1.1.1\n\
portmap CNI portmap plugin v1.1.1\n== conflist\n{\"plugins\":[{\"type\":\"bridge\",\"ipam\":{\"ranges\":[[{\"subnet\":\"10.200.0.0/24\"}]]}}]}\n\
== routes\ndefault via 10.0.2.2 dev eth0\n10.200.1.0/24 via 192.168.56.12 dev eth1 proto static\n\
== masquerade\n-N PROVISION-POD-MASQ\n\
-A PROVISION-POD-MASQ -d 10.200.0.0/16 -m comment --comment \"pod to pod: no translation\" -j RETURN\n\
-A PROVISION-POD-MASQ -d 224.0.0.0/4 -j RETURN\n\
-A PROVISION-POD-MASQ -m comment --comment \"pod egress: leaves with the node address\" -j MASQUERADE\n\
-P POSTROUTING ACCEPT\n-A POSTROUTING -s 10.200.0.0/16 -m comment --comment provision-pod-egress -j PROVISION-POD-MASQ\n";

    fn ready() -> CriAnswer {
        CriAnswer::from_crictl(
            "RuntimeName: containerd\nRuntimeVersion: 1.6.20~ds1\nRuntimeApiVersion: v1\n",
            r#"{"status":{"conditions":[{"type":"RuntimeReady","status":true},{"type":"NetworkReady","status":true}]}}"#,
        )
        .unwrap()
    }

    const SUDO: &str = "login is 'vagrant', the socket is root-only";

    #[test]
    fn a_node_ready_for_pods_passes_with_its_figures() {
        let o = judge("node1", &net(), &debian(), GOOD, &CriProbe::Answered(ready()));
        assert!(o.status == Status::Pass, "{o:?}");
        assert!(o.evidence.starts_with("CRI v1 containerd 1.6.20~ds1, RuntimeReady, NetworkReady; runc"), "{o:?}");
        assert!(o.evidence.contains("1 pod route(s)"), "{o:?}");
    }

    /// Without CRI over SSH: crictl's answer when the host has it, else ctr's, each saying why.
    #[test]
    fn the_fallbacks_say_which_path_answered_and_why() {
        let no_crictl = format!("{GOOD}== crictl\n{NO_CRICTL}\n");
        let o = judge("n", &net(), &debian(), &no_crictl, &CriProbe::NotAsked(SUDO.into()));
        assert!(o.status == Status::Pass, "{o:?}");
        assert!(
            o.evidence.contains(
                "containerd 1.6.20~ds1 answers (CRI not asked: login is 'vagrant', the socket is root-only, no crictl on the host)"
            ),
            "{o:?}"
        );
        let crictl = format!(
            "{GOOD}== crictl\nVersion:  0.1.0\nRuntimeName:  containerd\nRuntimeVersion:  1.6.20~ds1\nRuntimeApiVersion:  v1\n\
             == crictl-info\n{{\"status\":{{\"conditions\":[{{\"type\":\"RuntimeReady\",\"status\":true}},\
             {{\"type\":\"NetworkReady\",\"status\":true}}]}}}}\n"
        );
        let o = judge("n", &net(), &debian(), &crictl, &CriProbe::NotAsked(SUDO.into()));
        assert!(o.evidence.starts_with("CRI v1 containerd 1.6.20~ds1, RuntimeReady, NetworkReady (crictl on the host; not over SSH: login is 'vagrant'"), "{o:?}");
    }

    #[test]
    fn a_runtime_the_kubelet_cannot_use_fails_and_network_not_ready_warns() {
        let mut a = ready();
        a.conditions[1].ready = false;
        a.conditions[1].reason = "NetworkPluginNotReady".into();
        let o = judge("n", &net(), &debian(), GOOD, &CriProbe::Answered(a.clone()));
        assert!(o.status == Status::Warn && o.evidence.contains("NetworkReady false (NetworkPluginNotReady)"), "{o:?}");
        a.conditions[0].ready = false;
        assert_eq!(judge("n", &net(), &debian(), GOOD, &CriProbe::Answered(a.clone())).status, Status::Fail);
        a = ready();
        a.api_version = "v1alpha2".into();
        assert!(judge("n", &net(), &debian(), GOOD, &CriProbe::Answered(a)).evidence.contains("the kubelet needs v1"));
        let off = CriProbe::Failed("Version answered Unimplemented: unknown service runtime.v1.RuntimeService".into());
        let o = judge("n", &net(), &debian(), GOOD, &off);
        assert!(
            o.status == Status::Fail
                && o.evidence
                    .contains("CRI does not answer on /run/containerd/containerd.sock: Version answered Unimplemented"),
            "{o:?}"
        );
    }

    #[test]
    fn each_missing_part_is_named() {
        let judge = |text: &str| judge("n", &net(), &debian(), text, &CriProbe::NotAsked(SUDO.into()));
        let no_server = GOOD.replace("Server:\n  Version:  1.6.20~ds1\n", "ctr: failed to dial\n");
        assert!(judge(&no_server).evidence.contains("containerd does not answer"));
        let other_slice = GOOD.replace("\"10.200.0.0/24\"", "\"10.200.9.0/24\"");
        assert!(judge(&other_slice).evidence.contains("subnet 10.200.9.0/24, the node's slice is 10.200.0.0/24"));
        let no_route = GOOD.replace("10.200.1.0/24 via 192.168.56.12 dev eth1 proto static\n", "");
        assert!(judge(&no_route).evidence.contains("no route to 10.200.1.0/24 via 192.168.56.12 (node2)"));
        let no_plugin = GOOD.replace("portmap CNI portmap plugin v1.1.1", "portmap missing");
        let o = judge(&no_plugin);
        assert!(o.status == Status::Fail && o.evidence.contains("portmap missing"), "{o:?}");
        let no_jump = GOOD.replace("-A POSTROUTING -s 10.200.0.0/16", "-A POSTROUTING -s 10.9.0.0/16");
        assert!(judge(&no_jump).evidence.contains("no POSTROUTING jump from 10.200.0.0/16"));
        let no_exempt =
            GOOD.replace("-d 10.200.0.0/16 -m comment --comment \"pod to pod: no translation\" -j RETURN", "");
        assert!(judge(&no_exempt).evidence.contains("pod-to-pod traffic would be translated"));
        let no_masq = GOOD.replace(
            "-A PROVISION-POD-MASQ -m comment --comment \"pod egress: leaves with the node address\" -j MASQUERADE",
            "",
        );
        assert!(judge(&no_masq).evidence.contains("masquerades nothing"));
    }

    #[test]
    fn a_runtime_provision_installs_is_judged_at_its_paths() {
        let ours = Expected { bins: RuntimeBins::of(crate::inventory::RuntimeSource::Download), ..debian() };
        let not_asked = CriProbe::NotAsked(SUDO.into());
        // The package's daemon still running after a switch: named.
        let o = judge("n", &net(), &ours, GOOD, &CriProbe::Answered(ready()));
        assert!(
            o.evidence.contains("containerd.service runs /usr/bin/containerd, not /usr/local/bin/containerd"),
            "{o:?}"
        );
        let good = GOOD.replace("== exe\n/usr/bin/containerd\n", "== exe\n/usr/local/bin/containerd\n");
        let o = judge("n", &net(), &ours, &good, &CriProbe::Answered(ready()));
        assert!(o.status == Status::Pass, "{o:?}");
        let no_cni = good.replace("portmap CNI portmap plugin v1.1.1", "portmap missing");
        assert!(
            judge("n", &net(), &ours, &no_cni, &not_asked)
                .evidence
                .contains("CNI plugins missing in /opt/cni/bin: portmap missing")
        );
    }
}
