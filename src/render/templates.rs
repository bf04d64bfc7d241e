//! The tera templates: embedded in the binary, each replaceable by a file of the same
//! name in an operator's `--templates DIR`.
//!
//! Autoescaping is off everywhere (these are systemd units and YAML, not HTML), and a
//! variable missing from the context is an error, so a typo in an override fails the
//! render instead of producing an empty flag value.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context as _, bail};

use crate::error_text::one_line;

/// Every template provision knows, by file name. include_str! (not include_dir!) so
/// that cargo rebuilds when a template changes.
pub const EMBEDDED: &[(&str, &str)] = &[
    ("etcd.service", include_str!("../../templates/etcd.service")),
    ("etcd-backup.service", include_str!("../../templates/etcd-backup.service")),
    ("etcd-backup.timer", include_str!("../../templates/etcd-backup.timer")),
    ("etcd-backup.sh", include_str!("../../templates/etcd-backup.sh")),
    ("etcd-bootstrap.conf", include_str!("../../templates/etcd-bootstrap.conf")),
    ("kube-apiserver.service", include_str!("../../templates/kube-apiserver.service")),
    ("kube-controller-manager.service", include_str!("../../templates/kube-controller-manager.service")),
    ("kube-scheduler.service", include_str!("../../templates/kube-scheduler.service")),
    ("kubelet.service", include_str!("../../templates/kubelet.service")),
    ("kube-proxy.service", include_str!("../../templates/kube-proxy.service")),
    ("kubeconfig.yaml", include_str!("../../templates/kubeconfig.yaml")),
    ("encryption-config.yaml", include_str!("../../templates/encryption-config.yaml")),
    ("audit-policy.yaml", include_str!("../../templates/audit-policy.yaml")),
    ("admission-config.yaml", include_str!("../../templates/admission-config.yaml")),
    ("eventratelimit.yaml", include_str!("../../templates/eventratelimit.yaml")),
    ("kube-scheduler.yaml", include_str!("../../templates/kube-scheduler.yaml")),
    ("kubelet-config.yaml", include_str!("../../templates/kubelet-config.yaml")),
    ("kube-proxy-config.yaml", include_str!("../../templates/kube-proxy-config.yaml")),
    ("bootstrap-rbac.yaml", include_str!("../../templates/bootstrap-rbac.yaml")),
    ("coredns.yaml", include_str!("../../templates/coredns.yaml")),
    ("smoke-test.yaml", include_str!("../../templates/smoke-test.yaml")),
    ("containerd-config.toml", include_str!("../../templates/containerd-config.toml")),
    ("containerd-config-v3.toml", include_str!("../../templates/containerd-config-v3.toml")),
    ("crictl.yaml", include_str!("../../templates/crictl.yaml")),
    ("containerd.service", include_str!("../../templates/containerd.service")),
    ("provision-k8s-modules.conf", include_str!("../../templates/provision-k8s-modules.conf")),
    ("provision-k8s-sysctl.conf", include_str!("../../templates/provision-k8s-sysctl.conf")),
    ("provision-k8s-kernel.service", include_str!("../../templates/provision-k8s-kernel.service")),
    ("10-provision-bridge.conflist", include_str!("../../templates/10-provision-bridge.conflist")),
    ("pod-routes", include_str!("../../templates/pod-routes")),
    ("pod-masquerade.rules", include_str!("../../templates/pod-masquerade.rules")),
    ("provision-pod-routes.service", include_str!("../../templates/provision-pod-routes.service")),
];

/// Where a template's text came from, for the render summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Embedded,
    Override(String),
}

pub struct Templates {
    tera: tera::Tera,
    origins: BTreeMap<String, Origin>,
}

impl Templates {
    /// The templates compiled into the binary.
    pub fn embedded() -> anyhow::Result<Templates> {
        Self::build(EMBEDDED.iter().map(|(n, t)| (n.to_string(), t.to_string(), Origin::Embedded)).collect())
    }

