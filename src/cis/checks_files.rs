//! 1.1.x (control-plane files) and 4.1.x (worker files): modes and owners.
//! On a systemd install the "pod specification files" of 1.1.1-1.1.8 are the unit files.

use super::support::{all_under, get, mode_at_most, owned_by, scalar, yaml};
use super::{APISERVER, CONTROLLER_MANAGER, Check, ETCD, FileKind, HostView, KUBE_PROXY, KUBELET, Outcome, SCHEDULER};
use crate::render::paths;

fn unit(process: &str) -> String {
    paths::unit_path(&format!("{process}.service"))
}

pub fn c_1_1_1(v: &HostView) -> Outcome {
    mode_at_most(v, &unit(APISERVER), 0o600)
}
pub fn c_1_1_2(v: &HostView) -> Outcome {
    owned_by(v, &unit(APISERVER), "root", "root")
}
pub fn c_1_1_3(v: &HostView) -> Outcome {
    mode_at_most(v, &unit(CONTROLLER_MANAGER), 0o600)
}
pub fn c_1_1_4(v: &HostView) -> Outcome {
    owned_by(v, &unit(CONTROLLER_MANAGER), "root", "root")
}
pub fn c_1_1_5(v: &HostView) -> Outcome {
    mode_at_most(v, &unit(SCHEDULER), 0o600)
}
pub fn c_1_1_6(v: &HostView) -> Outcome {
    owned_by(v, &unit(SCHEDULER), "root", "root")
}
pub fn c_1_1_7(v: &HostView) -> Outcome {
    mode_at_most(v, &unit(ETCD), 0o600)
}
pub fn c_1_1_8(v: &HostView) -> Outcome {
    owned_by(v, &unit(ETCD), "root", "root")
}

/// The CNI configuration files (not the directory, which holds nothing secret and which
/// containerd must be able to list). A kubelet host without any (artifacts.runtime =
/// "skip" and no CNI yet) fails: nothing there can be vouched for.
fn cni_files(v: &HostView, each: impl Fn(&str) -> Outcome) -> Outcome {
    all_under(v, paths::CNI_CONF_DIR, |p| p != paths::CNI_CONF_DIR, each)
}
pub fn c_1_1_9(v: &HostView) -> Outcome {
    cni_files(v, |p| mode_at_most(v, p, 0o600))
}
pub fn c_1_1_10(v: &HostView) -> Outcome {
    cni_files(v, |p| owned_by(v, p, "root", "root"))
}

fn etcd_data_dir(v: &HostView) -> Result<String, Outcome> {
    v.flag(ETCD, "data-dir").map(str::to_string).ok_or_else(|| Outcome::fail("etcd: --data-dir is not set"))
}

pub fn c_1_1_11(v: &HostView) -> Outcome {
    match etcd_data_dir(v) {
        Ok(dir) => match v.file(&dir) {
            Some(f) if f.kind == FileKind::Dir => mode_at_most(v, &dir, 0o700),
            Some(_) => Outcome::fail(format!("{dir} is not a directory")),
            None => Outcome::fail(format!("{dir} does not exist")),
        },
        Err(o) => o,
    }
}
pub fn c_1_1_12(v: &HostView) -> Outcome {
    match etcd_data_dir(v) {
        Ok(dir) => owned_by(v, &dir, "etcd", "etcd"),
        Err(o) => o,
    }
}
pub fn c_1_1_13(v: &HostView) -> Outcome {
    let a = mode_at_most(v, paths::ADMIN_CONF, 0o600);
    match v.file(paths::SUPER_ADMIN_CONF) {
        Some(_) => a.and(mode_at_most(v, paths::SUPER_ADMIN_CONF, 0o600)),
        None => a,
    }
}
pub fn c_1_1_14(v: &HostView) -> Outcome {
    let a = owned_by(v, paths::ADMIN_CONF, "root", "root");
    match v.file(paths::SUPER_ADMIN_CONF) {
        Some(_) => a.and(owned_by(v, paths::SUPER_ADMIN_CONF, "root", "root")),
        None => a,
    }
}
pub fn c_1_1_15(v: &HostView) -> Outcome {
    mode_at_most(v, paths::SCHEDULER_CONF, 0o600)
}
pub fn c_1_1_16(v: &HostView) -> Outcome {
    owned_by(v, paths::SCHEDULER_CONF, "root", "root")
}
pub fn c_1_1_17(v: &HostView) -> Outcome {
    mode_at_most(v, paths::CONTROLLER_MANAGER_CONF, 0o600)
}
pub fn c_1_1_18(v: &HostView) -> Outcome {
    owned_by(v, paths::CONTROLLER_MANAGER_CONF, "root", "root")
}
pub fn c_1_1_19(v: &HostView) -> Outcome {
    all_under(v, paths::PKI_DIR, |_| true, |p| owned_by(v, p, "root", "root"))
}
/// v1.12 (kube-bench cfg/cis-1.12) asks 644 or less; v1.10 asked 600, which is what
/// provision renders (it passes both): the check follows the version the README claims.
pub fn c_1_1_20(v: &HostView) -> Outcome {
    all_under(v, paths::PKI_DIR, |p| p.ends_with(".crt"), |p| mode_at_most(v, p, 0o644))
}
pub fn c_1_1_21(v: &HostView) -> Outcome {
    all_under(v, paths::PKI_DIR, |p| p.ends_with(".key"), |p| mode_at_most(v, p, 0o600))
}

