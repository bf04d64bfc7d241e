//! Rendering every fixture inventory: which host gets which files, with which modes,
//! and that the output is well-formed (YAML parses, flags are --flag=value).

mod common;

use common::{fixture_pki, inventory, with_kubernetes};
use provision::cis::view::{exec_start_argv, rendered_argv};
use provision::desired::{Component, DesiredHost};
use provision::render::{Templates, paths, render};

fn host<'a>(hosts: &'a [DesiredHost], name: &str) -> &'a DesiredHost {
    hosts.iter().find(|h| h.host == name).unwrap_or_else(|| panic!("no host {name}"))
}

fn units(h: &DesiredHost) -> Vec<&str> {
    h.units.iter().map(|u| u.name.as_str()).collect()
}

fn all_rendered() -> Vec<(String, provision::render::Rendered)> {
    let t = Templates::embedded().unwrap();
    let mut out = Vec::new();
    for (name, inv) in [
        ("lab", inventory("lab")),
        ("lab+kubernetes", with_kubernetes(inventory("lab"))),
        ("vagrant", inventory("vagrant")),
        ("ha", inventory("ha")),
    ] {
        let pki = fixture_pki(&inv);
        let r = render(&inv, &pki, &t).unwrap_or_else(|e| panic!("{name}: {e:#}"));
        assert_eq!(
            r.desired.hosts.iter().map(|h| h.host.clone()).collect::<Vec<_>>(),
            inv.hosts.iter().map(|h| h.name.clone()).collect::<Vec<_>>(),
            "{name}: one desired host per inventory host, in order"
        );
        out.push((name.to_string(), r));
    }
    out
}

/// kubeconfigs: /etc/kubernetes/*.conf and the kubelet's and kube-proxy's (not the
/// runtime tier's modules-load.d / sysctl.d files, which are .conf too).
fn is_kubeconfig(path: &str) -> bool {
    (path.starts_with("/etc/kubernetes/") && path.ends_with(".conf")) || path.ends_with("kubeconfig")
}

#[test]
fn ha_hosts_get_what_their_roles_need() {
    let inv = inventory("ha");
    let r = render(&inv, &fixture_pki(&inv), &Templates::embedded().unwrap()).unwrap();
    assert!(!r.kubernetes_skipped());
    let cp1 = host(&r.desired.hosts, "cp1");
    assert_eq!(
        units(cp1),
        vec![
            "containerd.service",
            "etcd.service",
            "kube-apiserver.service",
            "kube-controller-manager.service",
            "kube-proxy.service",
            "kube-scheduler.service",
            "kubelet.service",
            "provision-k8s-kernel.service",
            "provision-pod-routes.service",
        ]
    );
    for p in [
        paths::CA_KEY,
        paths::ADMIN_CONF,
        paths::ENCRYPTION_CONFIG,
        paths::AUDIT_POLICY,
        paths::ETCD_SERVER_KEY,
        paths::ETCD_CA_FOR_APISERVER,
        paths::KUBELET_CONFIG,
    ] {
        assert!(cp1.file(p).is_some(), "cp1 lacks {p}");
    }
    // Break-glass system:masters stays with the operator (issue #13).
    assert!(cp1.file(paths::SUPER_ADMIN_CONF).is_none(), "super-admin.conf is never installed on a host");
    assert!(r.super_admin_conf.is_some());
    let w1 = host(&r.desired.hosts, "worker1");
    assert_eq!(
        units(w1),
        vec![
            "containerd.service",
            "kube-proxy.service",
            "kubelet.service",
            "provision-k8s-kernel.service",
            "provision-pod-routes.service"
        ]
    );
    for p in [paths::CA_KEY, paths::ADMIN_CONF, paths::SA_KEY, paths::ETCD_SERVER_KEY, paths::ENCRYPTION_CONFIG] {
        assert!(w1.file(p).is_none(), "worker1 must not get {p}");
    }
    assert!(w1.file(paths::CA_CRT).is_some() && w1.file(paths::KUBELET_KEY).is_some());
    assert!(w1.users.is_empty(), "no etcd user on a worker");
    assert_eq!(cp1.users.iter().map(|u| u.name.as_str()).collect::<Vec<_>>(), vec!["etcd"]);
}