    /// The embedded templates, with every file in `dir` replacing the embedded template of
    /// the same name. A file whose name is not a known template is an error (a typo would
    /// otherwise be silently ignored).
    pub fn with_overrides(dir: &Path) -> anyhow::Result<Templates> {
        let mut chosen: BTreeMap<String, (String, Origin)> =
            EMBEDDED.iter().map(|(n, t)| (n.to_string(), (t.to_string(), Origin::Embedded))).collect();
        let entries =
            std::fs::read_dir(dir).with_context(|| format!("cannot read the templates directory {}", dir.display()))?;
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.with_context(|| format!("cannot list {}", dir.display()))?;
            if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                continue;
            }
            names.push(entry.path());
        }
        names.sort();
        for path in names {
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            if !chosen.contains_key(&name) {
                let known: Vec<&str> = EMBEDDED.iter().map(|(n, _)| *n).collect();
                bail!(
                    "{}: `{name}` is not a template provision uses; a file in --templates replaces \
                     the embedded template of the same name, one of: {}",
                    path.display(),
                    known.join(", ")
                );
            }
            let text = read_template(&path)?;
            chosen.insert(name, (text, Origin::Override(path.display().to_string())));
        }
        Self::build(chosen.into_iter().map(|(n, (t, o))| (n, t, o)).collect())
    }

    /// Embedded templates, or with overrides from `dir` when given.
    pub fn load(overrides: Option<&Path>) -> anyhow::Result<Templates> {
        match overrides {
            Some(dir) => Self::with_overrides(dir),
            None => Self::embedded(),
        }
    }

    fn build(list: Vec<(String, String, Origin)>) -> anyhow::Result<Templates> {
        let mut tera = tera::Tera::new();
        // Names end in .service/.yaml, never .html, but say it explicitly: no escaping.
        tera.autoescape_on(Vec::<&str>::new());
        let mut origins = BTreeMap::new();
        for (name, text, origin) in list {
            if let Err(e) = tera.add_raw_template(&name, &text) {
                bail!("template {} does not parse: {}", describe(&name, &origin), one_line(&e));
            }
            origins.insert(name, origin);
        }
        Ok(Templates { tera, origins })
    }

    /// Renders template `name`. Errors name the template and where it came from.
    pub fn render(&self, name: &str, ctx: &tera::Context) -> anyhow::Result<String> {
        let origin = self.origins.get(name).cloned().unwrap_or(Origin::Embedded);
        self.tera
            .render(name, ctx)
            .map_err(|e| anyhow::anyhow!("template {} failed to render: {}", describe(name, &origin), one_line(&e)))
    }

    /// Renders template `name` whose context holds secrets (keys). tera's messages may
    /// quote a value ("The string `<the key>` cannot be converted to an int"), possibly
    /// transformed by a filter, so on error only the template and the position are told.
    pub fn render_secret(&self, name: &str, ctx: &tera::Context) -> anyhow::Result<String> {
        let origin = self.origins.get(name).cloned().unwrap_or(Origin::Embedded);
        self.tera.render(name, ctx).map_err(|e| {
            let at = position(name, &one_line(&e)).map(|p| format!(" at {p}")).unwrap_or_default();
            anyhow::anyhow!(
                "template {} failed to render{at}; the details are withheld because this template receives \
                 secrets (they could quote a key): compare it with templates/{name} in the provision \
                 sources and check the filters and variables used there",
                describe(name, &origin)
            )
        })
    }

    /// The text of embedded template `name` (a starting point for an override).
    pub fn embedded_text(name: &str) -> Option<&'static str> {
        EMBEDDED.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
    }

    /// Names of the templates replaced from --templates, sorted.
    pub fn overridden(&self) -> Vec<(String, String)> {
        self.origins
            .iter()
            .filter_map(|(n, o)| match o {
                Origin::Override(p) => Some((n.clone(), p.clone())),
                Origin::Embedded => None,
            })
            .collect()
    }
}

/// An override's text: a regular file (a named pipe would block the read forever), of
/// at most a template's plausible size.
fn read_template(path: &Path) -> anyhow::Result<String> {
    let (file, _) = crate::trust::open_regular(path, crate::trust::Follow::Links)?
        .with_context(|| format!("template {} disappeared", path.display()))?;
    let bytes = crate::trust::read_capped(file, path, 1024 * 1024)?;
    String::from_utf8(bytes).map_err(|_| anyhow::anyhow!("template {} is not UTF-8 text", path.display()))
}

