//! Every CIS check passes on the rendered hosts of the lab, vagrant-like and 3+2 HA
//! inventories, every check applies somewhere, and every check fails on a view broken
//! on purpose (so none of them passes vacuously).

mod common;

use std::collections::BTreeSet;

use common::{INVENTORIES, fixture_pki, inventory, with_kubernetes};
use provision::cis::{self, HostView, run_all, run_one};
use provision::render::{Templates, paths, render};
use serde_yaml_ng::Value;

fn views(inv: provision::inventory::Inventory) -> Vec<HostView> {
    let r = render(&inv, &fixture_pki(&inv), &Templates::embedded().unwrap()).unwrap();
    r.desired.hosts.iter().map(|h| HostView::from_desired(h).unwrap()).collect()
}

#[test]
fn every_check_passes_on_every_rendered_host() {
    let mut applied = BTreeSet::new();
    let mut all = Vec::new();
    for name in INVENTORIES {
        all.push((name.to_string(), views(inventory(name))));
    }
    all.push(("lab+kubernetes".to_string(), views(with_kubernetes(inventory("lab")))));
    for (name, hosts) in &all {
        for v in hosts {
            let results = run_all(v);
            assert!(!results.is_empty(), "{name}/{}: no check applied", v.host);
            let failed: Vec<_> = results.iter().filter(|r| !r.passed).collect();
            assert!(failed.is_empty(), "{name}/{}: {failed:#?}", v.host);
            applied.extend(results.iter().map(|r| r.id));
        }
    }
    let catalog: BTreeSet<&str> = cis::catalog().iter().map(|c| c.id).collect();
    let never: Vec<_> = catalog.difference(&applied).collect();
    assert!(never.is_empty(), "checks that applied to no rendered host: {never:?}");
}

#[test]
fn the_lab_gets_exactly_the_etcd_checks() {
    for v in views(inventory("lab")) {
        let ids: BTreeSet<&str> = run_all(&v).iter().map(|r| r.id).collect();
        let expected: BTreeSet<&str> = cis::catalog().iter().filter(|c| c.process == cis::ETCD).map(|c| c.id).collect();
        assert_eq!(ids, expected, "{}", v.host);
    }
}

// ---- breaking a view on purpose -------------------------------------------------------

fn set_flag(v: &mut HostView, process: &str, name: &str, value: &str) {
    let flags = v.processes.get_mut(process).expect("process runs");
    match flags.iter_mut().find(|(n, _)| n == name) {
        Some(f) => f.1 = value.to_string(),
        None => flags.push((name.to_string(), value.to_string())),
    }
}
fn drop_flag(v: &mut HostView, process: &str, name: &str) {
    let flags = v.processes.get_mut(process).expect("process runs");
    let before = flags.len();
    flags.retain(|(n, _)| n != name);
    assert!(flags.len() < before, "{process} had no --{name} to drop");
}
fn chmod(v: &mut HostView, path: &str, mode: u32) {
    v.files.get_mut(path).unwrap_or_else(|| panic!("no {path}")).mode = mode;
}
fn chown(v: &mut HostView, path: &str, owner: &str) {
    let f = v.files.get_mut(path).unwrap_or_else(|| panic!("no {path}"));
    f.owner = owner.to_string();
    f.group = owner.to_string();
}
fn edit_yaml(v: &mut HostView, path: &str, edit: impl FnOnce(&mut Value)) {
    let f = v.files.get_mut(path).unwrap_or_else(|| panic!("no {path}"));
    let mut doc: Value = serde_yaml_ng::from_slice(f.content.as_ref().unwrap()).unwrap();
    edit(&mut doc);
    f.content = Some(serde_yaml_ng::to_string(&doc).unwrap().into_bytes());
}
fn remove_key(doc: &mut Value, parent: &[&str], key: &str) {
    let mut cur = doc;
    for p in parent {
        cur = cur.get_mut(*p).unwrap();
    }
    assert!(cur.as_mapping_mut().unwrap().remove(key).is_some(), "no {key}");
}
fn unit(name: &str) -> String {
    paths::unit_path(&format!("{name}.service"))
}