#[test]
fn skip_renders_only_the_etcd_tier_and_says_so() {
    let inv = inventory("lab");
    let r = render(&inv, &fixture_pki(&inv), &Templates::embedded().unwrap()).unwrap();
    assert!(r.kubernetes_skipped());
    assert!(r.skipped[0].why.contains("artifacts.kubernetes"));
    for h in &r.desired.hosts {
        assert_eq!(units(h), vec!["etcd.service"], "{}", h.host);
        assert!(h.files.iter().all(|f| f.component == Component::Etcd), "{}", h.host);
        assert!(h.files.iter().all(|f| !f.path.starts_with("/etc/kubernetes")), "{}", h.host);
        let unit = String::from_utf8(h.file("/etc/systemd/system/etcd.service").unwrap().content.to_vec()).unwrap();
        assert!(unit.contains("ExecStart=/usr/bin/etcd \\"), "preinstalled etcd runs /usr/bin/etcd");
        assert!(unit.contains("--heartbeat-interval=250") && unit.contains("--election-timeout=2500"));
    }
    // Downloaded etcd runs from /usr/local/bin.
    let inv = inventory("vagrant");
    let r = render(&inv, &fixture_pki(&inv), &Templates::embedded().unwrap()).unwrap();
    let unit = host(&r.desired.hosts, "node1").file("/etc/systemd/system/etcd.service").unwrap();
    assert!(String::from_utf8_lossy(&unit.content).contains("ExecStart=/usr/local/bin/etcd \\"));
}

#[test]
fn modes_owners_and_secret_flags() {
    for (name, r) in all_rendered() {
        for h in &r.desired.hosts {
            let ctx = format!("{name}/{}", h.host);
            for f in &h.files {
                if f.path.ends_with(".key") || is_kubeconfig(&f.path) {
                    assert_eq!(f.mode, 0o600, "{ctx}: {}", f.path);
                    assert!(f.secret, "{ctx}: {} must be secret", f.path);
                }
                // CIS v1.10 1.1.20 / 4.1.7: certificates 600 (v1.12 allows 644; 600 passes both).
                if f.path.ends_with(".crt") {
                    assert_eq!(f.mode, 0o600, "{ctx}: {}", f.path);
                }
                if f.path.ends_with(".pub") {
                    assert_eq!(f.mode, 0o644, "{ctx}: {}", f.path);
                }
                if f.path.starts_with("/etc/kubernetes/") || f.path.starts_with("/etc/systemd/") {
                    assert_eq!((f.owner.as_str(), f.group.as_str()), ("root", "root"), "{ctx}: {}", f.path);
                }
                if f.path.starts_with("/etc/etcd/pki/") {
                    assert_eq!((f.owner.as_str(), f.group.as_str()), ("etcd", "etcd"), "{ctx}: {}", f.path);
                }
                if f.path.starts_with("/etc/systemd/system/") {
                    assert_eq!(f.mode, 0o600, "{ctx}: {}", f.path);
                }
                let text = String::from_utf8_lossy(&f.content);
                if text.contains("PRIVATE KEY") || text.contains("client-key-data") || text.contains("secret:") {
                    assert!(f.secret && f.mode == 0o600, "{ctx}: {} holds key material", f.path);
                }
            }
            if let Some(f) = h.file(paths::ENCRYPTION_CONFIG) {
                assert!(f.secret && f.mode == 0o600, "{ctx}");
            }
            for d in &h.dirs {
                if d.path == "/var/lib/etcd" {
                    assert_eq!((d.mode, d.owner.as_str(), d.group.as_str()), (0o700, "etcd", "etcd"), "{ctx}");
                }
            }
        }
    }
}

