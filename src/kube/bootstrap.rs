//! The bootstrap RBAC against a live kube-apiserver: what the API holds now (plan's
//! facts), and the server-side apply apply runs.
//!
//! Both speak to the kube-apiserver of the first control-plane host, at that host's own
//! address (in the serving certificate's SANs): the inventory's API endpoint may be a
//! load balancer that does not exist yet. The identity is super-admin (system:masters):
//! the binding that lets the admin group act does not exist before this step, which is
//! the one use provision makes of the break-glass identity.

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use super::api::{ApiClient, ApiResponse};
use super::objects::{ApiObject, covers};
use crate::inventory::{Host, Inventory, Role};
use crate::pki::{CertId, Pki};
use crate::plan::facts::HostFacts;

const APISERVER_UNIT: &str = "kube-apiserver.service";

/// What the API holds for one desired object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observed {
    Absent,
    /// Every field provision sets has its value.
    Current,
    /// Present, with a field provision sets changed (or an extra subject, rule, ...).
    Differs,
    /// kube-apiserver does not run yet (a first apply), or could not be asked: apply will
    /// apply it, which is safe either way.
    Unknown(String),
}

/// The bootstrap objects, each with what the API held for it when the plan was made.
#[derive(Debug, Clone)]
pub struct Observation {
    /// The API host (see [`api_host`]): the plan's actions are on it.
    pub host: String,
    pub objects: Vec<(ApiObject, Observed)>,
}

/// The host whose kube-apiserver provision talks to: the first control-plane host.
pub fn api_host(inv: &Inventory) -> Option<&Host> {
    inv.hosts_with(Role::ControlPlane).next()
}

/// A client for `host`'s kube-apiserver as super-admin, trusting only the cluster CA.
pub fn client(inv: &Inventory, pki: &Pki, host: &Host, limit: Duration) -> anyhow::Result<ApiClient> {
    client_as(inv, pki, host, &CertId::SuperAdmin, limit)
}

/// A client for `host`'s kube-apiserver as `identity`, trusting only the cluster CA.
pub fn client_as(inv: &Inventory, pki: &Pki, host: &Host, identity: &CertId, limit: Duration) -> anyhow::Result<ApiClient> {
    let ca = pki.get(&CertId::ClusterCa).context("the cluster CA is missing from the PKI")?;
    let cert = pki.get(identity).with_context(|| format!("the {identity:?} certificate is missing from the PKI"))?;
    ApiClient::new(&host.address.to_string(), inv.cluster.api_port, &ca.cert_pem, Some(cert), limit)
}

/// The plan's facts about `objects` on the API `host`: read only when its kube-apiserver
/// unit is active (`facts`: what preflight saw there); one GET per object, all at once.
pub async fn observe(
    inv: &Inventory,
    pki: &Pki,
    host: &Host,
    facts: Option<&HostFacts>,
    objects: Vec<ApiObject>,
) -> Observation {
    let running = facts.and_then(|f| f.units.get(APISERVER_UNIT)).is_some_and(|u| u.active_state == "active");
    let client = if running {
        client(inv, pki, host, Duration::from_secs(5)).map_err(|e| format!("{e:#}"))
    } else {
        Err(format!("kube-apiserver does not run on {} yet", host.name))
    };
    let observed: Vec<Observed> = match &client {
        Ok(client) => {
            let reads = objects.iter().map(|o| async {
                match client.send(hyper::Method::GET, &o.path, "application/json", None).await {
                    Ok(r) => judge(&r, o),
                    Err(e) => Observed::Unknown(format!("kube-apiserver on {}: {e:#}", host.name)),
                }
            });
            futures::future::join_all(reads).await
        }
        Err(why) => objects.iter().map(|_| Observed::Unknown(why.clone())).collect(),
    };
    Observation { host: host.name.clone(), objects: objects.into_iter().zip(observed).collect() }
}

fn judge(r: &ApiResponse, o: &ApiObject) -> Observed {
    match r.status {
        404 => Observed::Absent,
        200 => match serde_json::from_slice::<serde_json::Value>(&r.body) {
            Ok(actual) if covers(&actual, &o.body) => Observed::Current,
            Ok(_) => Observed::Differs,
            Err(e) => Observed::Unknown(format!("GET {}: the answer is not JSON: {e}", o.path)),
        },
        _ => Observed::Unknown(format!("GET {}: {}", o.path, r.describe())),
    }
}

