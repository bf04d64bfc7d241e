//! [artifacts]: where the binaries come from.

use super::Part;
use crate::inventory::diagnostics::quoted;
use crate::inventory::locate::KeyPath;
use crate::inventory::report::Reporter;
use crate::inventory::schema::{Artifacts, EtcdSource, KubernetesSource};

pub fn check(part: &Part<Artifacts>, rep: &mut Reporter<'_>) {
    let a = &part.value;
    let at = |name: &str| KeyPath::root().key("artifacts").key(name);
    // A malformed source or directory was reported already; what follows from it is unknown.
    if part.ok("kubernetes") && part.ok("etcd") && part.ok("directory") {
        let kubernetes_from_dir = a.kubernetes == KubernetesSource::Directory;
        let etcd_from_dir = a.etcd == EtcdSource::Directory;
        if a.directory.is_none() {
            for (used, name) in [(kubernetes_from_dir, "kubernetes"), (etcd_from_dir, "etcd")] {
                if used {
                    rep.error(
                        &at(name),
                        "\"directory\" needs artifacts.directory, the local folder holding the binaries (e.g. directory = \"/srv/provision/binaries\")",
                    );
                }
            }
        } else if !kubernetes_from_dir && !etcd_from_dir {
            rep.warning(&at("directory"), "is not used: neither kubernetes nor etcd is \"directory\"");
        }
    }
    for (name, url) in [("kubernetes_base_url", &a.kubernetes_base_url), ("etcd_base_url", &a.etcd_base_url)] {
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