#[test]
fn yaml_files_parse_and_flags_are_flag_equals_value() {
    for (name, r) in all_rendered() {
        for h in &r.desired.hosts {
            for f in &h.files {
                let ctx = format!("{name}/{}: {}", h.host, f.path);
                let text = std::str::from_utf8(&f.content).unwrap_or_else(|_| panic!("{ctx} is not UTF-8"));
                // crictl's configuration is no Kubernetes object (no apiVersion/kind).
                let k8s_yaml = f.path.ends_with(".yaml") && f.path != provision::render::paths::CRICTL_CONFIG;
                if k8s_yaml || is_kubeconfig(&f.path) {
                    let doc: serde_yaml_ng::Value =
                        serde_yaml_ng::from_str(text).unwrap_or_else(|e| panic!("{ctx}: not YAML: {e}"));
                    assert!(doc.get("apiVersion").is_some() && doc.get("kind").is_some(), "{ctx}");
                }
                if f.path.ends_with(".service") {
                    assert!(!text.contains("{{") && !text.contains("{%"), "{ctx}");
                    // As systemd runs it: drop-ins' $VARIABLES expanded (etcd's bootstrap flags).
                    let unit = f.path.rsplit('/').next().unwrap();
                    let argv = rendered_argv(h, unit).unwrap_or_else(|e| panic!("{ctx}: {e}"));
                    // The runtime tier's oneshot helpers take positional arguments
                    // (`modprobe --all overlay ...`, `ip -batch FILE`); no CIS scanner reads them.
                    if ["/sbin/modprobe", "/sbin/ip"].contains(&argv[0].as_str()) {
                        continue;
                    }
                    for arg in &argv[1..] {
                        assert!(arg.starts_with("--") && arg.contains('='), "{ctx}: {arg} is not --flag=value");
                        assert!(!arg.ends_with('='), "{ctx}: {arg} has an empty value");
                    }
                    // One flag per line: every continuation line holds exactly one argument.
                    for line in text.lines().filter(|l| l.starts_with("  --") || l.starts_with("  $")) {
                        assert_eq!(line.trim_end_matches(" \\").split_whitespace().count(), 1, "{ctx}: {line}");
                    }
                }
            }
        }
    }
}

#[test]
fn etcd_cluster_wiring() {
    let inv = inventory("ha");
    let r = render(&inv, &fixture_pki(&inv), &Templates::embedded().unwrap()).unwrap();
    let cp2 = host(&r.desired.hosts, "cp2");
    let view = provision::cis::HostView::from_desired(cp2).unwrap();
    assert_eq!(
        view.flag("etcd", "initial-cluster"),
        Some("cp1=https://10.0.0.11:2380,cp2=https://10.0.0.12:2380,cp3=https://10.0.0.13:2380")
    );
    assert_eq!(view.flag("etcd", "listen-client-urls"), Some("https://10.0.0.12:2379,https://127.0.0.1:2379"));
    assert_eq!(view.flag("etcd", "advertise-client-urls"), Some("https://10.0.0.12:2379"));
    assert_eq!(view.flag("etcd", "listen-peer-urls"), Some("https://10.0.0.12:2380"));
    assert_eq!(view.flag("etcd", "quota-backend-bytes"), Some("4294967296"));
    assert_eq!(
        view.flag("kube-apiserver", "etcd-servers"),
        Some("https://10.0.0.11:2379,https://10.0.0.12:2379,https://10.0.0.13:2379")
    );
    assert_eq!(view.flag("kube-apiserver", "advertise-address"), Some("10.0.0.12"));
    assert_eq!(view.flag("kube-apiserver", "bind-address"), Some("10.0.0.12"));
    assert_eq!(view.flag("kube-apiserver", "audit-log-maxage"), Some("90"));
    // The scheduler and controller-manager reach their own host's apiserver.
    let conf = String::from_utf8(cp2.file(paths::SCHEDULER_CONF).unwrap().content.to_vec()).unwrap();
    assert!(conf.contains("server: https://10.0.0.12:6443"), "{conf}");
    let kubelet = String::from_utf8(host(&r.desired.hosts, "worker2").file(paths::KUBELET_KUBECONFIG).unwrap().content.to_vec()).unwrap();
    assert!(kubelet.contains("server: https://api.prod.example.internal:6443"));
}

