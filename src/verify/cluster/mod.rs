//! The cluster as the Kubernetes API sees it, asked with the admin identity:
//! - `cluster.nodes-ready`: every kubelet host is a Node with Ready=True (nodes.rs);
//! - `cluster.dns`: CoreDNS has pods available behind the kubelets' clusterDNS (dns.rs);
//! - `cluster.smoke`: a pod serves through a Service and DNS resolves, as Kubernetes the
//!   Hard Way's smoke test, in a temporary namespace deleted afterwards (smoke.rs).
//!
//! Without a kube-apiserver (artifacts.kubernetes = "skip") they are skipped, as rbac.rs's
//! are; with one that does not answer they fail, naming the endpoint.

pub mod dns;
pub mod nodes;
pub mod smoke;

use std::time::Duration;

use hyper::Method;
use serde_json::Value;

use super::material::Material;
use super::rbac::NO_APISERVER;
use super::report::{CheckResult, Status, Titles};
use crate::inventory::{Inventory, KubernetesSource};
use crate::kube::api::{ApiClient, ApiResponse};
use crate::kube::cluster_dns;
use crate::kube::objects::render;
use crate::render::Templates;

pub const NODES_READY: &str = "cluster.nodes-ready";
pub const DNS: &str = "cluster.dns";
pub const SMOKE: &str = "cluster.smoke";

const TITLES: Titles = Titles(&[
    (NODES_READY, "every kubelet host is a Node with Ready=True"),
    (DNS, "CoreDNS has pods available, its Service at the kubelets' clusterDNS"),
    (SMOKE, "a pod serves through a Service, DNS resolves kubernetes.default (smoke test)"),
]);

fn title(check: &str) -> &'static str {
    TITLES.of(check)
}

/// The three checks, skipped without a kube-apiserver.
pub async fn run(inv: &Inventory, material: &Material, limit: Duration) -> Vec<CheckResult> {
    if let Some(skipped) = skipped(inv) {
        return skipped;
    }
    let endpoint = format!("https://{}:{}", inv.cluster.api_endpoint, inv.cluster.api_port);
    let api = match material.admin.as_ref() {
        None => Err(anyhow::anyhow!("the admin certificate is not in the state directory")),
        Some(admin) => ApiClient::new(
            &inv.cluster.api_endpoint,
            inv.cluster.api_port,
            &material.cluster_ca_pem,
            Some(admin),
            limit,
        ),
    };
    let api = match api {
        Ok(a) => a,
        Err(e) => {
            return TITLES
                .0
                .iter()
                .map(|(c, t)| CheckResult::cluster(c, t, Status::Fail, format!("{e:#}")).with_target(endpoint.clone()))
                .collect();
        }
    };
    let get = |path: String| {
        let api = &api;
        async move { api.send(Method::GET, &path, "application/json", None).await }
    };
    // Parsed once for the CoreDNS objects and the smoke test.
    let templates = Templates::embedded();
    let templates = templates.as_ref().map_err(|e| format!("{e:#}"));
    let nodes = async { nodes::judge(inv, get(nodes::PATH.to_string()).await) };
    let dns = async {
        let objects =
            match templates.clone().and_then(|t| render(t, cluster_dns::TEMPLATE, inv).map_err(|e| format!("{e:#}"))) {
                Ok(o) => o,
                Err(e) => return api_failure(DNS, e),
            };
        match dns::wanted(&objects) {
            Ok((d, s)) => {
                let (got_d, got_s) = tokio::join!(get(d.path.clone()), get(s.path.clone()));
                dns::judge(d, s, got_d, got_s)
            }
            Err(e) => api_failure(DNS, format!("{e:#}")),
        }
    };
    let smoke = smoke::run(&api, inv, templates.clone());
    let (nodes, dns, smoke) = tokio::join!(nodes, dns, smoke);
    [nodes, dns, smoke].into_iter().map(|c| c.with_target(endpoint.clone())).collect()
}

/// Skipped with the reason when no kube-apiserver runs (None: there is one to ask).
pub fn skipped(inv: &Inventory) -> Option<Vec<CheckResult>> {
    (inv.artifacts.kubernetes == KubernetesSource::Skip).then(|| TITLES.skipped(NO_APISERVER))
}

fn api_failure(check: &str, evidence: String) -> CheckResult {
    CheckResult::cluster(check, title(check), Status::Fail, evidence)
}

/// The JSON body of a successful GET, or why there is none (the check's evidence).
fn json_ok(path: &str, r: anyhow::Result<ApiResponse>) -> Result<Value, String> {
    let r = r.map_err(|e| format!("could not ask the API: {e:#}"))?;
    if r.status != 200 {
        return Err(format!("GET {path}: {}", r.describe()));
    }
    serde_json::from_slice(&r.body).map_err(|_| format!("GET {path}: the answer is not JSON"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_kube_apiserver_all_three_are_skipped_saying_why() {
        let mut inv: Inventory = toml::from_str(include_str!("../../../inventories/example-ha.toml")).unwrap();
        assert!(skipped(&inv).is_none(), "the example runs Kubernetes");
        inv.artifacts.kubernetes = KubernetesSource::Skip;
        let s = skipped(&inv).unwrap();
        assert_eq!(s.iter().map(|c| c.check.as_str()).collect::<Vec<_>>(), [NODES_READY, DNS, SMOKE]);
        assert!(s.iter().all(|c| c.status == Status::Skip && c.evidence == NO_APISERVER));
    }

    /// A kube-apiserver that does not answer (nothing listens on its port): all three
    /// fail, saying so, with the endpoint as their target; none passes for lack of data.
    #[tokio::test]
    async fn an_unreachable_kube_apiserver_fails_all_three_naming_the_endpoint() {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ha.toml");
        let text = include_str!("../../../inventories/example-ha.toml")
            .replace("api_endpoint = \"k8s-api.prod.example.com\"", "api_endpoint = \"127.0.0.1\"")
            .replace("api_port = 6443", &format!("api_port = {port}"));
        std::fs::write(&path, text).unwrap();
        let loaded = crate::inventory::load(&path).unwrap();
        crate::pki::ensure(&loaded.inventory, &loaded.state_dir()).unwrap();
        let material = Material::load(&loaded).unwrap();
        let results = run(&loaded.inventory, &material, Duration::from_secs(2)).await;
        assert_eq!(results.len(), 3);
        for r in &results {
            assert_eq!(r.status, Status::Fail, "{r:?}");
            assert_eq!(r.target.as_deref(), Some(format!("https://127.0.0.1:{port}").as_str()));
            assert!(r.evidence.contains("refused") || r.evidence.contains("cannot connect"), "{r:?}");
            assert!(!r.evidence.contains("deleted"), "nothing was made, nothing to delete: {r:?}");
        }
    }
}
