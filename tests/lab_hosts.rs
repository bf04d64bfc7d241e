//! End to end: `provision lab up | down | destroy | status` with real systemd-nspawn
//! hosts on 127.0.1.1-3 (root required, as in CI). Every test holds the lab test lock,
//! so it never races another test (from any file) that uses the lab.
//!
//! The first run builds the image with debootstrap (a minute or more); later runs reuse it.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use provision::lab::{self, Lab};
use serde_json::Value;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn known_hosts() -> PathBuf {
    repo().join("inventories/.provision/lab/known_hosts")
}

fn provision(args: &[&str]) -> Output {
    let out =
        Command::new(env!("CARGO_BIN_EXE_provision")).args(args).current_dir(repo()).output().expect("run provision");
    eprintln!(
        "$ provision {}\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn lab_up() {
    let out = provision(&["lab", "up"]);
    assert!(out.status.success(), "lab up failed");
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).expect("JSON output")
}

fn status() -> (Option<i32>, Value) {
    let out = provision(&["--output", "json", "lab", "status"]);
    (out.status.code(), json(&out))
}

fn states(v: &Value) -> Vec<(String, String)> {
    v["hosts"]
        .as_array()
        .expect("hosts array")
        .iter()
        .map(|h| (h["name"].as_str().unwrap().to_string(), h["state"].as_str().unwrap().to_string()))
        .collect()
}

/// ssh as `user` with the lab key, checking the host key strictly against `known`.
fn ssh_with(known: &Path, user: &str, addr: &str, command: &str) -> Output {
    Command::new("ssh")
        .args([
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "ConnectTimeout=10",
            "-o",
            "LogLevel=ERROR",
        ])
        .arg("-o")
        .arg(format!("UserKnownHostsFile={}", known.display()))
        .arg("-i")
        .arg(Lab::system().key_path())
        .arg(format!("{user}@{addr}"))
        .arg(command)
        .output()
        .expect("run ssh")
}