#[test]
fn encryption_config_uses_the_chosen_provider_first_and_the_pki_key() {
    use base64::Engine as _;
    for (inv_name, provider) in [("vagrant", "secretbox"), ("ha", "aescbc")] {
        let inv = inventory(inv_name);
        let pki = fixture_pki(&inv);
        let r = render(&inv, &pki, &Templates::embedded().unwrap()).unwrap();
        let f = r.desired.hosts[0].file(paths::ENCRYPTION_CONFIG).unwrap();
        let doc: serde_yaml_ng::Value = serde_yaml_ng::from_slice(&f.content).unwrap();
        let providers = doc["resources"][0]["providers"].as_sequence().unwrap();
        assert_eq!(providers.len(), 2);
        let first = &providers[0][provider]["keys"][0]["secret"];
        let key = base64::engine::general_purpose::STANDARD.decode(first.as_str().unwrap()).unwrap();
        assert_eq!(key.as_slice(), pki.encryption_key.as_slice());
        assert!(providers[1].get("identity").is_some(), "identity comes last");
    }
}

#[test]
fn units_watch_what_they_read() {
    let inv = inventory("ha");
    let r = render(&inv, &fixture_pki(&inv), &Templates::embedded().unwrap()).unwrap();
    let cp1 = host(&r.desired.hosts, "cp1");
    for u in &cp1.units {
        assert!(u.watches.contains(&paths::unit_path(&u.name)), "{} watches its unit file", u.name);
        // Every file named on the command line that this host has is watched.
        let unit = cp1.file(&paths::unit_path(&u.name)).unwrap();
        let argv = exec_start_argv(std::str::from_utf8(&unit.content).unwrap()).unwrap();
        for arg in &argv[1..] {
            let value = arg.split_once('=').map(|(_, v)| v).unwrap_or("");
            if cp1.file(value).is_some() {
                assert!(u.watches.iter().any(|w| w == value), "{} does not watch {value}", u.name);
            }
        }
    }
}

#[test]
fn template_override_replaces_output() {
    let dir = tempfile::tempdir().unwrap();
    let custom = Templates::embedded_text("eventratelimit.yaml").unwrap().replace("qps: 50", "qps: 77");
    std::fs::write(dir.path().join("eventratelimit.yaml"), custom).unwrap();
    let t = Templates::with_overrides(dir.path()).unwrap();
    let inv = inventory("ha");
    let r = render(&inv, &fixture_pki(&inv), &t).unwrap();
    let f = r.desired.hosts[0].file(paths::EVENT_RATE_LIMIT_CONFIG).unwrap();
    assert!(String::from_utf8_lossy(&f.content).contains("qps: 77"));
    assert_eq!(r.overridden_templates.len(), 1);

    std::fs::write(dir.path().join("etcd.service"), "ExecStart=/usr/bin/etcd --name={{ host.nmae }}\n").unwrap();
    let t = Templates::with_overrides(dir.path()).unwrap();
    let err = format!("{:#}", render(&inv, &fixture_pki(&inv), &t).unwrap_err());
    assert!(err.contains("etcd.service") && err.contains("nmae"), "{err}");
}

#[test]
fn missing_certificate_is_a_clear_error() {
    let inv = inventory("ha");
    let mut pki = fixture_pki(&inv);
    pki.certs.remove(&provision::pki::CertId::EtcdPeer("cp3".into()));
    let err = format!("{:#}", render(&inv, &pki, &Templates::embedded().unwrap()).unwrap_err());
    assert!(err.contains("etcd peer (cp3)"), "{err}");
}

#[test]
fn unsafe_inventory_values_are_refused() {
    let mut inv = inventory("ha");
    inv.etcd.data_dir = "/var/lib/etcd --force-new-cluster".into();
    let err = format!("{:#}", render(&inv, &fixture_pki(&inv), &Templates::embedded().unwrap()).unwrap_err());
    assert!(err.contains("etcd.data_dir"), "{err}");
    let mut inv = inventory("ha");
    inv.cluster.kubernetes_version = "1.29.0".into();
    let err = format!("{:#}", render(&inv, &fixture_pki(&inv), &Templates::embedded().unwrap()).unwrap_err());
    assert!(err.contains("1.29.0") && err.contains("1.32"), "{err}");
}