fn describe(name: &str, origin: &Origin) -> String {
    match origin {
        Origin::Embedded => format!("`{name}` (embedded)"),
        Origin::Override(path) => format!("`{name}` (from {path})"),
    }
}

/// `name:line:column` from tera's " --> name:line:column" marker, when there is one.
fn position(name: &str, message: &str) -> Option<String> {
    let (_, rest) = message.split_once("--> ")?;
    let token = rest.split_whitespace().next()?;
    let numbers = token.strip_prefix(name)?.strip_prefix(':')?;
    let (line, column) = numbers.split_once(':')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    (digits(line) && digits(column)).then(|| token.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_embedded_template_parses() {
        let t = Templates::embedded().expect("embedded templates parse");
        assert!(t.overridden().is_empty());
    }

    #[test]
    fn missing_variable_is_an_error_naming_it() {
        let mut tera = tera::Tera::new();
        tera.autoescape_on(Vec::<&str>::new());
        tera.add_raw_template("x", "--flag={{ nope }}").unwrap();
        let t = Templates { tera, origins: BTreeMap::new() };
        let err = t.render("x", &tera::Context::new()).unwrap_err().to_string();
        assert!(err.contains("nope"), "{err}");
    }

    #[test]
    fn no_html_escaping() {
        let mut tera = tera::Tera::new();
        tera.autoescape_on(Vec::<&str>::new());
        tera.add_raw_template("x.html", "{{ v }}").unwrap();
        let t = Templates { tera, origins: BTreeMap::new() };
        let mut ctx = tera::Context::new();
        ctx.insert("v", "a<b>&\"c\"");
        assert_eq!(t.render("x.html", &ctx).unwrap(), "a<b>&\"c\"");
    }

    #[test]
    fn override_replaces_and_unknown_name_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("eventratelimit.yaml"), "custom {{ 1 + 1 }}\n").unwrap();
        let t = Templates::with_overrides(dir.path()).unwrap();
        assert_eq!(t.render("eventratelimit.yaml", &tera::Context::new()).unwrap(), "custom 2\n");
        assert_eq!(t.overridden().len(), 1);

        std::fs::write(dir.path().join("etcd.servce"), "typo").unwrap();
        let err = Templates::with_overrides(dir.path()).err().expect("unknown name rejected").to_string();
        assert!(err.contains("etcd.servce") && err.contains("etcd.service"), "{err}");
    }

    #[test]
    fn errors_of_secret_templates_tell_the_position_never_the_value() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("encryption-config.yaml"), "a: 1\nsecret: {{ key | upper | int }}\n").unwrap();
        let t = Templates::with_overrides(dir.path()).unwrap();
        let mut ctx = tera::Context::new();
        ctx.insert("key", "s3cr3t-k3y-m4t3r14l");
        let open = t.render("encryption-config.yaml", &ctx).unwrap_err().to_string();
        assert!(open.to_lowercase().contains("s3cr3t-k3y"), "tera quotes the value: {open}");
        let err = t.render_secret("encryption-config.yaml", &ctx).unwrap_err().to_string();
        assert!(!err.to_lowercase().contains("s3cr3t"), "{err}");
        assert!(
            err.contains("`encryption-config.yaml` (from ") && err.contains(" at encryption-config.yaml:2:"),
            "{err}"
        );
        assert_eq!(position("x.yaml", "boom\n --> x.yaml:3:14\n"), Some("x.yaml:3:14".into()));
        assert_eq!(position("x.yaml", " --> x.yaml:SECRET:1"), None);
    }

    #[test]
    fn broken_override_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("etcd.service"), "{% if %}").unwrap();
        let err = Templates::with_overrides(dir.path()).err().expect("parse error").to_string();
        assert!(err.contains("etcd.service") && err.contains(&dir.path().display().to_string()), "{err}");
    }
}
