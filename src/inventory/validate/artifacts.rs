//! [artifacts]: where the binaries come from.

use super::Part;
use super::names::parse_release;
use crate::inventory::diagnostics::quoted;
use crate::inventory::locate::KeyPath;
use crate::inventory::report::Reporter;
use crate::inventory::schema::{Artifacts, EtcdSource, KubernetesSource, RuntimeSource};

/// The runtime releases' version keys: (key, product, oldest supported (major, minor), default).
/// containerd 1.7 is the oldest still maintained (1.6 only as Debian bookworm's package,
/// which is "preinstalled" and not checked here); runc 1.1 and CNI plugins 1.0 are the
/// oldest the kubelet's CRI runtimes are documented with; crictl follows Kubernetes 1.32+.
const RUNTIME_VERSIONS: &[(&str, &str, (u64, u64))] = &[
    ("containerd_version", "containerd", (1, 7)),
    ("runc_version", "runc", (1, 1)),
    ("cni_plugins_version", "CNI plugins", (1, 0)),
    ("crictl_version", "crictl", (1, 32)),
];

pub fn check(part: &Part<Artifacts>, rep: &mut Reporter<'_>) {
    let a = &part.value;
    let at = |name: &str| KeyPath::root().key("artifacts").key(name);
    // A malformed source or directory was reported already; what follows from it is unknown.
    if part.ok("kubernetes") && part.ok("etcd") && part.ok("runtime") && part.ok("directory") {
        let kubernetes_from_dir = a.kubernetes == KubernetesSource::Directory;
        let etcd_from_dir = a.etcd == EtcdSource::Directory;
        let runtime_from_dir = a.runtime == Some(RuntimeSource::Directory);
        if a.directory.is_none() {
            for (used, name) in
                [(kubernetes_from_dir, "kubernetes"), (etcd_from_dir, "etcd"), (runtime_from_dir, "runtime")]
            {
                if used {
                    rep.error(
                        &at(name),
                        "\"directory\" needs artifacts.directory, the local folder holding the binaries (e.g. directory = \"/srv/provision/binaries\")",
                    );
                }
            }
        } else if !kubernetes_from_dir && !etcd_from_dir && !runtime_from_dir {
            rep.warning(&at("directory"), "is not used: none of kubernetes, etcd, runtime is \"directory\"");
        }
    }
    let versions = [&a.containerd_version, &a.runc_version, &a.cni_plugins_version, &a.crictl_version];
    for ((name, product, oldest), value) in RUNTIME_VERSIONS.iter().zip(versions) {
        if part.ok(name) {
            check_runtime_version(value, name, product, *oldest, &at(name), rep);
        }
    }
    let urls = [
        ("kubernetes_base_url", &a.kubernetes_base_url),
        ("etcd_base_url", &a.etcd_base_url),
        ("runtime_base_url", &a.runtime_base_url),
    ];
    for (name, url) in urls {
        if !part.ok(name) {
            continue;
        }
        if url.starts_with("http://") {
            rep.warning(
                &at(name),
                format!(
                    "{} is plain http: downloads and their checksums can be tampered with on the way (use https)",
                    quoted(url)
                ),
            );
        } else if !url.starts_with("https://") || url.len() <= "https://".len() || url.contains(char::is_whitespace) {
            rep.error(&at(name), format!("{} is not an http(s) URL (expected e.g. https://dl.k8s.io)", quoted(url)));
        }
    }
}

/// An exact release X.Y.Z (the release URLs are built from it), not older than `oldest`.
fn check_runtime_version(
    value: &str,
    name: &str,
    product: &str,
    oldest: (u64, u64),
    at: &KeyPath,
    rep: &mut Reporter<'_>,
) {
    let Some((major, minor, _)) = parse_release(value) else {
        let hint = match value.strip_prefix('v') {
            Some(rest) if parse_release(rest).is_some() => format!("write it without the \"v\": {rest}"),
            _ => "expected an exact release X.Y.Z, as in the release's download URL".to_string(),
        };
        rep.error(
            at,
            format!(
                "{} is not a release version ({hint}); artifacts.{name} names the {product} release",
                quoted(value)
            ),
        );
        return;
    };
    if (major, minor) < oldest {
        rep.error(
            at,
            format!(
                "{product} {major}.{minor} is not supported (expected {}.{} or newer); remove the key for the default",
                oldest.0, oldest.1
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use crate::inventory::validate::testing::{diagnose, only_error, only_warning, with};

    #[test]
    fn directory_source_needs_a_directory() {
        let e = only_error(&with("[artifacts]\nkubernetes = \"directory\""));
        assert!(e.contains("artifacts.kubernetes: \"directory\" needs artifacts.directory"), "{e}");
        assert!(only_error(&with("[artifacts]\netcd = \"directory\"")).contains("artifacts.etcd: \"directory\" needs"));
        assert!(diagnose(&with("[artifacts]\netcd = \"directory\"\ndirectory = \"/srv/bin\"")).0.is_empty());
    }

    #[test]
    fn runtime_directory_and_versions() {
        let e = only_error(&with("[artifacts]\nruntime = \"directory\""));
        assert!(e.contains("artifacts.runtime: \"directory\" needs artifacts.directory"), "{e}");
        assert!(diagnose(&with("[artifacts]\nruntime = \"download\"")).0.is_empty());
        let e = only_error(&with("[artifacts]\nruntime = \"download\"\ncontainerd_version = \"v2.1.4\""));
        assert!(
            e.contains(
                "artifacts.containerd_version: \"v2.1.4\" is not a release version (write it without the \"v\": 2.1.4)"
            ),
            "{e}"
        );
        let e = only_error(&with("[artifacts]\nrunc_version = \"1.3\""));
        assert!(
            e.contains("artifacts.runc_version: \"1.3\" is not a release version (expected an exact release X.Y.Z"),
            "{e}"
        );
        let e = only_error(&with("[artifacts]\ncontainerd_version = \"1.6.20\""));
        assert!(
            e.contains("artifacts.containerd_version: containerd 1.6 is not supported (expected 1.7 or newer)"),
            "{e}"
        );
        let e = only_error(&with("[artifacts]\ncrictl_version = \"1.29.0\""));
        assert!(e.contains("artifacts.crictl_version: crictl 1.29 is not supported"), "{e}");
        let e = only_error(&with("[artifacts]\nruntime_base_url = \"github.com\""));
        assert!(e.contains("artifacts.runtime_base_url: \"github.com\" is not an http(s) URL"), "{e}");
    }

    #[test]
    fn an_unused_directory_warns() {
        assert!(
            only_warning(&with("[artifacts]\ndirectory = \"/srv/bin\"")).contains("artifacts.directory: is not used")
        );
    }

    #[test]
    fn base_urls_are_https() {
        assert!(
            only_error(&with("[artifacts]\netcd_base_url = \"ftp://mirror\""))
                .contains("artifacts.etcd_base_url: \"ftp://mirror\" is not an http(s) URL")
        );
        assert!(
            only_warning(&with("[artifacts]\nkubernetes_base_url = \"http://mirror.local\"")).contains("is plain http")
        );
    }
}