/// Runs `command` as `user` and returns its stdout; panics with stderr on failure.
fn ssh(user: &str, addr: &str, command: &str) -> String {
    let out = ssh_with(&known_hosts(), user, addr, command);
    assert!(out.status.success(), "ssh {user}@{addr} {command:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn sshd_answers(addr: &str) -> bool {
    let sock: SocketAddr = format!("{addr}:22").parse().unwrap();
    TcpStream::connect_timeout(&sock, Duration::from_millis(500)).is_ok()
}

const ADDRS: [&str; 3] = ["127.0.1.1", "127.0.1.2", "127.0.1.3"];

#[test]
fn up_boots_three_real_hosts_with_pinned_host_keys() {
    let _lab = lab::lock_for_tests().unwrap();
    lab_up();
    let pinned = std::fs::read_to_string(known_hosts()).unwrap();
    let mut machine_ids = Vec::new();
    for (i, addr) in ADDRS.iter().enumerate() {
        assert!(pinned.lines().any(|l| l.starts_with(&format!("{addr} ssh-ed25519 "))), "{addr} pinned");
        // Strict host key checking against the pinned file: this is the host lab up made.
        assert_eq!(ssh("root", addr, "systemctl is-system-running --wait"), "running", "{addr}");
        assert_eq!(ssh("root", addr, "hostname"), format!("node{}", i + 1));
        let version = ssh("root", addr, "/usr/bin/etcd --version");
        assert!(version.contains("etcd Version: 3.4.23"), "{version}");
        // Installed, not running, disabled (never masked: provision writes its own unit).
        assert_eq!(ssh("root", addr, "systemctl is-enabled etcd.service || true"), "disabled");
        assert_eq!(ssh("root", addr, "systemctl is-active etcd.service || true"), "inactive");
        // The non-root path: ops logs in with the same key and has passwordless sudo.
        assert_eq!(ssh("ops", addr, "sudo -n true && sudo -n id -u"), "0");
        // sshd listens on the host's own address only, with the lab's settings.
        let sshd = ssh("root", addr, "sshd -T");
        assert!(sshd.lines().any(|l| l == format!("listenaddress {addr}:22")), "{sshd}");
        assert!(sshd.lines().any(|l| l == "passwordauthentication no"));
        assert!(sshd.lines().any(|l| l == "permitrootlogin without-password"));
        machine_ids.push(ssh("root", addr, "cat /etc/machine-id"));
    }
    machine_ids.sort();
    machine_ids.dedup();
    assert_eq!(machine_ids.len(), 3, "every host has its own machine-id");
    // And its own host keys (sets from the key pool are used once).
    let mut host_keys: Vec<&str> = pinned
        .lines()
        .filter(|l| ADDRS.iter().any(|a| l.starts_with(&format!("{a} "))))
        .filter_map(|l| l.split_whitespace().nth(2))
        .collect();
    assert_eq!(host_keys.len(), 9, "ed25519, ecdsa and rsa for each host");
    host_keys.sort();
    host_keys.dedup();
    assert_eq!(host_keys.len(), 9, "no host key is shared");

    // The pins are what makes the connection work: an empty known_hosts is refused.
    let empty = tempfile::NamedTempFile::new().unwrap();
    let refused = ssh_with(empty.path(), "root", ADDRS[0], "true");
    assert!(!refused.status.success(), "strict checking must refuse an unknown host key");

    let (code, st) = status();
    assert_eq!(code, Some(0));
    assert_eq!(st["all_running"], true);
    for h in st["hosts"].as_array().unwrap().iter().take(3) {
        assert_eq!(h["state"], "running");
        assert_eq!(h["sshd"], true);
        assert!(h["pid"].as_u64().is_some());
    }

    // A second up changes nothing and says so.
    let again = provision(&["--output", "json", "lab", "up"]);
    assert!(again.status.success());
    let report = json(&again);
    for h in report["hosts"].as_array().unwrap() {
        assert_eq!(h["action"], "already-running", "{h}");
    }
    assert_eq!(std::fs::read_to_string(known_hosts()).unwrap(), pinned, "same hosts, same pins");
}

#[test]
fn down_keeps_the_disks_and_up_boots_them_again() {
    let _lab = lab::lock_for_tests().unwrap();
    lab_up();
    let marker = format!("state-{}", std::process::id());
    ssh("root", ADDRS[1], &format!("echo {marker} > /root/marker && sync"));
    let pins_before = std::fs::read_to_string(known_hosts()).unwrap();

    assert!(provision(&["lab", "down"]).status.success());
    let (code, st) = status();
    assert_ne!(code, Some(0), "status fails while hosts are down");
    assert_eq!(st["all_running"], false);
    assert!(states(&st).iter().take(3).all(|(_, s)| s == "stopped"), "{st}");
    for addr in ADDRS {
        assert!(!sshd_answers(addr), "{addr} still answers after down");
    }
    // Down leaves no mounts and no processes behind.
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains("/provision-lab/hosts/"), "overlay still mounted after down");

    lab_up();
    assert_eq!(ssh("root", ADDRS[1], "cat /root/marker"), marker, "the disk survived down/up");
    assert_eq!(std::fs::read_to_string(known_hosts()).unwrap(), pins_before, "host keys survive down/up");
    assert_eq!(status().0, Some(0));
}

