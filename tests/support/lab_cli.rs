//! Driving the real `provision` binary and the real OpenSSH client against the lab hosts
//! (shared by tests/apply_lab.rs and tests/bench_apply_lab.rs).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use provision::desired::DesiredState;
use provision::lab::TestLab;

pub fn provision_bin() -> &'static str {
    env!("CARGO_BIN_EXE_provision")
}

/// Runs `provision ARGS` to completion (stdin closed: no TTY, so no prompts, no bars).
pub fn provision(args: &[&str]) -> Output {
    Command::new(provision_bin()).args(args).stdin(Stdio::null()).output().expect("run provision")
}

pub fn text(out: &Output) -> String {
    format!(
        "status: {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

pub fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

/// OpenSSH client, independent of provision's russh transport: how the tests look at
/// the hosts themselves.
pub fn ssh(lab: &TestLab, address: &str, user: &str, command: &str) -> Output {
    ssh_with(&lab.key, &lab.known_hosts, address, user, command)
}

/// `ssh` with the lab's key and pinned host keys given by path (a grown lab's).
pub fn ssh_with(key: &Path, known_hosts: &Path, address: &str, user: &str, command: &str) -> Output {
    Command::new("ssh")
        .args(["-i", key.to_str().unwrap()])
        .args(["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-o", "LogLevel=ERROR"])
        .arg("-o")
        .arg(format!("UserKnownHostsFile={}", known_hosts.display()))
        .arg(format!("{user}@{address}"))
        .arg(command)
        .stdin(Stdio::null())
        .output()
        .expect("run ssh")
}

pub fn ssh_ok(lab: &TestLab, address: &str, command: &str) -> String {
    let out = ssh(lab, address, "root", command);
    assert!(out.status.success(), "ssh {address} {command}: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The desired state of the lab inventory, rendered by the library (same PKI state dir).
pub fn desired(inventory: &Path) -> DesiredState {
    let loaded = provision::inventory::load(inventory).expect("inventory loads");
    let state = loaded.state_dir();
    let pki = provision::pki::ensure(&loaded.inventory, &state).expect("pki");
    let templates = provision::render::Templates::load(None).expect("templates");
    provision::render::render(&loaded.inventory, &pki, &templates).expect("render").desired
}

/// Every managed path (+ the etcd data dir) and unit state of every host, as text:
/// what "the hosts are as before" is compared on.
pub fn listing(lab: &TestLab, desired: &DesiredState) -> String {
    let mut out = String::new();
    for (i, h) in desired.hosts.iter().enumerate() {
        let address = &lab.hosts[i].address.to_string();
        let mut paths: Vec<&str> = h.dirs.iter().map(|d| d.path.as_str()).collect();
        paths.extend(h.files.iter().map(|f| f.path.as_str()));
        paths.sort();
        let mut cmd = String::new();
        for p in &paths {
            cmd.push_str(&format!(
                "if [ -e '{p}' ] || [ -L '{p}' ]; then stat -c '%n %F %a %U:%G' '{p}'; else echo '{p} missing'; fi; "
            ));
        }
        for u in h.units.iter().map(|u| &u.name) {
            cmd.push_str(&format!(
                "echo {u}: $(systemctl show -p LoadState,ActiveState,UnitFileState --value {u} | tr '\\n' ' '); "
            ));
        }
        out.push_str(&format!("== {}\n{}", h.host, ssh_ok(lab, address, &cmd)));
    }
    out
}

/// `provision --output json plan INVENTORY`: its exit code and the plan.
pub fn plan_json(inventory: &str) -> (i32, serde_json::Value) {
    let out = provision(&["--output", "json", "plan", inventory]);
    let v = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("plan json: {e}\n{}", text(&out)));
    (code(&out), v)
}

/// A copy of the lab inventory and its state dir (PKI, pinned host keys) in `dir`, with
/// `edit` applied to the TOML text: for inventories that differ from the lab's.
///
/// The lab inventory's PKI is made first when missing (a fresh clone has none): every copy
/// then shares one etcd CA, as the running lab cluster must. Without it each copy made its
/// own, and a test applying its copy to hosts another copy had set up was refused ("the
/// etcd CA of this state dir differs"), depending on the order the tests ran in.
pub fn inventory_copy(lab: &TestLab, dir: &Path, edit: impl FnOnce(String) -> String) -> PathBuf {
    let _ = etcd_access(&lab.inventory);
    let text = std::fs::read_to_string(&lab.inventory).unwrap();
    let path = dir.join("lab.toml");
    std::fs::write(&path, edit(text)).unwrap();
    let state = lab.inventory.parent().unwrap().join(".provision");
    let status = Command::new("cp").arg("-a").arg(&state).arg(dir).status().unwrap();
    assert!(status.success(), "copy {}", state.display());
    path
}

/// No `.provision-tmp.*` anywhere under the managed directories of any host.
pub fn temp_files(lab: &TestLab, desired: &DesiredState) -> String {
    let mut found = String::new();
    for (i, h) in desired.hosts.iter().enumerate() {
        let mut dirs: Vec<String> = h.dirs.iter().map(|d| d.path.clone()).collect();
        dirs.extend(h.files.iter().filter_map(|f| f.path.rsplit_once('/').map(|(d, _)| d.to_string())));
        dirs.sort();
        dirs.dedup();
        let cmd = format!("find {} -maxdepth 1 -name '.provision-tmp.*' 2>/dev/null; true", dirs.join(" "));
        found.push_str(&ssh_ok(lab, &lab.hosts[i].address.to_string(), &cmd));
    }
    found
}

/// (MainPID, ExecMainStartTimestamp) of a unit: changes exactly when it restarted.
pub fn unit_start(lab: &TestLab, address: &str, unit: &str) -> String {
    ssh_ok(lab, address, &format!("systemctl show -p MainPID,ExecMainStartTimestampMonotonic --value {unit}"))
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// What a test needs to talk to the etcd of `inventory` as provision does: its members and
/// a client identity from the inventory's own state dir (PKI made if missing), plus that
/// PKI directory (for tools such as curl).
pub struct EtcdAccess {
    pub members: Vec<provision::etcd::Member>,
    pub creds: provision::etcd::credentials::ClientCredentials,
    pub pki_dir: PathBuf,
}

pub fn etcd_access(inventory: &Path) -> EtcdAccess {
    let loaded = provision::inventory::load(inventory).expect("inventory loads");
    let state = loaded.state_dir();
    let pki = provision::pki::ensure(&loaded.inventory, &state).expect("pki");
    let creds =
        provision::etcd::credentials::ClientCredentials::from_pki(&pki, &state.pki_dir()).expect("client creds");
    EtcdAccess { members: provision::etcd::members(&loaded.inventory), creds, pki_dir: state.pki_dir() }
}

/// `provision etcd health`'s check of `inventory`'s members, with the default options.
pub fn etcd_health(inventory: &Path) -> provision::etcd::health::ClusterHealth {
    let a = etcd_access(inventory);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(provision::etcd::health::check(&a.members, &a.creds, Default::default()))
}