const A: &str = "kube-apiserver";
const CM: &str = "kube-controller-manager";
const S: &str = "kube-scheduler";
const E: &str = "etcd";
const K: &str = "kubelet";

type Breaker = fn(&mut HostView);

fn breakers() -> Vec<(&'static str, Breaker)> {
    vec![
        ("1.1.1", |v| chmod(v, &unit(A), 0o644)),
        ("1.1.2", |v| chown(v, &unit(A), "kube")),
        ("1.1.3", |v| chmod(v, &unit(CM), 0o640)),
        ("1.1.4", |v| chown(v, &unit(CM), "kube")),
        ("1.1.5", |v| chmod(v, &unit(S), 0o604)),
        ("1.1.6", |v| chown(v, &unit(S), "kube")),
        ("1.1.7", |v| chmod(v, &unit(E), 0o700)),
        ("1.1.8", |v| chown(v, &unit(E), "etcd")),
        ("1.1.9", |v| chmod(v, paths::CNI_CONFLIST, 0o644)),
        ("1.1.10", |v| chown(v, paths::CNI_CONFLIST, "containerd")),
        ("1.1.11", |v| chmod(v, "/var/lib/etcd", 0o755)),
        ("1.1.12", |v| chown(v, "/var/lib/etcd", "root")),
        ("1.1.13", |v| chmod(v, paths::ADMIN_CONF, 0o640)),
        ("1.1.14", |v| chown(v, paths::ADMIN_CONF, "admin")),
        ("1.1.15", |v| chmod(v, paths::SCHEDULER_CONF, 0o644)),
        ("1.1.16", |v| chown(v, paths::SCHEDULER_CONF, "kube")),
        ("1.1.17", |v| chmod(v, paths::CONTROLLER_MANAGER_CONF, 0o644)),
        ("1.1.18", |v| chown(v, paths::CONTROLLER_MANAGER_CONF, "kube")),
        ("1.1.19", |v| chown(v, paths::SA_KEY, "etcd")),
        ("1.1.20", |v| chmod(v, paths::APISERVER_CRT, 0o666)),
        ("1.1.21", |v| chmod(v, paths::APISERVER_KEY, 0o640)),
        ("1.2.1", |v| set_flag(v, A, "anonymous-auth", "true")),
        ("1.2.2", |v| set_flag(v, A, "token-auth-file", "/etc/kubernetes/tokens.csv")),
        ("1.2.3", |v| set_flag(v, A, "enable-admission-plugins", "NodeRestriction,EventRateLimit")),
        ("1.2.4", |v| drop_flag(v, A, "kubelet-client-key")),
        ("1.2.5", |v| drop_flag(v, A, "kubelet-certificate-authority")),
        ("1.2.6", |v| set_flag(v, A, "authorization-mode", "AlwaysAllow,Node,RBAC")),
        ("1.2.7", |v| set_flag(v, A, "authorization-mode", "RBAC")),
        ("1.2.8", |v| set_flag(v, A, "authorization-mode", "Node")),
        ("1.2.9", |v| {
            edit_yaml(v, paths::ADMISSION_CONFIG, |d| {
                d["plugins"].as_sequence_mut().unwrap().retain(|p| p["name"].as_str() != Some("EventRateLimit"))
            })
        }),
        ("1.2.10", |v| set_flag(v, A, "enable-admission-plugins", "AlwaysAdmit,NodeRestriction,EventRateLimit")),
        ("1.2.11", |v| set_flag(v, A, "enable-admission-plugins", "NodeRestriction,EventRateLimit")),
        ("1.2.12", |v| set_flag(v, A, "disable-admission-plugins", "ServiceAccount")),
        ("1.2.13", |v| set_flag(v, A, "disable-admission-plugins", "NamespaceLifecycle")),
        ("1.2.14", |v| set_flag(v, A, "enable-admission-plugins", "EventRateLimit,AlwaysPullImages")),
        ("1.2.15", |v| set_flag(v, A, "profiling", "true")),
        ("1.2.16", |v| drop_flag(v, A, "audit-policy-file")),
        ("1.2.17", |v| set_flag(v, A, "audit-log-maxage", "7")),
        ("1.2.18", |v| set_flag(v, A, "audit-log-maxbackup", "3")),
        ("1.2.19", |v| set_flag(v, A, "audit-log-maxsize", "10")),
        ("1.2.20", |v| drop_flag(v, A, "request-timeout")),
        ("1.2.21", |v| set_flag(v, A, "service-account-lookup", "false")),
        ("1.2.22", |v| drop_flag(v, A, "service-account-key-file")),
        ("1.2.23", |v| drop_flag(v, A, "etcd-keyfile")),
        ("1.2.24", |v| drop_flag(v, A, "tls-private-key-file")),
        ("1.2.25", |v| drop_flag(v, A, "client-ca-file")),
        ("1.2.26", |v| drop_flag(v, A, "etcd-cafile")),
        ("1.2.27", |v| drop_flag(v, A, "encryption-provider-config")),
        ("1.2.28", |v| {
            edit_yaml(v, paths::ENCRYPTION_CONFIG, |d| {
                d["resources"][0]["providers"].as_sequence_mut().unwrap().reverse()
            })
        }),
        ("1.2.29", |v| {
            set_flag(v, A, "tls-cipher-suites", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,TLS_RSA_WITH_AES_128_CBC_SHA")
        }),
        ("1.2.30", |v| drop_flag(v, A, "service-account-extend-token-expiration")),
        ("1.3.1", |v| drop_flag(v, CM, "terminated-pod-gc-threshold")),
        ("1.3.2", |v| set_flag(v, CM, "profiling", "true")),
        ("1.3.3", |v| set_flag(v, CM, "use-service-account-credentials", "false")),
        ("1.3.4", |v| drop_flag(v, CM, "service-account-private-key-file")),
        ("1.3.5", |v| drop_flag(v, CM, "root-ca-file")),
        ("1.3.6", |v| set_flag(v, CM, "feature-gates", "kube:RotateKubeletServerCertificate=false")),
        ("1.3.7", |v| set_flag(v, CM, "bind-address", "0.0.0.0")),
        ("1.4.1", |v| drop_flag(v, S, "profiling")),
        ("1.4.2", |v| set_flag(v, S, "bind-address", "0.0.0.0")),
        ("2.1", |v| drop_flag(v, E, "key-file")),
        ("2.2", |v| set_flag(v, E, "client-cert-auth", "false")),
        ("2.3", |v| set_flag(v, E, "auto-tls", "true")),
        ("2.4", |v| drop_flag(v, E, "peer-cert-file")),
        ("2.5", |v| set_flag(v, E, "peer-client-cert-auth", "false")),
        ("2.6", |v| set_flag(v, E, "peer-auto-tls", "true")),
        ("2.7", |v| {
            let cluster_ca = v.files[paths::CA_CRT].content.clone();
            v.files.get_mut(paths::ETCD_CA_CRT).unwrap().content = cluster_ca;
        }),
        ("4.1.1", |v| chmod(v, &unit(K), 0o644)),
        ("4.1.2", |v| chown(v, &unit(K), "kube")),
        ("4.1.3", |v| chmod(v, paths::KUBE_PROXY_KUBECONFIG, 0o644)),
        ("4.1.4", |v| chown(v, paths::KUBE_PROXY_KUBECONFIG, "kube")),
        ("4.1.5", |v| chmod(v, paths::KUBELET_KUBECONFIG, 0o660)),
        ("4.1.6", |v| chown(v, paths::KUBELET_KUBECONFIG, "kube")),
        ("4.1.7", |v| chmod(v, paths::CA_CRT, 0o666)),
        ("4.1.8", |v| chown(v, paths::CA_CRT, "kube")),
        ("4.1.9", |v| chmod(v, paths::KUBELET_CONFIG, 0o644)),
        ("4.1.10", |v| chown(v, paths::KUBELET_CONFIG, "kube")),
        ("4.2.1", |v| edit_yaml(v, paths::KUBELET_CONFIG, |d| d["authentication"]["anonymous"]["enabled"] = Value::Bool(true))),
        ("4.2.2", |v| set_flag(v, K, "authorization-mode", "AlwaysAllow")),
        ("4.2.3", |v| edit_yaml(v, paths::KUBELET_CONFIG, |d| remove_key(d, &["authentication", "x509"], "clientCAFile"))),
        ("4.2.4", |v| edit_yaml(v, paths::KUBELET_CONFIG, |d| d["readOnlyPort"] = Value::from(10255))),
        ("4.2.5", |v| edit_yaml(v, paths::KUBELET_CONFIG, |d| d["streamingConnectionIdleTimeout"] = Value::from("0s"))),
        ("4.2.6", |v| edit_yaml(v, paths::KUBELET_CONFIG, |d| d["makeIPTablesUtilChains"] = Value::Bool(false))),
        ("4.2.7", |v| set_flag(v, K, "hostname-override", "impostor")),
        ("4.2.8", |v| edit_yaml(v, paths::KUBELET_CONFIG, |d| d["eventRecordQPS"] = Value::from(-1))),
        ("4.2.9", |v| edit_yaml(v, paths::KUBELET_CONFIG, |d| remove_key(d, &[], "tlsPrivateKeyFile"))),
        ("4.2.10", |v| edit_yaml(v, paths::KUBELET_CONFIG, |d| d["rotateCertificates"] = Value::Bool(false))),
        ("4.2.11", |v| {
            edit_yaml(v, paths::KUBELET_CONFIG, |d| d["featureGates"]["RotateKubeletServerCertificate"] = Value::Bool(false))
        }),
        ("4.2.12", |v| {
            edit_yaml(v, paths::KUBELET_CONFIG, |d| {
                d["tlsCipherSuites"].as_sequence_mut().unwrap().push(Value::from("TLS_RSA_WITH_AES_256_GCM_SHA384"))
            })
        }),
        ("4.2.13", |v| edit_yaml(v, paths::KUBELET_CONFIG, |d| remove_key(d, &[], "podPidsLimit"))),
        ("4.2.14", |v| edit_yaml(v, paths::KUBELET_CONFIG, |d| d["seccompDefault"] = Value::Bool(false))),
        ("4.3.1", |v| {
            edit_yaml(v, paths::KUBE_PROXY_CONFIG, |d| d["metricsBindAddress"] = Value::from("0.0.0.0:10249"))
        }),
    ]
}

#[test]
fn every_check_fails_on_a_broken_view() {
    // cp1 of the HA inventory runs every daemon, so every check applies to it.
    let base = views(inventory("ha")).into_iter().next().unwrap();
    let list = breakers();
    let covered: BTreeSet<&str> = list.iter().map(|(id, _)| *id).collect();
    let catalog: BTreeSet<&str> = cis::catalog().iter().map(|c| c.id).collect();
    assert_eq!(covered, catalog, "one deliberate breakage per check");
    for (id, brk) in list {
        let before = run_one(&base, id).unwrap();
        assert!(before.passed, "{id} fails before breaking: {}", before.evidence);
        let mut broken = base.clone();
        brk(&mut broken);
        let after = run_one(&broken, id).unwrap();
        assert!(!after.passed, "{id} still passes on the broken view: {}", after.evidence);
        assert!(!after.evidence.is_empty(), "{id}: no evidence");
    }
}

#[test]
fn evidence_never_contains_file_contents() {
    let v = views(inventory("ha")).into_iter().next().unwrap();
    let key_lines: Vec<String> = v
        .files
        .values()
        .filter_map(|f| f.content.as_ref())
        .filter_map(|c| std::str::from_utf8(c).ok())
        .flat_map(|t| t.lines().filter(|l| l.len() > 40 && !l.contains(' ')).map(String::from).collect::<Vec<_>>())
        .collect();
    assert!(!key_lines.is_empty());
    for r in run_all(&v) {
        for line in &key_lines {
            assert!(!r.evidence.contains(line.as_str()), "{} evidence leaks file content", r.id);
        }
    }
}
