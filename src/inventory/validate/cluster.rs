//! [cluster]: the name, the versions, the API endpoint and the DNS domain.


use super::Part;
use super::names::{check_ip_or_dns_name, is_dns_label, is_dns_name, label_suggestion, parse_release};
use super::{SUPPORTED_ETCD_MINORS, SUPPORTED_KUBERNETES_MINORS};
use crate::inventory::diagnostics::quoted;
use crate::inventory::locate::KeyPath;
use crate::inventory::report::Reporter;
use crate::inventory::schema::Cluster;

fn key(name: &str) -> KeyPath {
    KeyPath::root().key("cluster").key(name)
}

pub fn check(part: &Part<Cluster>, rep: &mut Reporter<'_>) {
    let c = &part.value;
    // The name becomes a directory (.provision/<name>/) and a kubeconfig cluster
    // name, so it must be a plain label: no '/', no "..", no spaces.
    if part.ok("name") && !is_dns_label(&c.name) {
        let hint = label_suggestion(&c.name).map(|s| format!("; e.g. {}", quoted(&s))).unwrap_or_default();
        rep.error(
            &key("name"),
            format!("{} is not a valid cluster name (expected 1-63 lower-case letters, digits and '-', starting and ending with a letter or digit{hint})", quoted(&c.name)),
        );
    }
    if part.ok("kubernetes_version") {
        check_version(&c.kubernetes_version, "kubernetes_version", "Kubernetes", SUPPORTED_KUBERNETES_MINORS, rep);
    }
    if part.ok("etcd_version") {
        check_version(&c.etcd_version, "etcd_version", "etcd", SUPPORTED_ETCD_MINORS, rep);
    }
    if part.ok("api_endpoint") {
        check_api_endpoint(&c.api_endpoint, rep);
    }
    if part.ok("cluster_domain") && !is_dns_name(&c.cluster_domain, true) {
        rep.error(
            &key("cluster_domain"),
            format!(
                "{} is not a valid DNS domain (expected lower-case labels joined by '.', e.g. cluster.local)",
                quoted(&c.cluster_domain)
            ),
        );
    }
}

fn check_version(value: &str, name: &str, product: &str, supported: &[&str], rep: &mut Reporter<'_>) {
    let expected = format!("{}.0", supported.last().copied().unwrap_or("1.0"));
    let Some((major, minor, _)) = parse_release(value) else {
        let hint = match value.strip_prefix('v') {
            Some(rest) if parse_release(rest).is_some() => format!("write it without the \"v\": {rest}"),
            _ => format!("expected an exact release X.Y.Z, e.g. {expected}"),
        };
        rep.error(&key(name), format!("{} is not a release version ({hint})", quoted(value)));
        return;
    };
    let minor = format!("{major}.{minor}");
    if !supported.contains(&minor.as_str()) {
        rep.error(&key(name), format!("{product} {minor} is not supported (expected {}.x)", supported.join(".x, ")));
    }
}

fn check_api_endpoint(endpoint: &str, rep: &mut Reporter<'_>) {
    let Err(problem) = check_ip_or_dns_name(endpoint) else { return };
    let hint = if endpoint.contains("://") {
        "write the host alone, without a scheme; the port goes in api_port".to_string()
    } else if let Some((host, _)) =
        endpoint.rsplit_once(':').filter(|(h, p)| !h.contains(':') && p.parse::<u16>().is_ok())
    {
        format!("write the port in api_port, and api_endpoint = {}", quoted(host))
    } else {
        "expected an IP address or a DNS name, e.g. 10.0.0.10 or k8s-api.example.com".to_string()
    };
    rep.error(&key("api_endpoint"), format!("{problem} ({hint})"));
}

#[cfg(test)]
mod tests {
    use crate::inventory::validate::testing::{diagnose, only_error, replaced};