macro_rules! check {
    ($id:literal, $title:literal, $proc:expr, $manual:literal, $f:path) => {
        Check { id: $id, title: $title, process: $proc, manual: $manual, run: $f }
    };
}
pub(super) use check;

pub static CONTROL_PLANE: [Check; 21] = [
    check!("1.1.1", "API server unit file permissions are 600 or more restrictive", APISERVER, false, c_1_1_1),
    check!("1.1.2", "API server unit file ownership is root:root", APISERVER, false, c_1_1_2),
    check!("1.1.3", "Controller manager unit file permissions are 600 or more restrictive", CONTROLLER_MANAGER, false, c_1_1_3),
    check!("1.1.4", "Controller manager unit file ownership is root:root", CONTROLLER_MANAGER, false, c_1_1_4),
    check!("1.1.5", "Scheduler unit file permissions are 600 or more restrictive", SCHEDULER, false, c_1_1_5),
    check!("1.1.6", "Scheduler unit file ownership is root:root", SCHEDULER, false, c_1_1_6),
    check!("1.1.7", "etcd unit file permissions are 600 or more restrictive", ETCD, false, c_1_1_7),
    check!("1.1.8", "etcd unit file ownership is root:root", ETCD, false, c_1_1_8),
    // The benchmark lists them for control-plane nodes; every kubelet host has the same
    // CNI files, so they apply wherever a kubelet runs.
    check!("1.1.9", "Container Network Interface file permissions are 600 or more restrictive", KUBELET, true, c_1_1_9),
    check!("1.1.10", "Container Network Interface file ownership is root:root", KUBELET, true, c_1_1_10),
    check!("1.1.11", "etcd data directory permissions are 700 or more restrictive", ETCD, false, c_1_1_11),
    check!("1.1.12", "etcd data directory ownership is etcd:etcd", ETCD, false, c_1_1_12),
    check!("1.1.13", "admin.conf / super-admin.conf permissions are 600 or more restrictive", APISERVER, false, c_1_1_13),
    check!("1.1.14", "admin.conf / super-admin.conf ownership is root:root", APISERVER, false, c_1_1_14),
    check!("1.1.15", "scheduler.conf permissions are 600 or more restrictive", SCHEDULER, false, c_1_1_15),
    check!("1.1.16", "scheduler.conf ownership is root:root", SCHEDULER, false, c_1_1_16),
    check!("1.1.17", "controller-manager.conf permissions are 600 or more restrictive", CONTROLLER_MANAGER, false, c_1_1_17),
    check!("1.1.18", "controller-manager.conf ownership is root:root", CONTROLLER_MANAGER, false, c_1_1_18),
    check!("1.1.19", "Kubernetes PKI directory and files are owned by root:root", APISERVER, false, c_1_1_19),
    check!("1.1.20", "Kubernetes PKI certificate files are 644 or more restrictive", APISERVER, true, c_1_1_20),
    check!("1.1.21", "Kubernetes PKI key files are 600", APISERVER, true, c_1_1_21),
];

