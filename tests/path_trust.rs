//! Issue #13, end to end: the operator (root) runs the real binary in a sticky,
//! world-writable scratch directory (like /tmp) where another user, `nobody`, plays the
//! attacker: pre-creating directories, keys, symlinks and named pipes before the run.
//! One test per finding; each failed on the code before the fix (see docs/security.md).
//!
//! These tests need root (to run the attacker as `nobody` with setpriv): they fail loudly
//! otherwise, they never skip.

mod common;
#[path = "support/lab_cli.rs"]
mod lab_cli;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn provision(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_provision")).current_dir(dir).args(args).output().unwrap()
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// A fresh directory like /tmp: mode 1777, owned by root.
fn scratch() -> tempfile::TempDir {
    assert_eq!(unsafe { libc::geteuid() }, 0, "these tests play root against `nobody`: run them as root");
    let dir = tempfile::Builder::new().prefix("provision-trust-").tempdir_in("/tmp").unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
    dir
}

/// Runs `script` with sh as the attacker (`nobody`), in `dir`.
fn as_nobody(dir: &Path, script: &str) {
    let out = Command::new("setpriv")
        .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "sh", "-euc", script])
        .current_dir(dir)
        .output()
        .expect("setpriv (util-linux) runs");
    assert!(out.status.success(), "the attacker's setup failed: {}", text(&out));
}

