//! Cluster objects provision owns: rendered from the templates the phase table names
//! (templates/bootstrap-rbac.yaml, templates/coredns.yaml; one YAML document per object),
//! compared with what the API holds, applied server-side.

use std::sync::Arc;

use anyhow::{Context as _, bail};
use serde::Deserialize as _;
use serde_json::Value;

use crate::inventory::Inventory;
use crate::pki::{ADMIN_GROUP, APISERVER_KUBELET_CLIENT_USER};
use crate::render::Templates;
use crate::render::context::BaseCtx;

pub const TEMPLATE: &str = "bootstrap-rbac.yaml";
/// CoreDNS and its `kube-dns` Service (see `cluster_dns`).
pub const COREDNS_TEMPLATE: &str = "coredns.yaml";
/// verify's smoke test: a namespace, a server pod and Service, a client Job.
pub const SMOKE_TEMPLATE: &str = "smoke-test.yaml";

/// One object as apply sends it. `body` holds no secret (RBAC objects, CoreDNS's
/// configuration), but it is kept out of the plan's JSON all the same: the plan shows
/// kind and name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiObject {
    pub kind: String,
    pub name: String,
    /// The object's URL path, e.g. /apis/rbac.authorization.k8s.io/v1/clusterroles/NAME
    /// or /api/v1/namespaces/NS/services/NAME.
    pub path: String,
    pub body: Arc<Value>,
}

/// The bootstrap RBAC objects, in the template's order.
pub fn bootstrap_rbac(templates: &Templates, inv: &Inventory) -> anyhow::Result<Vec<ApiObject>> {
    render(templates, TEMPLATE, inv)
}

/// The objects of `template`, in its order. The context is the cluster-wide one every
/// host's files get (so the DNS Service's address is the very value the kubelets'
/// clusterDNS holds, computed once in `BaseCtx`), plus the identities bootstrap RBAC binds.
pub fn render(templates: &Templates, template: &str, inv: &Inventory) -> anyhow::Result<Vec<ApiObject>> {
    render_with(templates, template, inv, tera::Context::new())
}

/// Like [`render`], with `extra` values on top (verify's smoke test: its namespace, token).
pub fn render_with(
    templates: &Templates,
    template: &str,
    inv: &Inventory,
    extra: tera::Context,
) -> anyhow::Result<Vec<ApiObject>> {
    let base = BaseCtx::new(inv)?;
    let mut ctx = tera::Context::from_serialize(&base).context("cannot build the template context")?;
    ctx.extend(extra);
    ctx.insert("admin_group", ADMIN_GROUP);
    ctx.insert("apiserver_kubelet_client_user", APISERVER_KUBELET_CLIENT_USER);
    let text = templates.render(template, &ctx)?;
    parse(&text).with_context(|| format!("template {template}"))
}

/// Every non-empty YAML document of `text` as an object.
pub fn parse(text: &str) -> anyhow::Result<Vec<ApiObject>> {
    let mut out = Vec::new();
    for (i, doc) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let body = Value::deserialize(doc).with_context(|| format!("document {} is not valid YAML", i + 1))?;
        if body.is_null() {
            continue;
        }
        let field = |name: &str| body.pointer(name).and_then(Value::as_str).map(str::to_string);
        let (Some(api_version), Some(kind), Some(name)) =
            (field("/apiVersion"), field("/kind"), field("/metadata/name"))
        else {
            bail!("document {} needs apiVersion, kind and metadata.name", i + 1);
        };
        let namespace = field("/metadata/namespace");
        for (what, value) in [("metadata.name", Some(&name)), ("metadata.namespace", namespace.as_ref())] {
            if let Some(v) = value
                && (v.is_empty() || v.contains('/') || v.contains('?') || v.contains('%'))
            {
                bail!("document {}: {what} {v:?} is not a valid object name", i + 1);
            }
        }
        let path = object_path(&api_version, &kind, namespace.as_deref(), &name)
            .with_context(|| format!("document {}", i + 1))?;
        out.push(ApiObject { kind, name, path, body: Arc::new(body) });
    }
    Ok(out)
}

/// The kinds provision applies and where each lives: cluster-scoped ones must not name a
/// namespace, namespaced ones must (the path would otherwise silently be another object's).
fn object_path(api_version: &str, kind: &str, namespace: Option<&str>, name: &str) -> anyhow::Result<String> {
    let (resource, namespaced) = match (api_version, kind) {
        ("rbac.authorization.k8s.io/v1", "ClusterRole") => ("clusterroles", false),
        ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding") => ("clusterrolebindings", false),
        ("v1", "Namespace") => ("namespaces", false),
        ("v1", "ServiceAccount") => ("serviceaccounts", true),
        ("v1", "Pod") => ("pods", true),
        ("v1", "ConfigMap") => ("configmaps", true),
        ("v1", "Service") => ("services", true),
        ("apps/v1", "Deployment") => ("deployments", true),
        ("batch/v1", "Job") => ("jobs", true),
        _ => bail!(
            "{api_version} {kind} is not a kind provision applies (rbac.authorization.k8s.io/v1 \
             ClusterRole or ClusterRoleBinding; v1 Namespace, ServiceAccount, Pod, ConfigMap or Service; \
             apps/v1 Deployment; batch/v1 Job)"
        ),
    };
    // The core group lives under /api, every other group under /apis.
    let root = if api_version.contains('/') { "apis" } else { "api" };
    match (namespaced, namespace) {
        (false, None) => Ok(format!("/{root}/{api_version}/{resource}/{name}")),
        (true, Some(ns)) => Ok(format!("/{root}/{api_version}/namespaces/{ns}/{resource}/{name}")),
        (false, Some(_)) => bail!("{kind} {name} is cluster-scoped: it takes no metadata.namespace"),
        (true, None) => bail!("{kind} {name} is namespaced: it needs metadata.namespace"),
    }
}