/// Applies `o` server-side, retrying while kube-apiserver is not ready yet (refused
/// connections, 429, 5xx: it answers before its RBAC caches are warm) until `deadline`.
/// A 4xx is final: retrying would not change it.
pub async fn apply(client: &ApiClient, o: &ApiObject, deadline: Instant) -> anyhow::Result<()> {
    let mut last;
    loop {
        match client.server_side_apply(&o.path, &o.body).await {
            Ok(r) if (200..300).contains(&r.status) => return Ok(()),
            Ok(r) if r.status == 429 || r.status >= 500 => last = r.describe(),
            Ok(r) => bail!("{}", refused(o, &r)),
            Err(e) => last = format!("{e:#}"),
        }
        if Instant::now() >= deadline {
            bail!("{} {}: kube-apiserver did not accept it in time; last answer: {last}", o.kind, o.name);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Why kube-apiserver refused `o` for good (a 4xx), with the way out where one field
/// cannot change once the object exists: deleting is the operator's call, not apply's.
fn refused(o: &ApiObject, r: &ApiResponse) -> String {
    let what = format!("{} {}: {}", o.kind, o.name, r.describe());
    if r.status != 422 {
        return what;
    }
    let ns = o.body.pointer("/metadata/namespace").and_then(|n| n.as_str());
    let (field, delete) = match (o.kind.as_str(), ns) {
        ("ClusterRoleBinding", _) => ("a binding's roleRef", format!("kubectl delete clusterrolebinding {}", o.name)),
        // A changed service_cidr moves the DNS Service's clusterIP.
        ("Service", Some(ns)) => ("a Service's clusterIP", format!("kubectl -n {ns} delete service {}", o.name)),
        ("Deployment", Some(ns)) => {
            ("a Deployment's selector", format!("kubectl -n {ns} delete deployment {}", o.name))
        }
        _ => return what,
    };
    format!("{what} ({field} cannot change: delete it with `{delete}` and apply again)")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object() -> ApiObject {
        ApiObject {
            kind: "ClusterRole".into(),
            name: "r".into(),
            path: "/apis/rbac.authorization.k8s.io/v1/clusterroles/r".into(),
            body: std::sync::Arc::new(json!({"kind": "ClusterRole", "metadata": {"name": "r"}, "rules": []})),
        }
    }

    #[test]
    fn answers_are_judged() {
        let o = object();
        let ok = |body: serde_json::Value| ApiResponse { status: 200, body: body.to_string().into_bytes() };
        assert_eq!(judge(&ApiResponse { status: 404, body: vec![] }, &o), Observed::Absent);
        let current = json!({"kind": "ClusterRole", "metadata": {"name": "r", "uid": "1"}, "rules": []});
        assert_eq!(judge(&ok(current), &o), Observed::Current);
        let changed = json!({"kind": "ClusterRole", "metadata": {"name": "r"}, "rules": [{"verbs": ["*"]}]});
        assert_eq!(judge(&ok(changed), &o), Observed::Differs);
        let forbidden = ApiResponse { status: 403, body: br#"{"kind":"Status","message":"no","code":403}"#.to_vec() };
        assert!(matches!(judge(&forbidden, &o), Observed::Unknown(why) if why.contains("HTTP 403 Forbidden: no")));
    }

    #[test]
    fn immutable_fields_name_the_way_out() {
        let status = br#"{"kind":"Status","message":"field is immutable","code":422}"#;
        let invalid = ApiResponse { status: 422, body: status.to_vec() };
        let service = ApiObject {
            kind: "Service".into(),
            name: "kube-dns".into(),
            path: "/api/v1/namespaces/kube-system/services/kube-dns".into(),
            body: std::sync::Arc::new(json!({"metadata": {"name": "kube-dns", "namespace": "kube-system"}})),
        };
        let why = refused(&service, &invalid);
        assert!(why.contains("field is immutable"), "{why}");
        assert!(why.contains("`kubectl -n kube-system delete service kube-dns` and apply again"), "{why}");
        let binding = ApiObject { kind: "ClusterRoleBinding".into(), ..object() };
        assert!(refused(&binding, &invalid).contains("`kubectl delete clusterrolebinding r`"));
        assert!(!refused(&object(), &invalid).contains("delete it"), "a ClusterRole has no immutable field");
        let forbidden = ApiResponse { status: 403, ..invalid };
        assert!(!refused(&service, &forbidden).contains("delete it"));
    }
}