    #[test]
    fn cluster_name_is_a_plain_label() {
        let e = only_error(&replaced("name = \"lab\"", "name = \"Lab_1\""));
        assert!(e.starts_with("test.toml:3:8: cluster.name: \"Lab_1\" is not a valid cluster name"), "{e}");
        assert!(e.contains("e.g. \"lab-1\""), "{e}");
        assert!(only_error(&replaced("name = \"lab\"", "name = \"../etc\"")).contains("not a valid cluster name"));
        assert!(only_error(&replaced("name = \"lab\"", "name = \"\"")).contains("not a valid cluster name"));
        assert!(
            only_error(&replaced("name = \"lab\"", &format!("name = \"{}\"", "a".repeat(64))))
                .contains("not a valid cluster name")
        );
    }

    #[test]
    fn kubernetes_version_is_exact_and_supported() {
        let e = only_error(&replaced("\"1.34.2\"", "\"1.31.4\""));
        assert!(
            e.ends_with(
                "cluster.kubernetes_version: Kubernetes 1.31 is not supported (expected 1.32.x, 1.33.x, 1.34.x)"
            ),
            "{e}"
        );
        assert!(only_error(&replaced("\"1.34.2\"", "\"v1.34.2\"")).contains("without the \"v\": 1.34.2"));
        assert!(
            only_error(&replaced("\"1.34.2\"", "\"1.34\"")).contains("expected an exact release X.Y.Z, e.g. 1.34.0")
        );
        assert!(diagnose(&replaced("\"1.34.2\"", "\"1.32.0\"")).0.is_empty());
    }

    #[test]
    fn etcd_version_is_3_4_to_3_6() {
        for ok in ["3.4.23", "3.5.21", "3.6.0"] {
            assert!(diagnose(&replaced("\"3.5.21\"", &format!("\"{ok}\""))).0.is_empty(), "{ok}");
        }
        let e = only_error(&replaced("\"3.5.21\"", "\"3.3.27\""));
        assert!(e.contains("cluster.etcd_version: etcd 3.3 is not supported (expected 3.4.x, 3.5.x, 3.6.x)"), "{e}");
    }

    #[test]
    fn api_endpoint_is_an_ip_or_dns_name() {
        for ok in ["\"k8s-api.example.com\"", "\"LB.example.com\"", "\"fd00::10\""] {
            assert!(diagnose(&replaced("\"10.0.0.10\"", ok)).0.is_empty(), "{ok}");
        }
        assert!(
            only_error(&replaced("\"10.0.0.10\"", "\"lb.example.com:6443\""))
                .contains("write the port in api_port, and api_endpoint = \"lb.example.com\"")
        );
        assert!(only_error(&replaced("\"10.0.0.10\"", "\"https://lb.example.com\"")).contains("without a scheme"));
        assert!(
            only_error(&replaced("\"10.0.0.10\"", "\"lb_1.example.com\"")).contains("is not an IP address or DNS name")
        );
        // Digits and dots are an IPv4 address or nothing: never a DNS name.
        for (bad, why) in [
            ("300.1.2.3", "300 is more than 255"),
            ("10.0.0", "has 3"),
            ("10.0.0.1.5", "has 5"),
            ("010.0.0.1", "leading zero"),
            ("10..0.1", "empty"),
        ] {
            let e = only_error(&replaced("\"10.0.0.10\"", &format!("\"{bad}\"")));
            assert!(e.contains(&format!("\"{bad}\" looks like an IPv4 address but is not one")) && e.contains(why), "{e}");
        }
        // A name needs a letter in its last label.
        assert!(only_error(&replaced("\"10.0.0.10\"", "\"api.123\"")).contains("is not an IP address or DNS name"));
    }

    #[test]
    fn cluster_domain_is_a_dns_name() {
        let text = replaced(
            "pod_cidr = \"10.200.0.0/16\"",
            "pod_cidr = \"10.200.0.0/16\"\ncluster_domain = \"Cluster.Local\"",
        );
        assert!(only_error(&text).contains("cluster.cluster_domain: \"Cluster.Local\" is not a valid DNS domain"));
    }
}