fn nobody_uid() -> u32 {
    let out = Command::new("id").args(["-u", "nobody"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().expect("user nobody exists")
}

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

/// The `ha` fixture (cluster "prod": 3 control-plane + 2 workers) as root's inv.toml in `dir`.
fn inventory_in(dir: &Path) -> PathBuf {
    let inv = dir.join("inv.toml");
    std::fs::copy(common::fixture_path("ha"), &inv).unwrap();
    inv
}

/// Runs `args`, killing it after a generous deadline (a hang is the bug being tested).
fn provision_with_deadline(dir: &Path, args: &[&str]) -> Result<(Output, Duration), Duration> {
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_provision"))
        .current_dir(dir)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    loop {
        if child.try_wait().unwrap().is_some() {
            return Ok((child.wait_with_output().unwrap(), started.elapsed()));
        }
        if started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(started.elapsed());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Finding 1: `render --out DIR` with DIR prepared by another user (marker + `cp1 -> victim`).
#[test]
fn finding1_render_out_prepared_by_another_user_is_refused_and_nothing_behind_a_link_is_touched() {
    let s = scratch();
    let dir = s.path();
    inventory_in(dir);
    std::fs::create_dir(dir.join("victim")).unwrap();
    std::fs::write(dir.join("victim/precious"), "root's data").unwrap();
    as_nobody(dir, "mkdir out && printf 'cp1\\n' > out/.provision-render && ln -s ../victim out/cp1");

    let out = provision(dir, &["render", "inv.toml", "--out", "out"]);
    let said = text(&out);
    assert!(!out.status.success(), "render into another user's directory must be refused: {said}");
    assert!(said.contains("out") && said.contains("owned by"), "names the path and why: {said}");
    assert_eq!(std::fs::read_to_string(dir.join("victim/precious")).unwrap(), "root's data");
    assert!(!dir.join("victim/etc").exists(), "nothing written through the link");
}

/// Finding 1, second half: a re-render deletes only what its previous manifest listed.
#[test]
fn finding1_rerender_deletes_only_what_the_previous_manifest_listed() {
    let s = scratch();
    let dir = s.path();
    inventory_in(dir);
    let first = provision(dir, &["render", "inv.toml", "--out", "out"]);
    assert!(first.status.success(), "{}", text(&first));
    // A file the render never wrote, inside a host tree (e.g. the operator's notes).
    std::fs::write(dir.join("out/cp1/etc/notes.txt"), "mine").unwrap();
    // A file the render wrote and will not write again: listed in the manifest, so removed.
    let manifest = dir.join("out/cp1/manifest.json");
    let mut m: serde_json::Value = serde_json::from_slice(&std::fs::read(&manifest).unwrap()).unwrap();
    let mut stale = m["files"][0].clone();
    stale["path"] = serde_json::json!("/etc/kubernetes/stale.yaml");
    m["files"].as_array_mut().unwrap().push(stale);
    std::fs::write(&manifest, serde_json::to_vec(&m).unwrap()).unwrap();
    std::fs::write(dir.join("out/cp1/etc/kubernetes/stale.yaml"), "old").unwrap();

    let second = provision(dir, &["render", "inv.toml", "--out", "out"]);
    assert!(second.status.success(), "{}", text(&second));
    let notes = std::fs::read_to_string(dir.join("out/cp1/etc/notes.txt"));
    assert_eq!(notes.ok().as_deref(), Some("mine"), "not in the manifest: kept");
    assert!(!dir.join("out/cp1/etc/kubernetes/stale.yaml").exists(), "listed and no longer rendered: removed");
}

/// Finding 2: the state directory as another user left it.
#[test]
fn finding2_state_dir_precreated_by_another_user_is_refused() {
    // (a) A CA of the attacker's in .provision/prod/pki.
    let s = scratch();
    let dir = s.path();
    inventory_in(dir);
    as_nobody(
        dir,
        "mkdir -p .provision/prod/pki .provision/prod/secrets && cd .provision/prod/pki && \
         openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.crt \
         -subj /CN=kubernetes -days 365 -addext basicConstraints=critical,CA:TRUE \
         -addext keyUsage=critical,keyCertSign,cRLSign,digitalSignature 2>/dev/null",
    );
    let evil_ca = std::fs::read(dir.join(".provision/prod/pki/ca.crt")).unwrap();
    let out = provision(dir, &["render", "inv.toml", "--out", "out"]);
    let said = text(&out);
    assert!(!out.status.success(), "an attacker's state dir must be refused: {said}");
    assert!(said.contains(".provision") && said.contains("owned by"), "{said}");
    assert!(!dir.join("out/cp1").exists(), "nothing rendered with the attacker's CA");
    assert_eq!(std::fs::read(dir.join(".provision/prod/pki/ca.crt")).unwrap(), evil_ca);

    // (b) `.provision/prod` a symlink to a directory of root's: never chmod-ed or written.
    let s = scratch();
    let dir = s.path();
    inventory_in(dir);
    std::fs::create_dir(dir.join("victim")).unwrap();
    std::fs::set_permissions(dir.join("victim"), std::fs::Permissions::from_mode(0o755)).unwrap();
    as_nobody(dir, "mkdir .provision && chmod 755 .provision && ln -s ../victim .provision/prod");
    let out = provision(dir, &["render", "inv.toml", "--out", "out"]);
    assert!(!out.status.success(), "a symlinked state dir must be refused: {}", text(&out));
    assert_eq!(mode(&dir.join("victim")), 0o755, "the link's target was not chmod-ed");
    assert!(!dir.join("victim/pki").exists() && !dir.join("victim/secrets").exists());

    // (c) Root's own state dir, where a key file is a symlink to a file of root's:
    // never chmod-ed through the link (and the run refuses the link).
    let s = scratch();
    let dir = s.path();
    inventory_in(dir);
    let first = provision(dir, &["render", "inv.toml", "--out", "out"]);
    assert!(first.status.success(), "{}", text(&first));
    let key = dir.join(".provision/prod/pki/apiserver.key");
    let target = dir.join("public-file");
    std::fs::write(&target, std::fs::read(&key).unwrap()).unwrap();
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::remove_file(&key).unwrap();
    std::os::unix::fs::symlink(&target, &key).unwrap();
    let out = provision(dir, &["render", "inv.toml", "--out", "out"]);
    let said = text(&out);
    assert!(!out.status.success(), "a symlinked key must be refused: {said}");
    assert!(said.contains("apiserver.key") && said.contains("symbolic link"), "{said}");
    assert_eq!(mode(&target), 0o644, "the link's target was not chmod-ed");

    // And the state dir the run creates is root's, 0700.
    let s = scratch();
    let dir = s.path();
    inventory_in(dir);
    let out = provision(dir, &["render", "inv.toml", "--out", "out"]);
    assert!(out.status.success(), "{}", text(&out));
    for p in [".provision", ".provision/prod", ".provision/prod/pki", ".provision/prod/secrets"] {
        let meta = std::fs::symlink_metadata(dir.join(p)).unwrap();
        assert_eq!((meta.uid(), mode(&dir.join(p))), (0, 0o700), "{p}");
    }
    assert_ne!(nobody_uid(), 0);
}

/// Finding 3: render validates the inventory (and reads at most the size cap) first.
#[test]
fn finding3_render_refuses_an_invalid_inventory_before_touching_the_filesystem() {
    let s = scratch();
    let dir = s.path();
    let fixture = std::fs::read_to_string(common::fixture_path("ha")).unwrap();
    as_nobody(dir, "mkdir target && chmod 755 target");
    let target = dir.join("target");
    let cases = [
        ("abs", fixture.replace("name = \"prod\"", &format!("name = \"{}\"", target.display()))),
        ("dots", fixture.replace("name = \"prod\"", "name = \"..\"")),
        ("cidr", fixture.replace("pod_cidr = \"10.244.0.0/16\"", "pod_cidr = \"0.0.0.0/0\"")),
    ];
    for (name, body) in cases {
        let inv = dir.join(format!("{name}.toml"));
        std::fs::write(&inv, body).unwrap();
        let out = provision(dir, &["render", inv.to_str().unwrap(), "--out", "out"]);
        let said = text(&out);
        assert_eq!(out.status.code(), Some(2), "{name}: an invalid inventory exits 2: {said}");
        assert!(said.contains(&format!("{name}.toml:")), "{name}: names file:line: {said}");
        assert!(!dir.join("out").exists(), "{name}: nothing written");
    }
    assert_eq!(mode(&target), 0o755, "the directory named by cluster.name was not chmod-ed");
    assert!(std::fs::read_dir(&target).unwrap().next().is_none(), "nothing written into it");
    assert!(!dir.join(".provision").exists());

    // /dev/zero: refused (not a regular file), never read to the end of memory.
    let run = provision_with_deadline(dir, &["render", "/dev/zero", "--out", "out"]);
    let (out, took) = run.unwrap_or_else(|t| panic!("render /dev/zero still running after {t:?}"));
    println!("render /dev/zero ended in {took:?}");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("/dev/zero") && text(&out).contains("not a regular file"), "{}", text(&out));
}

/// Finding 4: super-admin.conf stays in the operator's state dir, never on the hosts.
#[test]
fn finding4_super_admin_conf_is_kept_in_the_state_dir_only() {
    let s = scratch();
    let dir = s.path();
    inventory_in(dir);
    let out = provision(dir, &["render", "inv.toml", "--out", "out"]);
    assert!(out.status.success(), "{}", text(&out));
    for host in ["cp1", "cp2", "cp3"] {
        assert!(dir.join(format!("out/{host}/etc/kubernetes/admin.conf")).exists(), "{host}");
        assert!(!dir.join(format!("out/{host}/etc/kubernetes/super-admin.conf")).exists(), "{host}");
        let manifest = std::fs::read_to_string(dir.join(format!("out/{host}/manifest.json"))).unwrap();
        assert!(!manifest.contains("super-admin.conf"), "{host}");
    }
    let kept = dir.join(".provision/prod/super-admin.conf");
    let conf = std::fs::read_to_string(&kept).expect("super-admin.conf in the state dir");
    assert!(conf.contains("client-key-data"), "a complete kubeconfig");
    assert_eq!(mode(&kept), 0o600);
}

/// Finding 5: etcd.data_dir in a system directory, non-canonical or with shell characters.
#[test]
fn finding5_etcd_data_dir_must_be_canonical_and_outside_system_directories() {
    let s = scratch();
    let dir = s.path();
    let fixture = std::fs::read_to_string(common::fixture_path("ha")).unwrap();
    for bad in [
        "//",
        "/etc",
        "/usr/lib",
        "/var/lib//etcd",
        "/var/lib/etcd/",
        "/var/lib/etcd'x",
        "/var/lib/$(id)",
        "/boot/etcd",
        "/proc/1",
    ] {
        let inv = dir.join("inv.toml");
        std::fs::write(&inv, fixture.replace("data_dir = \"/var/lib/etcd\"", &format!("data_dir = \"{bad}\"")))
            .unwrap();
        let out = provision(dir, &["validate", "inv.toml"]);
        let said = text(&out);
        assert_eq!(out.status.code(), Some(2), "{bad} must be refused: {said}");
        assert!(said.contains("etcd.data_dir"), "{bad}: {said}");
    }
    for good in ["/var/lib/etcd", "/srv/etcd-data", "/data/etcd_1"] {
        std::fs::write(dir.join("inv.toml"), fixture.replace("/var/lib/etcd", good)).unwrap();
        let out = provision(dir, &["validate", "inv.toml"]);
        assert_eq!(out.status.code(), Some(0), "{good}: {}", text(&out));
    }
}

/// Finding 6: a template override's error must not print the secret it was given.
#[test]
fn finding6_template_errors_do_not_print_secrets() {
    let s = scratch();
    let dir = s.path();
    inventory_in(dir);
    let first = provision(dir, &["render", "inv.toml", "--out", "out"]);
    assert!(first.status.success(), "{}", text(&first));
    let key = std::fs::read_to_string(dir.join(".provision/prod/secrets/encryption.key")).unwrap();
    let key = key.trim();
    assert!(key.len() >= 40);
    std::fs::create_dir(dir.join("tpl")).unwrap();
    std::fs::write(dir.join("tpl/encryption-config.yaml"), "secret: {{ encryption_key_b64 | int }}\n").unwrap();
    let out = provision(dir, &["render", "inv.toml", "--out", "out", "--templates", "tpl"]);
    let said = text(&out);
    assert!(!out.status.success(), "{said}");
    assert!(said.contains("encryption-config.yaml"), "names the template: {said}");
    assert!(!said.contains(key), "the encryption key was printed: {said}");
    assert!(!said.contains(&key[..16]), "part of the encryption key was printed: {said}");
}

/// Finding 7: CIS v1.12 1.1.20 (PKI *.crt 600) and 4.1.7 (client CA file 600).
#[test]
fn finding7_pki_certificates_are_0600_with_the_owner_that_reads_them() {
    let s = scratch();
    let dir = s.path();
    inventory_in(dir);
    let out = provision(dir, &["render", "inv.toml", "--out", "out"]);
    assert!(out.status.success(), "{}", text(&out));
    let mut seen = 0;
    for host in ["cp1", "worker1"] {
        let manifest: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join(format!("out/{host}/manifest.json"))).unwrap()).unwrap();
        for f in manifest["files"].as_array().unwrap() {
            let path = f["path"].as_str().unwrap();
            if !path.ends_with(".crt") {
                continue;
            }
            seen += 1;
            assert_eq!(f["mode"], "0600", "{host}{path}");
            assert_eq!(mode(&dir.join(format!("out/{host}{path}"))), 0o600, "{host}{path}");
            let expected_owner = if path.starts_with("/etc/etcd/") { "etcd" } else { "root" };
            assert_eq!(f["owner"], expected_owner, "{host}{path}: read by its daemon");
        }
    }
    assert!(seen > 10, "certificates were checked: {seen}");
}

/// Finding 8: named pipes (and devices) given as inputs are refused, never opened.
#[test]
fn finding8_named_pipes_are_refused_not_waited_on() {
    let s = scratch();
    let dir = s.path();
    as_nobody(dir, "mkfifo inv.toml snap.db");
    let runs: Vec<_> =
        [vec!["validate", "inv.toml"], vec!["render", "inv.toml", "--out", "out"], vec!["etcd", "verify", "snap.db"]]
            .into_iter()
            .map(|args| {
                let dir = dir.to_path_buf();
                std::thread::spawn(move || (args.join(" "), provision_with_deadline(&dir, &args)))
            })
            .collect();
    for run in runs {
        let (cmd, result) = run.join().unwrap();
        let (out, took) = result.unwrap_or_else(|t| panic!("`provision {cmd}` still blocked after {t:?}"));
        println!("provision {cmd}: ended in {took:?}");
        assert!(!out.status.success(), "{cmd}: {}", text(&out));
        assert!(text(&out).contains("not a regular file"), "{cmd}: {}", text(&out));
    }
}

/// Finding 4 on the real lab hosts: a super-admin.conf an earlier version left on a host
/// is removed through the plan (`plan` shows it, apply does it, the next plan is empty).
#[test]
fn finding4_a_leftover_super_admin_conf_is_removed_from_lab_hosts_through_the_plan() {
    use lab_cli::{code, provision as run, ssh_ok};
    let lab = provision::lab::ensure_up_for_tests().expect("lab up");
    let inventory = lab.inventory.to_str().unwrap();
    let out = run(&["apply", inventory]);
    assert_eq!(code(&out), 0, "apply: {}", lab_cli::text(&out));
    let node1 = lab.hosts[0].address.to_string();
    ssh_ok(&lab, &node1, "mkdir -p /etc/kubernetes && echo left-over > /etc/kubernetes/super-admin.conf");

    let out = run(&["--output", "json", "plan", inventory]);
    assert_eq!(code(&out), 2, "changes pending: {}", lab_cli::text(&out));
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut removals = Vec::new();
    for phase in plan["phases"].as_array().unwrap() {
        for h in phase["hosts"].as_array().unwrap() {
            for a in h["actions"].as_array().unwrap() {
                removals.push((phase["phase"].clone(), h["host"].clone(), a["action"].clone(), a["path"].clone()));
            }
        }
    }
    assert_eq!(
        removals,
        [(
            serde_json::json!("preflight"),
            serde_json::json!(lab.hosts[0].name),
            serde_json::json!("remove-file"),
            serde_json::json!("/etc/kubernetes/super-admin.conf")
        )],
        "{plan}"
    );
    let text_plan = String::from_utf8_lossy(&run(&["plan", inventory]).stdout).into_owned();
    assert!(text_plan.contains("- remove /etc/kubernetes/super-admin.conf"), "{text_plan}");

    let out = run(&["apply", inventory]);
    assert_eq!(code(&out), 0, "apply: {}", lab_cli::text(&out));
    assert_eq!(ssh_ok(&lab, &node1, "test -e /etc/kubernetes/super-admin.conf && echo present || echo gone"), "gone\n");
    assert_eq!(code(&run(&["plan", inventory])), 0, "converged after the removal");
}