#[test]
fn up_recovers_from_killed_boot_loops_orphans_and_stale_mounts() {
    let _lab = lab::lock_for_tests().unwrap();
    lab_up();
    let lab = Lab::system();
    let pid_of = |path: PathBuf| -> i32 { std::fs::read_to_string(&path).unwrap().trim().parse().unwrap() };
    // node1: its boot loop dies; systemd-nspawn and the host keep running unsupervised.
    let loop1 = pid_of(lab.hosts_dir().join("node1/loop.pid"));
    // node2: systemd-nspawn dies; the container's processes are orphaned.
    let nspawn2 = pid_of(PathBuf::from("/sys/fs/cgroup/systemd/provision-lab/node2/supervisor/cgroup.procs"));
    for pid in [loop1, nspawn2] {
        // Pids the lab started for this test, read from the lab's own files and cgroups.
        // SAFETY: kill(2) has no memory-safety preconditions.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    }
    std::thread::sleep(Duration::from_millis(500));
    let (code, st) = status();
    assert_ne!(code, Some(0));
    let s = states(&st);
    assert_eq!(s[0].1, "stale", "{st}");
    assert_eq!(s[1].1, "stale", "{st}");
    assert_eq!(s[2].1, "running", "{st}");

    let out = provision(&["--output", "json", "lab", "up"]);
    assert!(out.status.success());
    let report = json(&out);
    let actions: Vec<&str> =
        report["hosts"].as_array().unwrap().iter().map(|h| h["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["recovered", "recovered", "already-running"]);
    for addr in ADDRS {
        assert_eq!(ssh("root", addr, "systemctl is-system-running --wait"), "running");
    }

    // A stale, stacked overlay mount on a stopped host's root.
    assert!(provision(&["lab", "down"]).status.success());
    let root3 = lab.hosts_dir().join("node3/root");
    let image = std::fs::read_to_string(lab.hosts_dir().join("node3/image")).unwrap();
    let lower = lab.image_root(image.trim());
    let opts = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.display(),
        lab.hosts_dir().join("node3/upper").display(),
        lab.hosts_dir().join("node3/work").display()
    );
    for _ in 0..2 {
        let m = Command::new("mount").args(["-t", "overlay", "overlay", "-o", &opts]).arg(&root3).status().unwrap();
        assert!(m.success());
    }
    // And a half-created host: a directory without its disk files.
    let half = lab.hosts_dir().join("node2");
    std::fs::remove_dir_all(&half).unwrap();
    std::fs::create_dir_all(half.join("upper")).unwrap();

    lab_up();
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let on_root3 = mounts.lines().filter(|l| l.split(' ').nth(4) == Some(root3.to_str().unwrap())).count();
    assert_eq!(on_root3, 1, "exactly one overlay on node3's root");
    for addr in ADDRS {
        assert_eq!(ssh("root", addr, "systemctl is-system-running --wait"), "running");
    }
    assert_eq!(status().0, Some(0));
}

#[test]
fn a_host_that_reboots_itself_boots_again() {
    let _lab = lab::lock_for_tests().unwrap();
    lab_up();
    let machine_id = ssh("root", ADDRS[2], "cat /etc/machine-id");
    let started = std::fs::read_to_string(Lab::system().hosts_dir().join("node3/started")).unwrap();
    // systemd-nspawn exits with 133 on a reboot; the boot loop starts the host again.
    let _ = ssh_with(&known_hosts(), "root", ADDRS[2], "systemctl reboot");
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    loop {
        let now = std::fs::read_to_string(Lab::system().hosts_dir().join("node3/started")).unwrap_or_default();
        if now != started && sshd_answers(ADDRS[2]) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "node3 did not come back after its reboot");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(ssh("root", ADDRS[2], "systemctl is-system-running --wait"), "running");
    assert_eq!(ssh("root", ADDRS[2], "cat /etc/machine-id"), machine_id, "the same host came back");
    let (code, st) = status();
    assert_eq!(code, Some(0), "{st}");
}

#[test]
fn destroy_removes_the_hosts_and_keeps_the_image() {
    let _lab = lab::lock_for_tests().unwrap();
    lab_up();
    let lab = Lab::system();
    assert!(provision(&["lab", "destroy"]).status.success());
    let (code, st) = status();
    assert_ne!(code, Some(0));
    assert!(states(&st).iter().all(|(_, s)| s == "absent"), "{st}");
    assert!(!lab.hosts_dir().exists());
    assert!(!Path::new("/sys/fs/cgroup/systemd/provision-lab/node1").exists());
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains("/provision-lab/hosts/"));
    for addr in ADDRS {
        assert!(!sshd_answers(addr));
    }
    // The image stays: the next up does not rebuild it.
    assert!(lab.tarball(&lab::image::RECIPE.key()).is_file());
    assert!(lab.image_root(&lab::image::RECIPE.key()).is_dir());
    // Destroying nothing is fine too.
    assert!(provision(&["lab", "destroy"]).status.success());
}

#[test]
fn lab_commands_refuse_non_root_users_clearly() {
    // setpriv (util-linux) drops to nobody for this one command.
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", env!("CARGO_BIN_EXE_provision"), "lab", "status"])
        .output()
        .expect("setpriv");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("must run as root"), "{err}");
}

#[test]
fn ensure_up_for_tests_hands_out_running_hosts() {
    let lab = lab::ensure_up_for_tests().unwrap();
    assert_eq!(lab.hosts.len(), 3);
    assert_eq!(lab.known_hosts, known_hosts());
    for h in &lab.hosts {
        assert_eq!(ssh("root", &h.address.to_string(), "hostname"), h.name);
    }
}
