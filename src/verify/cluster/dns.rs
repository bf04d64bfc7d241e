//! `cluster.dns`: the CoreDNS Deployment apply creates has pods available (a warning
//! below its desired count), and its Service holds the ClusterIP every kubelet writes
//! into pods' resolv.conf. Names, paths and both desired values come from the rendered
//! templates/coredns.yaml (kube::cluster_dns), never from strings repeated here.

use serde_json::Value;

use super::{DNS, api_failure, json_ok, title};
use crate::kube::api::ApiResponse;
use crate::kube::objects::ApiObject;
use crate::verify::report::{CheckResult, Status};

/// The Deployment and the Service of the rendered CoreDNS objects.
pub fn wanted(objects: &[ApiObject]) -> anyhow::Result<(&ApiObject, &ApiObject)> {
    let find = |kind: &str| {
        objects.iter().find(|o| o.kind == kind).ok_or_else(|| anyhow::anyhow!("the CoreDNS template has no {kind}"))
    };
    Ok((find("Deployment")?, find("Service")?))
}

/// Pure: the check from the answers to GET on the Deployment's and the Service's paths.
pub fn judge(
    deployment: &ApiObject,
    service: &ApiObject,
    got_deployment: anyhow::Result<ApiResponse>,
    got_service: anyhow::Result<ApiResponse>,
) -> CheckResult {
    let (d, s) = match (json_ok(&deployment.path, got_deployment), json_ok(&service.path, got_service)) {
        (Ok(d), Ok(s)) => (d, s),
        (Err(why), _) | (_, Err(why)) => return api_failure(DNS, why),
    };
    let desired = deployment.body["spec"]["replicas"].as_u64().unwrap_or(1);
    let count = |v: &Value| v.as_u64().unwrap_or(0);
    let (available, ready) = (count(&d["status"]["availableReplicas"]), count(&d["status"]["readyReplicas"]));
    let want_ip = service.body["spec"]["clusterIP"].as_str().unwrap_or_default();
    let got_ip = s["spec"]["clusterIP"].as_str().unwrap_or("none");
    let pods = format!("{} {}: {available}/{desired} available ({ready} ready)", deployment.kind, deployment.name);
    let svc = format!("Service {} at {got_ip}", service.name);
    let mut bad = Vec::new();
    if available == 0 {
        bad.push(format!("{pods}{}", reason(&d)));
    }
    if got_ip != want_ip {
        bad.push(format!("{svc}, the kubelets' clusterDNS is {want_ip}"));
    }
    let (status, evidence) = if !bad.is_empty() {
        (Status::Fail, bad.join("; "))
    } else if available < desired {
        (Status::Warn, format!("warning: {pods}{}; {svc}", reason(&d)))
    } else {
        (Status::Pass, format!("{pods}; {svc}"))
    };
    CheckResult::cluster(DNS, title(DNS), status, evidence)
}

/// The Deployment's Available (or Progressing) condition when it is not True: why pods
/// are missing (ReplicaSet quota, MinimumReplicasUnavailable, ...).
fn reason(d: &Value) -> String {
    let conditions = d["status"]["conditions"].as_array().map(Vec::as_slice).unwrap_or_default();
    conditions
        .iter()
        .find(|c| {
            ["Available", "Progressing", "ReplicaFailure"].contains(&c["type"].as_str().unwrap_or(""))
                && c["status"] != "True"
        })
        .map(|c| format!(" ({}: {})", c["reason"].as_str().unwrap_or(""), c["message"].as_str().unwrap_or("")))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::Inventory;
    use crate::kube::cluster_dns::TEMPLATE;
    use crate::kube::objects::render;
    use crate::render::Templates;

    fn objects() -> Vec<ApiObject> {
        let inv: Inventory = toml::from_str(include_str!("../../../inventories/example-ha.toml")).unwrap();
        render(&Templates::embedded().unwrap(), TEMPLATE, &inv).unwrap()
    }

    fn ok(v: Value) -> anyhow::Result<ApiResponse> {
        Ok(ApiResponse { status: 200, body: serde_json::to_vec(&v).unwrap() })
    }

    /// A Deployment's status as the controller writes it.
    fn deployment(available: u64, ready: u64) -> anyhow::Result<ApiResponse> {
        let available_cond = if available > 0 {
            serde_json::json!({"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable",
                               "message": "Deployment has minimum availability."})
        } else {
            serde_json::json!({"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable",
                               "message": "Deployment does not have minimum availability."})
        };
        ok(serde_json::json!({
            "kind": "Deployment", "apiVersion": "apps/v1",
            "metadata": {"name": "coredns", "namespace": "kube-system", "generation": 1},
            "spec": {"replicas": 2},
            "status": {"observedGeneration": 1, "replicas": 2, "updatedReplicas": 2, "readyReplicas": ready,
                       "availableReplicas": available, "unavailableReplicas": 2 - available,
                       "conditions": [available_cond,
                           {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable",
                            "message": "ReplicaSet \"coredns-6d4b75cb6d\" has successfully progressed."}]}
        }))
    }

    fn service(ip: &str) -> anyhow::Result<ApiResponse> {
        ok(serde_json::json!({"kind": "Service", "apiVersion": "v1",
            "metadata": {"name": "kube-dns", "namespace": "kube-system"},
            "spec": {"type": "ClusterIP", "clusterIP": ip, "clusterIPs": [ip],
                     "ports": [{"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53}]}}))
    }

    #[test]
    fn coredns_available_at_the_kubelets_address() {
        let objects = objects();
        let (d, s) = wanted(&objects).unwrap();
        let ip = s.body["spec"]["clusterIP"].as_str().unwrap().to_string();
        let r = judge(d, s, deployment(2, 2), service(&ip));
        assert_eq!(r.status, Status::Pass, "{r:?}");
        assert_eq!(r.evidence, format!("Deployment coredns: 2/2 available (2 ready); Service kube-dns at {ip}"));
        let one = judge(d, s, deployment(1, 1), service(&ip));
        assert!(one.status == Status::Warn && one.evidence.contains("1/2 available"), "{one:?}");
        let none = judge(d, s, deployment(0, 0), service(&ip));
        assert!(none.status == Status::Fail && none.evidence.contains("MinimumReplicasUnavailable"), "{none:?}");
        let elsewhere = judge(d, s, deployment(2, 2), service("10.32.0.99"));
        assert!(elsewhere.status == Status::Fail && elsewhere.evidence.contains(&format!("clusterDNS is {ip}")));
    }

    #[test]
    fn a_missing_deployment_fails_naming_it() {
        let objects = objects();
        let (d, s) = wanted(&objects).unwrap();
        let not_found = ApiResponse {
            status: 404,
            body: br#"{"kind":"Status","apiVersion":"v1","status":"Failure","message":"deployments.apps \"coredns\" not found","reason":"NotFound","code":404}"#.to_vec(),
        };
        let r = judge(d, s, Ok(not_found), service("10.32.0.10"));
        assert!(r.status == Status::Fail && r.evidence.contains("deployments.apps \"coredns\" not found"), "{r:?}");
    }
}
