//! CoreDNS as cluster objects (templates/coredns.yaml), applied by the cluster-dns phase
//! after the kubelets. Nothing here runs against a kube-apiserver: these tests hold the
//! rendered objects to what the cluster needs (the Service at the kubelets' clusterDNS),
//! to the restricted Pod Security level, and to least privilege.

pub use super::objects::COREDNS_TEMPLATE as TEMPLATE;

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::TEMPLATE;
    use crate::inventory::Inventory;
    use crate::kube::objects::{ApiObject, render};
    use crate::kube::pod_security::restricted_violations;
    use crate::render::{Templates, paths};
    use crate::state::StateDir;

    /// inventories/example-ha.toml: 3 control-plane (+etcd) hosts and 2 workers.
    fn ha() -> Inventory {
        toml::from_str(include_str!("../../inventories/example-ha.toml")).unwrap()
    }

    fn objects(inv: &Inventory) -> Vec<ApiObject> {
        render(&Templates::embedded().unwrap(), TEMPLATE, inv).unwrap()
    }

    fn body<'a>(objects: &'a [ApiObject], kind: &str) -> &'a Value {
        &objects.iter().find(|o| o.kind == kind).unwrap_or_else(|| panic!("no {kind}")).body
    }

    /// What every kubelet host's rendered config.yaml says, through the host render path.
    fn kubelet_dns(inv: &Inventory) -> Vec<(String, String)> {
        let dir = tempfile::tempdir().unwrap();
        let pki = crate::pki::ensure(inv, &StateDir::at(dir.path())).unwrap();
        let rendered = crate::render::render(inv, &pki, &Templates::embedded().unwrap()).unwrap();
        let mut out = Vec::new();
        for h in &rendered.desired.hosts {
            let Some(f) = h.file(paths::KUBELET_CONFIG) else { continue };
            let config: Value = serde_yaml_ng::from_slice(&f.content).unwrap();
            let dns = config["clusterDNS"].as_array().unwrap();
            assert_eq!(dns.len(), 1, "{}", h.host);
            out.push((dns[0].as_str().unwrap().to_string(), config["clusterDomain"].as_str().unwrap().to_string()));
        }
        out
    }

    #[test]
    fn the_objects_parse_in_order_into_kube_system() {
        let objects = objects(&ha());
        let kinds: Vec<(&str, &str)> = objects.iter().map(|o| (o.kind.as_str(), o.name.as_str())).collect();
        assert_eq!(
            kinds,
            [
                ("ServiceAccount", "coredns"),
                ("ClusterRole", "system:coredns"),
                ("ClusterRoleBinding", "system:coredns"),
                ("ConfigMap", "coredns"),
                ("Deployment", "coredns"),
                ("Service", "kube-dns"),
            ]
        );
        assert_eq!(objects[4].path, "/apis/apps/v1/namespaces/kube-system/deployments/coredns");
        assert_eq!(objects[5].path, "/api/v1/namespaces/kube-system/services/kube-dns");
        let binding = body(&objects, "ClusterRoleBinding");
        assert_eq!(binding["subjects"][0]["name"], "coredns");
        assert_eq!(binding["subjects"][0]["namespace"], "kube-system");
        assert_eq!(binding["roleRef"]["name"], "system:coredns");
    }

    /// The Service answers where the kubelets send pods, for the domain they search: one
    /// value (BaseCtx's cluster_dns) in both, also for a Service range other than the example's.
    #[test]
    fn the_service_is_at_the_kubelets_cluster_dns() {
        let mut other = ha();
        other.cluster.service_cidr = "10.96.0.0/12".parse().unwrap();
        other.cluster.cluster_domain = "corp.internal".into();
        for inv in [ha(), other] {
            let objects = objects(&inv);
            let kubelets = kubelet_dns(&inv);
            assert_eq!(kubelets.len(), 5, "every control-plane and worker host runs a kubelet");
            let service = body(&objects, "Service");
            let corefile = body(&objects, "ConfigMap")["data"]["Corefile"].as_str().unwrap();
            for (ip, domain) in &kubelets {
                assert_eq!(service["spec"]["clusterIP"].as_str(), Some(ip.as_str()));
                assert!(corefile.contains(&format!("kubernetes {domain} in-addr.arpa ip6.arpa {{")), "{corefile}");
            }
            assert_eq!(service["spec"]["clusterIP"].as_str().unwrap(), inv.cluster.dns_service_ip().to_string());
            let ports: Vec<(u64, &str)> = service["spec"]["ports"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| (p["port"].as_u64().unwrap(), p["protocol"].as_str().unwrap()))
                .collect();
            assert_eq!(ports, [(53, "UDP"), (53, "TCP"), (9153, "TCP")]);
            assert_eq!(service["spec"]["selector"], body(&objects, "Deployment")["spec"]["selector"]["matchLabels"]);
        }
    }

    #[test]
    fn the_corefile_has_the_upstream_plugins() {
        let objects = objects(&ha());
        let corefile = body(&objects, "ConfigMap")["data"]["Corefile"].as_str().unwrap();
        let lines: Vec<&str> = corefile.lines().map(str::trim).collect();
        for want in [
            ".:53 {",
            "errors",
            "health {",
            "ready",
            "kubernetes cluster.local in-addr.arpa ip6.arpa {",
            "pods insecure",
            "fallthrough in-addr.arpa ip6.arpa",
            "prometheus :9153",
            "forward . /etc/resolv.conf {",
            "cache 30",
            "loop",
            "reload",
            "loadbalance",
        ] {
            assert!(lines.contains(&want), "{want:?} missing:\n{corefile}");
        }
    }

    #[test]
    fn the_deployment_is_restricted_pinned_and_spread() {
        let objects = objects(&ha());
        let deployment = body(&objects, "Deployment");
        assert_eq!(deployment["spec"]["replicas"], 2);
        let pod = &deployment["spec"]["template"]["spec"];
        assert_eq!(restricted_violations(pod), Vec::<String>::new());
        assert_eq!(pod["priorityClassName"], "system-cluster-critical");
        assert_eq!(pod["serviceAccountName"], "coredns");
        // CoreDNS must not resolve through itself.
        assert_eq!(pod["dnsPolicy"], "Default");
        let anti = &pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0];
        assert_eq!(anti["podAffinityTerm"]["topologyKey"], "kubernetes.io/hostname");
        assert_eq!(anti["podAffinityTerm"]["labelSelector"]["matchLabels"]["k8s-app"], "kube-dns");
        let pod_sc = &pod["securityContext"];
        assert!(pod_sc["runAsUser"].as_u64().unwrap() > 0 && pod_sc["runAsGroup"].as_u64().unwrap() > 0);

        let containers = pod["containers"].as_array().unwrap();
        assert_eq!(containers.len(), 1);
        let c = &containers[0];
        let image = c["image"].as_str().unwrap();
        let (_, digest) = image.split_once("@sha256:").expect("the image is pinned by digest");
        assert!(
            digest.len() == 64 && digest.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()),
            "{image}"
        );
        assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
        assert_eq!(c["securityContext"]["capabilities"]["add"], serde_json::json!(["NET_BIND_SERVICE"]));
        for kind in ["requests", "limits"] {
            assert!(c["resources"][kind]["memory"].is_string(), "{kind}");
        }
        assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/health");
        assert_eq!(c["livenessProbe"]["httpGet"]["port"], 8080);
        assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/ready");
        assert_eq!(c["readinessProbe"]["httpGet"]["port"], 8181);
        // The Corefile comes from the ConfigMap, mounted read-only.
        assert_eq!(pod["volumes"][0]["configMap"]["name"], "coredns");
        assert_eq!(c["volumeMounts"][0]["readOnly"], true);
    }

    /// Least privilege: read-only verbs on exactly what the kubernetes plugin watches.
    #[test]
    fn the_role_only_reads_what_coredns_watches() {
        let objects = objects(&ha());
        let role = body(&objects, "ClusterRole");
        let mut resources = Vec::new();
        for rule in role["rules"].as_array().unwrap() {
            for verb in rule["verbs"].as_array().unwrap() {
                assert!(["get", "list", "watch"].contains(&verb.as_str().unwrap()), "verb {verb}");
            }
            for r in rule["resources"].as_array().unwrap() {
                resources.push(r.as_str().unwrap());
            }
            assert!(!rule.to_string().contains("\"*\""), "no wildcards: {rule}");
        }
        resources.sort();
        assert_eq!(resources, ["endpoints", "endpointslices", "namespaces", "pods", "services"]);
    }
}