#[test]
fn same_inputs_render_identically() {
    let inv = inventory("ha");
    let pki = fixture_pki(&inv);
    let t = Templates::embedded().unwrap();
    let a = render(&inv, &pki, &t).unwrap();
    let b = render(&inv, &pki, &t).unwrap();
    for (x, y) in a.desired.hosts.iter().zip(&b.desired.hosts) {
        assert_eq!(serde_json::to_string(x).unwrap(), serde_json::to_string(y).unwrap());
        for (f, g) in x.files.iter().zip(&y.files) {
            assert_eq!(f.content, g.content, "{}", f.path);
        }
    }
}

#[test]
fn audit_opt_out_is_rendered_and_reported_by_the_checks() {
    let mut inv = inventory("ha");
    inv.security.audit_log = false;
    let r = render(&inv, &fixture_pki(&inv), &Templates::embedded().unwrap()).unwrap();
    let cp1 = host(&r.desired.hosts, "cp1");
    assert!(cp1.file(paths::AUDIT_POLICY).is_none());
    let view = provision::cis::HostView::from_desired(cp1).unwrap();
    assert_eq!(view.flag("kube-apiserver", "audit-log-path"), None);
    let failed: Vec<&str> =
        provision::cis::run_all(&view).into_iter().filter(|c| !c.passed).map(|c| c.id).collect();
    assert_eq!(failed, vec!["1.2.16", "1.2.17", "1.2.18", "1.2.19"], "the opt-out shows up as failed audit checks");
}

#[test]
fn debug_output_never_shows_key_material() {
    let inv = inventory("ha");
    let r = render(&inv, &fixture_pki(&inv), &Templates::embedded().unwrap()).unwrap();
    let dbg = format!("{r:?}");
    assert!(dbg.contains("/etc/kubernetes/pki/ca.key"));
    assert!(!dbg.contains("PRIVATE KEY") && !dbg.contains("client-key-data"), "Debug leaks file contents");
}

/// Issue #11: adding an etcd host must not change what a running member's unit watches
/// (that would restart every member at once); only the bootstrap drop-in, written while a
/// member has no data, names the new member list.
#[test]
fn a_grown_inventory_changes_no_watched_file_of_existing_members() {
    let small = inventory("lab");
    let mut grown = small.clone();
    let mut node4 = grown.hosts[2].clone();
    node4.name = "node4".into();
    node4.address = "127.0.1.4".parse().unwrap();
    grown.hosts.push(node4);
    // One PKI for both renders: the certificates of node1..3 are the same bytes.
    let pki = fixture_pki(&grown);
    let t = Templates::embedded().unwrap();
    let before = render(&small, &pki, &t).unwrap();
    let after = render(&grown, &pki, &t).unwrap();
    for name in ["node1", "node2", "node3"] {
        let (b, a) = (host(&before.desired.hosts, name), host(&after.desired.hosts, name));
        for unit in &a.units {
            for w in &unit.watches {
                let (old, new) = (b.file(w).unwrap(), a.file(w).unwrap());
                assert_eq!(old.sha256_hex(), new.sha256_hex(), "{name}: {} watches {w}, which changed", unit.name);
            }
        }
        let dropin = |h: &DesiredHost| h.file(paths::ETCD_BOOTSTRAP_DROPIN).unwrap().clone();
        assert_ne!(dropin(b).sha256_hex(), dropin(a).sha256_hex(), "{name}: the drop-in names the new member");
        assert_eq!(dropin(a).only_while_missing.as_deref(), Some("/var/lib/etcd/member"), "{name}");
        assert!(a.units.iter().all(|u| !u.watches.contains(&paths::ETCD_BOOTSTRAP_DROPIN.to_string())), "{name}");
        // The process still gets every bootstrap flag as --flag=value on its command line.
        let view = provision::cis::HostView::from_desired(a).unwrap();
        assert_eq!(
            view.flag("etcd", "initial-cluster"),
            Some(
                "node1=https://127.0.1.1:2380,node2=https://127.0.1.2:2380,node3=https://127.0.1.3:2380,\
                 node4=https://127.0.1.4:2380"
            )
        );
        assert_eq!(view.flag("etcd", "initial-cluster-state"), Some("new"));
        assert_eq!(view.flag("etcd", "initial-cluster-token"), Some("provision-lab"));
    }
}