fn kubelet_kubeconfig(v: &HostView) -> String {
    v.flag(KUBELET, "kubeconfig").unwrap_or(paths::KUBELET_KUBECONFIG).to_string()
}
fn kubelet_config(v: &HostView) -> String {
    v.flag(KUBELET, "config").unwrap_or(paths::KUBELET_CONFIG).to_string()
}
fn kubelet_client_ca(v: &HostView) -> Result<String, Outcome> {
    if let Some(f) = v.flag(KUBELET, "client-ca-file") {
        return Ok(f.to_string());
    }
    let doc = yaml(v, &kubelet_config(v))?;
    scalar(get(&doc, "authentication.x509.clientCAFile"))
        .ok_or_else(|| Outcome::fail("kubelet: no client CA file (authentication.x509.clientCAFile)"))
}
fn kube_proxy_kubeconfig(v: &HostView) -> Result<String, Outcome> {
    if let Some(f) = v.flag(KUBE_PROXY, "kubeconfig") {
        return Ok(f.to_string());
    }
    let config = v.flag(KUBE_PROXY, "config").ok_or_else(|| Outcome::fail("kube-proxy: neither --kubeconfig nor --config"))?;
    let doc = yaml(v, config)?;
    scalar(get(&doc, "clientConnection.kubeconfig"))
        .ok_or_else(|| Outcome::fail(format!("{config}: clientConnection.kubeconfig is not set")))
}

pub fn c_4_1_1(v: &HostView) -> Outcome {
    mode_at_most(v, &unit(KUBELET), 0o600)
}
pub fn c_4_1_2(v: &HostView) -> Outcome {
    owned_by(v, &unit(KUBELET), "root", "root")
}
pub fn c_4_1_3(v: &HostView) -> Outcome {
    kube_proxy_kubeconfig(v).map_or_else(|o| o, |p| mode_at_most(v, &p, 0o600))
}
pub fn c_4_1_4(v: &HostView) -> Outcome {
    kube_proxy_kubeconfig(v).map_or_else(|o| o, |p| owned_by(v, &p, "root", "root"))
}
pub fn c_4_1_5(v: &HostView) -> Outcome {
    mode_at_most(v, &kubelet_kubeconfig(v), 0o600)
}
pub fn c_4_1_6(v: &HostView) -> Outcome {
    owned_by(v, &kubelet_kubeconfig(v), "root", "root")
}
/// Like 1.1.20: v1.12 asks 644 or less (v1.10: 600); provision renders 600.
pub fn c_4_1_7(v: &HostView) -> Outcome {
    kubelet_client_ca(v).map_or_else(|o| o, |p| mode_at_most(v, &p, 0o644))
}
pub fn c_4_1_8(v: &HostView) -> Outcome {
    kubelet_client_ca(v).map_or_else(|o| o, |p| owned_by(v, &p, "root", "root"))
}
pub fn c_4_1_9(v: &HostView) -> Outcome {
    mode_at_most(v, &kubelet_config(v), 0o600)
}
pub fn c_4_1_10(v: &HostView) -> Outcome {
    owned_by(v, &kubelet_config(v), "root", "root")
}

pub static WORKER: [Check; 10] = [
    check!("4.1.1", "kubelet unit file permissions are 600 or more restrictive", KUBELET, false, c_4_1_1),
    check!("4.1.2", "kubelet unit file ownership is root:root", KUBELET, false, c_4_1_2),
    check!("4.1.3", "kube-proxy kubeconfig permissions are 600 or more restrictive", KUBE_PROXY, true, c_4_1_3),
    check!("4.1.4", "kube-proxy kubeconfig ownership is root:root", KUBE_PROXY, true, c_4_1_4),
    check!("4.1.5", "kubelet kubeconfig permissions are 600 or more restrictive", KUBELET, false, c_4_1_5),
    check!("4.1.6", "kubelet kubeconfig ownership is root:root", KUBELET, false, c_4_1_6),
    check!("4.1.7", "kubelet client CA file permissions are 644 or more restrictive", KUBELET, true, c_4_1_7),
    check!("4.1.8", "kubelet client CA file ownership is root:root", KUBELET, true, c_4_1_8),
    check!("4.1.9", "kubelet config file permissions are 600 or more restrictive", KUBELET, false, c_4_1_9),
    check!("4.1.10", "kubelet config file ownership is root:root", KUBELET, false, c_4_1_10),
];
