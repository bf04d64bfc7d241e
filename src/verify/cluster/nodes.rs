//! `cluster.nodes-ready`: every inventory host that runs a kubelet has registered a Node
//! of its name (the kubelet runs without --hostname-override) whose Ready condition is True.

use serde_json::Value;

use super::{NODES_READY, api_failure, title};
use crate::inventory::Inventory;
use crate::kube::api::ApiResponse;
use crate::verify::report::{CheckResult, HostOutcome, Status};

pub const PATH: &str = "/api/v1/nodes";

/// Pure: the check from the answer to GET /api/v1/nodes (unit-tested on real-shaped lists).
pub fn judge(inv: &Inventory, r: anyhow::Result<ApiResponse>) -> CheckResult {
    let list = match super::json_ok(PATH, r) {
        Ok(v) => v,
        Err(why) => return api_failure(NODES_READY, why),
    };
    let Some(items) = list["items"].as_array() else {
        return api_failure(NODES_READY, format!("GET {PATH}: the answer is not a NodeList"));
    };
    let name = |n: &Value| n["metadata"]["name"].as_str().unwrap_or_default().to_string();
    let mut outcomes: Vec<HostOutcome> = inv
        .hosts
        .iter()
        .filter(|h| h.runs_kubelet())
        .map(|h| match items.iter().find(|n| name(n) == h.name) {
            None => HostOutcome::fail(&h.name, "no Node of this name: its kubelet has not registered"),
            Some(node) => ready(&h.name, node),
        })
        .collect();
    // A Node the inventory does not know (a host removed from it, or someone else's kubelet
    // joined with a certificate of this CA): worth a look, not a broken cluster.
    for n in items.iter().filter(|n| inv.host(&name(n)).is_none_or(|h| !h.runs_kubelet())) {
        outcomes.push(HostOutcome::new(&name(n), Status::Warn, "a Node that is not a kubelet host of the inventory"));
    }
    CheckResult::from_hosts(NODES_READY, title(NODES_READY), outcomes)
}

fn ready(host: &str, node: &Value) -> HostOutcome {
    let conditions = node["status"]["conditions"].as_array().map(Vec::as_slice).unwrap_or_default();
    let Some(c) = conditions.iter().find(|c| c["type"] == "Ready") else {
        return HostOutcome::fail(host, "no Ready condition yet");
    };
    let field = |k: &str| c[k].as_str().unwrap_or_default();
    let version = node["status"]["nodeInfo"]["kubeletVersion"].as_str().unwrap_or("?");
    if field("status") == "True" {
        HostOutcome::pass(host, format!("Ready (kubelet {version})"))
    } else {
        HostOutcome::fail(host, format!("Ready={}: {}: {}", field("status"), field("reason"), field("message")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// inventories/example-ha.toml: cp1..cp3 (control plane + etcd), worker1, worker2.
    fn ha() -> Inventory {
        toml::from_str(include_str!("../../../inventories/example-ha.toml")).unwrap()
    }

    /// A Node as kube-apiserver returns it (fields trimmed to those around the conditions).
    fn node(name: &str, status: &str, reason: &str, message: &str) -> Value {
        serde_json::json!({
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
            "status": {
                "conditions": [
                    {"type": "MemoryPressure", "status": "False", "reason": "KubeletHasSufficientMemory",
                     "message": "kubelet has sufficient memory available"},
                    {"type": "Ready", "status": status, "reason": reason, "message": message,
                     "lastHeartbeatTime": "2026-12-05T20:00:00Z", "lastTransitionTime": "2026-12-05T19:58:00Z"}
                ],
                "nodeInfo": {"kubeletVersion": "v1.32.3", "containerRuntimeVersion": "containerd://1.6.20"}
            }
        })
    }

    fn list(nodes: Vec<Value>) -> anyhow::Result<ApiResponse> {
        let body = serde_json::json!({"kind": "NodeList", "apiVersion": "v1", "metadata": {"resourceVersion": "1"}, "items": nodes});
        Ok(ApiResponse { status: 200, body: serde_json::to_vec(&body).unwrap() })
    }

    fn names(inv: &Inventory) -> Vec<String> {
        inv.hosts.iter().filter(|h| h.runs_kubelet()).map(|h| h.name.clone()).collect()
    }

    const READY: (&str, &str, &str) = ("True", "KubeletReady", "kubelet is posting ready status");

    #[test]
    fn every_kubelet_host_ready_passes() {
        let inv = ha();
        let all = names(&inv).iter().map(|n| node(n, READY.0, READY.1, READY.2)).collect();
        let r = judge(&inv, list(all));
        assert_eq!(r.status, Status::Pass, "{r:?}");
        assert_eq!(r.per_host.len(), 5);
        assert!(r.evidence.contains("Ready (kubelet v1.32.3)"), "{r:?}");
    }

    #[test]
    fn not_ready_unknown_and_missing_nodes_fail_with_their_reasons() {
        let inv = ha();
        let hosts = names(&inv);
        let mut nodes: Vec<Value> = hosts.iter().map(|n| node(n, READY.0, READY.1, READY.2)).collect();
        nodes[1] = node(
            &hosts[1],
            "False",
            "KubeletNotReady",
            "container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady",
        );
        nodes[2] = node(&hosts[2], "Unknown", "NodeStatusUnknown", "Kubelet stopped posting node status.");
        nodes.pop();
        let r = judge(&inv, list(nodes));
        assert_eq!(r.status, Status::Fail);
        assert_eq!(r.hosts, [hosts[1].clone(), hosts[2].clone(), hosts[4].clone()]);
        assert!(r.evidence.contains("Ready=False: KubeletNotReady: container runtime network not ready"), "{r:?}");
        assert!(r.evidence.contains("Ready=Unknown: NodeStatusUnknown: Kubelet stopped posting"), "{r:?}");
        assert!(r.evidence.contains("its kubelet has not registered"), "{r:?}");
    }

    #[test]
    fn extra_nodes_warn_and_api_errors_fail() {
        let inv = ha();
        let mut nodes: Vec<Value> = names(&inv).iter().map(|n| node(n, READY.0, READY.1, READY.2)).collect();
        nodes.push(node("stray", READY.0, READY.1, READY.2));
        let r = judge(&inv, list(nodes));
        assert!(r.status == Status::Warn && r.hosts == ["stray"], "{r:?}");
        let forbidden = ApiResponse {
            status: 403,
            body: br#"{"kind":"Status","status":"Failure","message":"nodes is forbidden: User \"x\" cannot list resource \"nodes\"","reason":"Forbidden","code":403}"#.to_vec(),
        };
        let r = judge(&inv, Ok(forbidden));
        assert!(r.status == Status::Fail && r.evidence.contains("HTTP 403 Forbidden: nodes is forbidden"), "{r:?}");
        let down = judge(&inv, Err(anyhow::anyhow!("cannot connect to 10.0.0.10:6443: connection refused")));
        assert!(down.status == Status::Fail && down.evidence.contains("connection refused"), "{down:?}");
    }
}