/// True when every field `desired` sets has that value in `actual`: the server adds
/// fields of its own (uid, resourceVersion, managedFields, ...), which are not ours to
/// compare. Lists compare element by element, so an extra or missing rule is a difference.
pub fn covers(actual: &Value, desired: &Value) -> bool {
    match (actual, desired) {
        (Value::Object(a), Value::Object(d)) => d.iter().all(|(k, dv)| a.get(k).is_some_and(|av| covers(av, dv))),
        (Value::Array(a), Value::Array(d)) => a.len() == d.len() && a.iter().zip(d).all(|(av, dv)| covers(av, dv)),
        _ => actual == desired,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// inventories/example-ha.toml: 3 control-plane (+etcd) hosts and 2 workers.
    fn ha() -> Inventory {
        toml::from_str(include_str!("../../inventories/example-ha.toml")).unwrap()
    }

    #[test]
    fn the_bootstrap_objects_bind_the_right_identities() {
        let objects = bootstrap_rbac(&Templates::embedded().unwrap(), &ha()).unwrap();
        let names: Vec<(&str, &str)> = objects.iter().map(|o| (o.kind.as_str(), o.name.as_str())).collect();
        assert_eq!(
            names,
            [
                ("ClusterRole", "system:kube-apiserver-to-kubelet"),
                ("ClusterRoleBinding", "system:kube-apiserver"),
                ("ClusterRoleBinding", "provision:cluster-admins"),
            ]
        );
        assert_eq!(objects[0].path, "/apis/rbac.authorization.k8s.io/v1/clusterroles/system:kube-apiserver-to-kubelet");
        // kube-apiserver's kubelet client certificate names this user; the admin cert this group.
        let binding = &objects[1].body;
        assert_eq!(binding["subjects"][0]["name"], APISERVER_KUBELET_CLIENT_USER);
        assert_eq!(binding["roleRef"]["name"], "system:kube-apiserver-to-kubelet");
        let admins = &objects[2].body;
        assert_eq!(
            admins["subjects"][0],
            json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": ADMIN_GROUP})
        );
        assert_eq!(admins["roleRef"]["name"], "cluster-admin");
        // CIS 5.1.3: no wildcard verbs or resources in what provision creates.
        let role = objects[0].body.to_string();
        assert!(!role.contains("\"*\""), "{role}");
        for r in ["nodes/proxy", "nodes/log", "nodes/stats", "nodes/metrics"] {
            assert!(role.contains(r), "{r} missing: {role}");
        }
    }

    #[test]
    fn bad_documents_are_refused_with_their_number() {
        let err = parse("apiVersion: v1\nkind: ClusterRole\nmetadata: {name: x}\n").unwrap_err();
        assert!(format!("{err:#}").contains("document 1: v1 ClusterRole is not a kind"), "{err:#}");
        let err = parse("---\nkind: ClusterRole\n").unwrap_err();
        assert!(format!("{err:#}").contains("needs apiVersion, kind and metadata.name"), "{err:#}");
        let err =
            parse("apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: a/b}\n").unwrap_err();
        assert!(format!("{err:#}").contains("not a valid object name"), "{err:#}");
        assert!(parse("---\n---\n").unwrap().is_empty());
        let err = parse("apiVersion: v1\nkind: Service\nmetadata: {name: x}\n").unwrap_err();
        assert!(format!("{err:#}").contains("Service x is namespaced: it needs metadata.namespace"), "{err:#}");
        let err =
            parse("apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: x, namespace: a}\n")
                .unwrap_err();
        assert!(format!("{err:#}").contains("cluster-scoped"), "{err:#}");
        let err = parse("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x, namespace: a/b}\n").unwrap_err();
        assert!(format!("{err:#}").contains("metadata.namespace \"a/b\" is not a valid"), "{err:#}");
    }

    #[test]
    fn namespaced_objects_have_namespaced_paths() {
        let text = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d, namespace: kube-system}\n---\n\
                    apiVersion: v1\nkind: Service\nmetadata: {name: s, namespace: kube-system}\n";
        let paths: Vec<String> = parse(text).unwrap().into_iter().map(|o| o.path).collect();
        assert_eq!(
            paths,
            ["/apis/apps/v1/namespaces/kube-system/deployments/d", "/api/v1/namespaces/kube-system/services/s"]
        );
    }

    #[test]
    fn covers_ignores_server_fields_but_not_ours() {
        let desired = json!({"kind": "ClusterRoleBinding", "metadata": {"name": "a", "labels": {"x": "1"}},
                             "subjects": [{"kind": "Group", "name": "g"}]});
        let mut actual = json!({"kind": "ClusterRoleBinding",
            "metadata": {"name": "a", "uid": "u", "resourceVersion": "9", "labels": {"x": "1", "y": "2"}},
            "subjects": [{"kind": "Group", "name": "g", "apiGroup": "rbac.authorization.k8s.io"}]});
        assert!(covers(&actual, &desired));
        actual["subjects"].as_array_mut().unwrap().push(json!({"kind": "User", "name": "mallory"}));
        assert!(!covers(&actual, &desired), "an extra subject is a difference");
        actual["subjects"].as_array_mut().unwrap().pop();
        actual["metadata"]["labels"]["x"] = json!("2");
        assert!(!covers(&actual, &desired));
    }
}
