//! End-to-end tests of the SSH transport against real OpenSSH sshd processes on loopback.
//!
//! Each test starts its own `sshd -D -e -f CONFIG` on 127.0.2.N:22NN (N unique per test,
//! so tests run in parallel), with host keys made by ssh-keygen in a temp dir; a guard
//! kills it (by pid) on drop. Needs root (sshd, and the sudo test's mount namespace) and
//! the Debian packages openssh-server, openssh-client and sudo: missing parts fail loudly.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use provision::inventory::HostKeyPolicy;
use provision::ssh::{Credentials, JumpHost, KnownHostsFiles, Phase, Session, SshError, Target};
use sha2::{Digest, Sha256};
use tempfile::TempDir;

// ---------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A fresh key pair made by ssh-keygen; returns the private key path.
fn keygen(dir: &Path, name: &str, kind: &str, bits: Option<&str>, passphrase: &str) -> PathBuf {
    let path = dir.join(name);
    let mut cmd = Command::new("ssh-keygen");
    cmd.args(["-q", "-t", kind, "-N", passphrase, "-C", name, "-f"]).arg(&path);
    if let Some(b) = bits {
        cmd.args(["-b", b]);
    }
    run(&mut cmd);
    path
}

fn pub_line(private: &Path) -> String {
    fs::read_to_string(format!("{}.pub", private.display())).unwrap().trim().to_string()
}

/// The fingerprint as OpenSSH's own tool prints it (cross-checks ours).
fn keygen_fingerprint(public: &Path) -> String {
    let out = run(Command::new("ssh-keygen").arg("-lf").arg(public));
    out.split_whitespace().nth(1).unwrap().to_string()
}

/// A running sshd; killed by pid when dropped.
struct Sshd {
    child: Child,
    address: String,
    port: u16,
    dir: PathBuf,
    host_key: PathBuf,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Sshd {
    fn lookup(&self) -> String {
        format!("[{}]:{}", self.address, self.port)
    }

    fn log(&self) -> String {
        fs::read_to_string(self.dir.join("sshd.log")).unwrap_or_default()
    }

    /// `[addr]:port ssh-ed25519 AAAA...` for this server's host key.
    fn known_hosts_line(&self) -> String {
        let pubkey = pub_line(&self.host_key);
        let mut parts = pubkey.split_whitespace();
        format!("{} {} {}", self.lookup(), parts.next().unwrap(), parts.next().unwrap())
    }

    fn host_fingerprint(&self) -> String {
        keygen_fingerprint(&PathBuf::from(format!("{}.pub", self.host_key.display())))
    }
}

/// The per-test lab: a temp dir, an authorized_keys file, a client key, sshd's.
struct Lab {
    tmp: TempDir,
    authorized_keys: PathBuf,
    client_key: PathBuf,
}

impl Lab {
    fn new() -> Lab {
        assert!(Path::new("/usr/sbin/sshd").exists(), "/usr/sbin/sshd missing: apt-get install openssh-server");
        let tmp = tempfile::Builder::new().prefix("provision-ssh-test").tempdir().unwrap();
        let authorized_keys = tmp.path().join("authorized_keys");
        let client_key = keygen(tmp.path(), "client_ed25519", "ed25519", None, "");
        fs::write(&authorized_keys, format!("{}\n", pub_line(&client_key))).unwrap();
        Lab { tmp, authorized_keys, client_key }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    fn authorize(&self, private: &Path) {
        let mut f = fs::OpenOptions::new().append(true).open(&self.authorized_keys).unwrap();
        writeln!(f, "{}", pub_line(private)).unwrap();
    }

    /// sshd number `n` on 127.0.2.n:(2200+n), with extra config lines.
    fn sshd(&self, n: u8, extra: &str) -> Sshd {
        self.sshd_wrapped(n, extra, None)
    }

    /// Like `sshd`, optionally started through `wrapper` (a shell snippet ending in `exec "$@"`).
    fn sshd_wrapped(&self, n: u8, extra: &str, wrapper: Option<&str>) -> Sshd {
        // sshd refuses to start without its privilege separation directory.
        fs::create_dir_all("/run/sshd").unwrap();
        let dir = self.tmp.path().join(format!("sshd{n}"));
        fs::create_dir_all(&dir).unwrap();
        let host_key = keygen(&dir, "host_ed25519", "ed25519", None, "");
        let address = format!("127.0.2.{n}");
        let port = 2200 + u16::from(n);
        let config = dir.join("sshd_config");
        fs::write(
            &config,
            format!(
                // sshd takes the first value of a keyword: the test's own lines go first.
                "{extra}\nListenAddress {address}:{port}\nHostKey {}\nAuthorizedKeysFile {}\nPermitRootLogin prohibit-password\n\
                 StrictModes no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nPidFile none\n\
                 UseDNS no\nAllowTcpForwarding yes\nLogLevel VERBOSE\n",
                host_key.display(),
                self.authorized_keys.display()
            ),
        )
        .unwrap();
        let log = fs::File::create(dir.join("sshd.log")).unwrap();
        let mut cmd = match wrapper {
            None => Command::new("/usr/sbin/sshd"),
            Some(w) => {
                let mut c = Command::new("sh");
                c.args(["-c", w, "sh", "/usr/sbin/sshd"]);
                c
            }
        };
        cmd.args(["-D", "-e", "-f"]).arg(&config).stdin(Stdio::null()).stdout(Stdio::null()).stderr(log);
        let child = cmd.spawn().expect("start sshd");
        let mut sshd = Sshd { child, address, port, dir, host_key };
        let start = Instant::now();
        loop {
            if std::net::TcpStream::connect((sshd.address.as_str(), sshd.port)).is_ok() {
                return sshd;
            }
            if let Ok(Some(status)) = sshd.child.try_wait() {
                panic!("sshd {n} exited ({status}): {}", sshd.log());
            }
            assert!(start.elapsed() < Duration::from_secs(10), "sshd {n} did not listen: {}", sshd.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A known_hosts file trusting these servers.
    fn known_hosts(&self, name: &str, servers: &[&Sshd]) -> PathBuf {
        let path = self.path(name);
        let text: String = servers.iter().map(|s| format!("{}\n", s.known_hosts_line())).collect();
        fs::write(&path, text).unwrap();
        path
    }

    /// Root login with the lab's client key, strict against `known_hosts`.
    fn target(&self, sshd: &Sshd, known_hosts: &Path) -> Target {
        Target {
            name: format!("node{}", sshd.port - 2200),
            address: sshd.address.clone(),
            port: sshd.port,
            user: "root".into(),
            credentials: Credentials::KeyFile(self.client_key.clone()),
            agent_socket: None,
            host_keys: HostKeyPolicy::Strict,
            known_hosts: KnownHostsFiles { pin_file: known_hosts.to_path_buf(), extra: vec![] },
            jump: None,
            connect_timeout: Duration::from_secs(10),
            command_timeout: Duration::from_secs(60),
        }
    }
}

/// ssh-agent on a private socket; killed by pid when dropped.
struct Agent {
    child: Child,
    socket: PathBuf,
}

impl Agent {
    fn start(dir: &Path) -> Agent {
        fs::create_dir_all(dir).unwrap();
        let socket = dir.join("agent.sock");
        let child = Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&socket)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start ssh-agent (openssh-client)");
        let start = Instant::now();
        while !socket.exists() {
            assert!(start.elapsed() < Duration::from_secs(5), "ssh-agent did not create its socket");
            std::thread::sleep(Duration::from_millis(10));
        }
        Agent { child, socket }
    }

    fn add(&self, key: &Path) {
        run(Command::new("ssh-add").arg("-q").arg(key).env("SSH_AUTH_SOCK", &self.socket));
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn temp_leftovers(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(provision::ssh::TEMP_PREFIX))
        .collect()
}

// ---------------------------------------------------------------------------------------
// exec
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_as_root_returns_status_stdout_stderr_and_takes_stdin() {
    let lab = Lab::new();
    let sshd = lab.sshd(1, "");
    let kh = lab.known_hosts("known_hosts", &[&sshd]);
    let session = Session::connect(&lab.target(&sshd, &kh)).await.unwrap();
    assert!(!session.uses_sudo());
    assert_eq!(session.host(), "node1");

    let out = session.exec("echo out; echo err >&2; exit 3", None).await.unwrap();
    assert_eq!(out.status, 3);
    assert_eq!(out.stdout_text(), "out\n");
    assert_eq!(out.stderr_text(), "err\n");
    assert!(!out.success());

    assert_eq!(session.exec("id -u", None).await.unwrap().stdout_text(), "0\n");

    let out = session.exec("tr a-z A-Z", Some(b"hello stdin\n")).await.unwrap();
    assert!(out.success());
    assert_eq!(out.stdout_text(), "HELLO STDIN\n");

    // No stdin: the command sees EOF at once instead of hanging.
    assert_eq!(session.exec("wc -c", None).await.unwrap().stdout_text().trim(), "0");

    // Output written after the command's main process exited still arrives.
    let out = session.exec("(sleep 0.3; echo late) & echo early", None).await.unwrap();
    assert_eq!(out.stdout_text(), "early\nlate\n");

    // A command killed by a signal.
    let out = session.exec("kill -KILL $$", None).await.unwrap();
    assert_eq!(out.signal.as_deref(), Some("KILL"));
    assert!(!out.success());

    let err = session.exec_checked("echo one >&2; echo two >&2; false", Some(b"secret-on-stdin")).await.unwrap_err();
    match &err {
        SshError::CommandFailed { host, command, status, stderr_tail, .. } => {
            assert_eq!(host, "node1");
            assert_eq!(command, "echo one >&2; echo two >&2; false");
            assert_eq!(*status, 1);
            assert_eq!(stderr_tail, "one\ntwo");
        }
        other => panic!("expected CommandFailed, got {other}"),
    }
    assert!(!err.to_string().contains("secret-on-stdin"));
    assert!(err.to_string().starts_with("node1: `echo one"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_stdin_and_stdout_stream_both_ways() {
    let lab = Lab::new();
    let sshd = lab.sshd(2, "");
    let kh = lab.known_hosts("known_hosts", &[&sshd]);
    let session = Session::connect(&lab.target(&sshd, &kh)).await.unwrap();

    // 8 MiB of varied bytes: hashed on the host...
    let data: Vec<u8> = (0..8 * 1024 * 1024u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    let expected = hex::encode(Sha256::digest(&data));
    let out = session.exec_checked("sha256sum", Some(&data)).await.unwrap();
    assert_eq!(out.stdout_text().split_whitespace().next().unwrap(), expected);

    // ...and echoed back whole: stdout fills while stdin is still being sent, which
    // deadlocks unless both directions are serviced at once.
    let out = session.exec_checked("cat", Some(&data)).await.unwrap();
    assert_eq!(out.stdout.len(), data.len());
    assert!(out.stdout == data, "echoed bytes differ");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_execs_share_one_connection() {
    let lab = Lab::new();
    let sshd = lab.sshd(3, "");
    let kh = lab.known_hosts("known_hosts", &[&sshd]);
    let mut target = lab.target(&sshd, &kh);
    target.command_timeout = Duration::from_secs(30);
    let session = Session::connect(&target).await.unwrap();

    // Each command waits until MAX_CONCURRENT_COMMANDS of them have started: this only
    // finishes if that many really run at once on the one connection. 20 > sshd's
    // MaxSessions (10): the rest wait for a slot rather than fail.
    let barrier = lab.path("barrier");
    fs::create_dir(&barrier).unwrap();
    let n = provision::ssh::MAX_CONCURRENT_COMMANDS;
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let s = session.clone();
            let cmd = format!(
                "touch {dir}/{i}; while [ $(ls {dir} | wc -l) -lt {n} ]; do sleep 0.05; done; echo {i}",
                dir = barrier.display()
            );
            tokio::spawn(async move { s.exec_checked(&cmd, None).await.map(|o| o.stdout_text()) })
        })
        .collect();
    for (i, t) in tasks.into_iter().enumerate() {
        let out = t.await.unwrap().unwrap_or_else(|e| panic!("{e}\nsshd log:\n{}", sshd.log()));
        assert_eq!(out, format!("{i}\n"));
    }
    // One connection: sshd accepted exactly one.
    assert_eq!(sshd.log().matches("Accepted publickey").count(), 1, "{}", sshd.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn command_timeout_names_the_command() {
    let lab = Lab::new();
    let sshd = lab.sshd(4, "");
    let kh = lab.known_hosts("known_hosts", &[&sshd]);
    let mut target = lab.target(&sshd, &kh);
    target.command_timeout = Duration::from_secs(2);
    let session = Session::connect(&target).await.unwrap();
    let start = Instant::now();
    let err = session.exec("sleep 30", None).await.unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(6), "took {:?}", start.elapsed());
    assert!(matches!(&err, SshError::Timeout { phase: Phase::Command(c), .. } if c == "sleep 30"), "{err}");
    assert!(err.to_string().contains("ssh.command_timeout_secs"), "{err}");

    let start = Instant::now();
    let err = session.exec_with_timeout("sleep 31", None, Duration::from_secs(1)).await.unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(5), "took {:?}", start.elapsed());
    match &err {
        SshError::Timeout { phase: Phase::Command(c), .. } => assert_eq!(c, "sleep 31"),
        other => panic!("expected a command timeout, got {other}"),
    }
    // The session is still usable afterwards (with a roomy limit: the machine may be loaded).
    let out = session.exec_with_timeout("echo ok", None, Duration::from_secs(30)).await.unwrap();
    assert_eq!(out.stdout_text(), "ok\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_connection_is_reported_as_lost() {
    let lab = Lab::new();
    let sshd = lab.sshd(22, "");
    let kh = lab.known_hosts("known_hosts", &[&sshd]);
    let session = Session::connect(&lab.target(&sshd, &kh)).await.unwrap();
    // The command's parent is the sshd process serving this connection: killing it
    // drops the connection under a running command.
    let err = session.exec("kill -KILL $PPID; sleep 5", None).await.unwrap_err();
    assert!(matches!(&err, SshError::ConnectionLost { host, .. } if host == "node22"), "{err}");
    let err = session.exec("true", None).await.unwrap_err();
    assert!(matches!(&err, SshError::ConnectionLost { .. }), "{err}");
}

// ---------------------------------------------------------------------------------------
// write_file_atomic
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_file_atomic_sets_content_mode_owner_and_leaves_no_temp_files() {
    let lab = Lab::new();
    let sshd = lab.sshd(5, "");
    let kh = lab.known_hosts("known_hosts", &[&sshd]);
    let session = Session::connect(&lab.target(&sshd, &kh)).await.unwrap();
    // sshd runs on this machine: the host's files are our files.
    let dir = lab.path("etc-test");
    fs::create_dir(&dir).unwrap();
    let file = dir.join("it's a config");
    let path = file.to_str().unwrap();

    session.write_file_atomic(path, b"first\n", 0o640, "root", "daemon").await.unwrap();
    assert_eq!(fs::read(&file).unwrap(), b"first\n");
    let meta = fs::metadata(&file).unwrap();
    assert_eq!(meta.permissions().mode() & 0o7777, 0o640);
    assert_eq!((meta.uid(), meta.gid()), (0, 1), "root:daemon");

    // Overwrite: new content, new mode, new owner, a different inode (renamed over).
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let old_inode = meta.ino();
    session.write_file_atomic(path, &big, 0o600, "daemon", "root").await.unwrap();
    let meta = fs::metadata(&file).unwrap();
    assert!(fs::read(&file).unwrap() == big);
    assert_eq!(meta.permissions().mode() & 0o7777, 0o600);
    assert_eq!((meta.uid(), meta.gid()), (1, 0));
    assert_ne!(meta.ino(), old_inode);

    // Empty content is a valid file.
    session.write_file_atomic(path, b"", 0o644, "0", "0").await.unwrap();
    assert_eq!(fs::read(&file).unwrap(), b"");
    assert!(temp_leftovers(&dir).is_empty(), "{:?}", temp_leftovers(&dir));

    // Failures: unknown owner (the temp file exists by then: the trap removes it),
    // a directory in the way, a missing parent directory.
    let err = session.write_file_atomic(path, b"x", 0o644, "no-such-user-xyz", "root").await.unwrap_err();
    assert!(matches!(err, SshError::CommandFailed { .. }), "{err}");
    assert!(err.to_string().contains(&format!("`write {path}`")), "{err}");
    assert!(err.to_string().contains("no-such-user-xyz"), "{err}");
    assert_eq!(fs::read(&file).unwrap(), b"", "target untouched after a failed write");
    fs::create_dir(dir.join("adir")).unwrap();
    let err =
        session.write_file_atomic(dir.join("adir").to_str().unwrap(), b"x", 0o644, "root", "root").await.unwrap_err();
    assert!(matches!(err, SshError::CommandFailed { .. }), "{err}");
    assert!(fs::metadata(dir.join("adir")).unwrap().is_dir());
    let err = session
        .write_file_atomic(dir.join("missing/f").to_str().unwrap(), b"x", 0o644, "root", "root")
        .await
        .unwrap_err();
    assert!(matches!(err, SshError::CommandFailed { .. }), "{err}");
    assert!(temp_leftovers(&dir).is_empty(), "{:?}", temp_leftovers(&dir));
    assert!(temp_leftovers(&dir.join("adir")).is_empty());

    let err = session.write_file_atomic("relative/path", b"x", 0o644, "root", "root").await.unwrap_err();
    assert!(matches!(err, SshError::InvalidRequest { .. }), "{err}");
}

// ---------------------------------------------------------------------------------------
// host keys
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_refuses_an_unknown_host_and_says_how_to_pin_it() {
    let lab = Lab::new();
    let sshd = lab.sshd(6, "");
    let pin_file = lab.path("state/known_hosts");
    let err = Session::connect(&lab.target(&sshd, &pin_file)).await.unwrap_err();
    match &err {
        SshError::UnknownHostKey { host, lookup, offered, .. } => {
            assert_eq!(host, "node6");
            assert_eq!(lookup, &sshd.lookup());
            assert_eq!(offered, &sshd.host_fingerprint());
        }
        other => panic!("expected UnknownHostKey, got {other}"),
    }
    let text = err.to_string();
    assert!(text.contains("accept-new") && text.contains("ssh-keyscan -p 2206 127.0.2.6"), "{text}");
    assert!(!pin_file.exists(), "strict must not write the pin file");
    // Refused before authentication: sshd never saw our key.
    assert!(!sshd.log().contains("Accepted publickey"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accept_new_pins_on_first_use_then_strict_accepts() {
    let lab = Lab::new();
    let sshd = lab.sshd(7, "");
    let pin_file = lab.path("state/c1/known_hosts");
    let mut target = lab.target(&sshd, &pin_file);
    target.host_keys = HostKeyPolicy::AcceptNew;
    let s = Session::connect(&target).await.unwrap();
    assert_eq!(s.exec("echo hi", None).await.unwrap().stdout_text(), "hi\n");
    assert_eq!(fs::read_to_string(&pin_file).unwrap(), format!("{}\n", sshd.known_hosts_line()));

    // OpenSSH's own tool finds the pinned entry.
    let found = run(Command::new("ssh-keygen").args(["-F", &sshd.lookup(), "-f"]).arg(&pin_file));
    assert!(found.contains(&sshd.lookup()), "{found}");

    // Second connect, now strict, trusts the pinned key; accept-new again pins nothing twice.
    target.host_keys = HostKeyPolicy::Strict;
    Session::connect(&target).await.unwrap();
    target.host_keys = HostKeyPolicy::AcceptNew;
    Session::connect(&target).await.unwrap();
    assert_eq!(fs::read_to_string(&pin_file).unwrap().lines().count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_host_key_is_refused_with_both_fingerprints_even_under_accept_new() {
    let lab = Lab::new();
    let sshd = lab.sshd(8, "");
    let impostor = keygen(lab.tmp.path(), "old_host_key", "ed25519", None, "");
    let old = pub_line(&impostor);
    let mut parts = old.split_whitespace();
    let kh = lab.path("known_hosts");
    fs::write(
        &kh,
        format!("# pinned earlier\n{} {} {}\n", sshd.lookup(), parts.next().unwrap(), parts.next().unwrap()),
    )
    .unwrap();

    for policy in [HostKeyPolicy::Strict, HostKeyPolicy::AcceptNew] {
        let mut target = lab.target(&sshd, &kh);
        target.host_keys = policy;
        let err = Session::connect(&target).await.unwrap_err();
        match &err {
            SshError::HostKeyChanged { offered, expected, file, line, .. } => {
                assert_eq!(offered, &sshd.host_fingerprint());
                assert_eq!(expected, &keygen_fingerprint(&PathBuf::from(format!("{}.pub", impostor.display()))));
                assert_eq!(file, &kh);
                assert_eq!(*line, 2);
            }
            other => panic!("expected HostKeyChanged, got {other}"),
        }
        let text = err.to_string();
        assert!(text.contains(&format!("ssh-keygen -R '{}' -f {}", sshd.lookup(), kh.display())), "{text}");
    }
    assert_eq!(fs::read_to_string(&kh).unwrap().lines().count(), 2, "the pin file is left alone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hashed_known_hosts_entries_from_ssh_keygen_are_honoured() {
    let lab = Lab::new();
    let sshd = lab.sshd(9, "");
    let kh = lab.known_hosts("known_hosts", &[&sshd]);
    run(Command::new("ssh-keygen").args(["-q", "-H", "-f"]).arg(&kh));
    let text = fs::read_to_string(&kh).unwrap();
    assert!(text.starts_with("|1|") && !text.contains("127.0.2.9"), "{text}");
    // The pin file (state dir) is empty here; the hashed file is an extra one.
    let mut target = lab.target(&sshd, &lab.path("state/known_hosts"));
    target.known_hosts.extra = vec![kh];
    let s = Session::connect(&target).await.unwrap();
    assert!(s.exec("true", None).await.unwrap().success());
}

// ---------------------------------------------------------------------------------------
// authentication
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ed25519_ecdsa_and_rsa_client_keys_all_work() {
    let lab = Lab::new();
    let keys = [
        keygen(lab.tmp.path(), "k_ecdsa256", "ecdsa", Some("256"), ""),
        keygen(lab.tmp.path(), "k_ecdsa384", "ecdsa", Some("384"), ""),
        keygen(lab.tmp.path(), "k_rsa", "rsa", Some("3072"), ""),
        lab.client_key.clone(),
    ];
    for k in &keys[..3] {
        lab.authorize(k);
    }
    let sshd = lab.sshd(10, "");
    let kh = lab.known_hosts("known_hosts", &[&sshd]);
    for key in &keys {
        let mut target = lab.target(&sshd, &kh);
        target.credentials = Credentials::KeyFile(key.clone());
        let s = Session::connect(&target).await.unwrap_or_else(|e| panic!("{}: {e}", key.display()));
        assert_eq!(s.exec("echo ok", None).await.unwrap().stdout_text(), "ok\n");
    }
    let log = sshd.log();
    assert!(log.contains("Accepted publickey for root from 127.0.0.1") && log.contains("RSA SHA256:"), "{log}");
    assert!(log.contains("ECDSA SHA256:") && log.contains("ED25519 SHA256:"), "{log}");

    // PEM (PKCS#1) RSA keys, as older tools write them, work too.
    let pem = lab.path("k_rsa_pem");
    fs::copy(&keys[2], &pem).unwrap();
    fs::copy(format!("{}.pub", keys[2].display()), format!("{}.pub", pem.display())).unwrap();
    run(Command::new("ssh-keygen").args(["-q", "-p", "-N", "", "-P", "", "-m", "PEM", "-f"]).arg(&pem));
    assert!(fs::read_to_string(&pem).unwrap().starts_with("-----BEGIN RSA PRIVATE KEY-----"));
    let mut target = lab.target(&sshd, &kh);
    target.credentials = Credentials::KeyFile(pem);
    Session::connect(&target).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_key_is_refused_naming_the_key_and_the_servers_methods() {
    let lab = Lab::new();
    let sshd = lab.sshd(11, "");
    let kh = lab.known_hosts("known_hosts", &[&sshd]);
    let stranger = keygen(lab.tmp.path(), "stranger", "ed25519", None, "");
    let mut target = lab.target(&sshd, &kh);
    target.credentials = Credentials::KeyFile(stranger.clone());
    let err = Session::connect(&target).await.unwrap_err();
    match &err {
        SshError::AuthRefused { host, user, tried, methods, .. } => {
            assert_eq!((host.as_str(), user.as_str()), ("node11", "root"));
            assert_eq!(methods, &vec!["publickey".to_string()]);
            let fp = keygen_fingerprint(&PathBuf::from(format!("{}.pub", stranger.display())));
            assert!(tried.len() == 1 && tried[0].contains(&fp), "{tried:?}");
        }
        other => panic!("expected AuthRefused, got {other}"),
    }
    assert!(err.to_string().contains("the server accepts: publickey"), "{err}");

    // A user that does not exist on the host: refused too, naming the user.
    let mut target = lab.target(&sshd, &kh);
    target.user = "no-such-user".into();
    let err = Session::connect(&target).await.unwrap_err();
    assert!(matches!(&err, SshError::AuthRefused { user, .. } if user == "no-such-user"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_file_problems_are_reported_before_connecting() {
    let lab = Lab::new();
    let sshd = lab.sshd(12, "");
    let kh = lab.known_hosts("known_hosts", &[&sshd]);
    let encrypted = keygen(lab.tmp.path(), "enc", "ed25519", None, "correct horse");
    lab.authorize(&encrypted);

    let mut target = lab.target(&sshd, &kh);
    target.credentials = Credentials::KeyFile(encrypted.clone());
    let err = Session::connect(&target).await.unwrap_err();
    assert!(matches!(&err, SshError::EncryptedKey { path, .. } if path == &encrypted), "{err}");
    assert!(err.to_string().contains(&format!("ssh-add {}", encrypted.display())), "{err}");
    assert!(!err.to_string().contains("correct horse"));

    target.credentials = Credentials::KeyFile(lab.path("nope"));
    let err = Session::connect(&target).await.unwrap_err();
    assert!(matches!(err, SshError::KeyFile { .. }) && err.to_string().contains("does not exist"), "{err}");

    target.credentials = Credentials::KeyFile(PathBuf::from(format!("{}.pub", lab.client_key.display())));
    let err = Session::connect(&target).await.unwrap_err();
    assert!(err.to_string().contains("this is a public key"), "{err}");

    target.credentials = Credentials::Default { candidates: vec![encrypted.clone(), lab.path("absent")] };
    let err = Session::connect(&target).await.unwrap_err();
    assert!(matches!(err, SshError::NoCredentials { .. }), "{err}");
    assert!(err.to_string().contains("passphrase-protected and not in ssh-agent"), "{err}");
    assert!(!sshd.log().contains("Accepted"), "nothing was offered to the server");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssh_agent_keys_authenticate_including_a_passphrase_protected_key_file() {
    let lab = Lab::new();
    let sshd = lab.sshd(13, "");
    let kh = lab.known_hosts("known_hosts", &[&sshd]);
    let agent = Agent::start(lab.tmp.path());

    // A key only the agent has (its file is gone): offered from the agent.
    let agent_only = keygen(lab.tmp.path(), "agent_only", "ecdsa", Some("256"), "");
    lab.authorize(&agent_only);
    agent.add(&agent_only);
    fs::remove_file(&agent_only).unwrap();
    let mut target = lab.target(&sshd, &kh);
    target.credentials = Credentials::Default { candidates: vec![] };
    target.agent_socket = Some(agent.socket.clone());
    let s = Session::connect(&target).await.unwrap();
    assert_eq!(s.exec("echo agent", None).await.unwrap().stdout_text(), "agent\n");

    // ssh.private_key names a passphrase-protected file: the agent signs for it.
    let plain = keygen(lab.tmp.path(), "enc_rsa", "rsa", Some("3072"), "");
    lab.authorize(&plain);
    agent.add(&plain); // added unencrypted; the file below is the same key, encrypted
    run(Command::new("ssh-keygen").args(["-q", "-p", "-P", "", "-N", "pass phrase", "-f"]).arg(&plain));
    let mut target = lab.target(&sshd, &kh);
    target.credentials = Credentials::KeyFile(plain.clone());
    target.agent_socket = Some(agent.socket.clone());
    let s = Session::connect(&target).await.unwrap();
    assert!(s.exec("true", None).await.unwrap().success());
    assert!(sshd.log().contains("Accepted publickey for root from 127.0.0.1") && sshd.log().contains("RSA SHA256:"));

    // More agent keys than sshd's MaxAuthTries: the refusal says why the server hung up.
    let strict = lab.sshd(23, "MaxAuthTries 2");
    let kh23 = lab.known_hosts("kh23", &[&strict]);
    let crowded = Agent::start(&lab.path("crowded"));
    for i in 0..3 {
        crowded.add(&keygen(lab.tmp.path(), &format!("unrelated{i}"), "ed25519", None, ""));
    }
    let mut target = lab.target(&strict, &kh23);
    target.credentials = Credentials::Default { candidates: vec![] };
    target.agent_socket = Some(crowded.socket.clone());
    let err = Session::connect(&target).await.unwrap_err();
    assert!(matches!(&err, SshError::AuthRefused { .. }), "{err}");
    assert!(err.to_string().contains("MaxAuthTries"), "{err}");

    // A dead agent socket is reported when nothing else works.
    let mut target = lab.target(&sshd, &kh);
    target.credentials = Credentials::Default { candidates: vec![] };
    target.agent_socket = Some(lab.path("dead.sock"));
    let err = Session::connect(&target).await.unwrap_err();
    assert!(err.to_string().contains("ssh-agent at") && err.to_string().contains("dead.sock"), "{err}");
}

// ---------------------------------------------------------------------------------------
// reachability and timeouts
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_refused_is_unreachable() {
    let lab = Lab::new();
    let kh = lab.path("known_hosts");
    let mut target = lab.target(&lab.sshd(14, ""), &kh);
    target.port = 2299; // nothing listens there
    let err = Session::connect(&target).await.unwrap_err();
    match &err {
        SshError::Unreachable { host, reason, .. } => {
            assert_eq!(host, "node14");
            assert!(reason.contains("connection refused"), "{reason}");
        }
        other => panic!("expected Unreachable, got {other}"),
    }
    assert!(err.to_string().contains("root@127.0.2.14:2299"), "{err}");

    target.address = "no-such-host.invalid".into();
    let err = Session::connect(&target).await.unwrap_err();
    assert!(matches!(&err, SshError::Unreachable { reason, .. } if reason.contains("cannot resolve")), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_never_speaks_times_out_within_the_limit() {
    let lab = Lab::new();
    // Accepts TCP connections and never says a word (like a hung sshd or a tarpit).
    let listener = tokio::net::TcpListener::bind("127.0.2.15:2215").await.unwrap();
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = listener.accept().await {
            held.push(sock);
        }
    });
    let target = Target {
        name: "silent".into(),
        address: "127.0.2.15".into(),
        port: 2215,
        user: "root".into(),
        credentials: Credentials::KeyFile(lab.client_key.clone()),
        agent_socket: None,
        host_keys: HostKeyPolicy::Strict,
        known_hosts: KnownHostsFiles { pin_file: lab.path("known_hosts"), extra: vec![] },
        jump: None,
        connect_timeout: Duration::from_secs(1),
        command_timeout: Duration::from_secs(60),
    };
    let start = Instant::now();
    let err = Session::connect(&target).await.unwrap_err();
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(900) && took < Duration::from_secs(3), "took {took:?}");
    assert!(matches!(&err, SshError::Timeout { phase: Phase::Handshake, .. }), "{err}");
    assert!(err.to_string().starts_with("silent: timed out after 1s"), "{err}");
    silent.abort();
}

// ---------------------------------------------------------------------------------------
// jump host
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jump_host_carries_the_session_to_the_target() {
    let lab = Lab::new();
    // The bastion logs (at DEBUG) every forwarding request it serves: proof the path is used.
    let bastion = lab.sshd(16, "LogLevel DEBUG1\nPermitOpen 127.0.2.17:2217 127.0.2.18:2218");
    let target_sshd = lab.sshd(17, "");
    let kh = lab.known_hosts("known_hosts", &[&bastion, &target_sshd]);
    let mut target = lab.target(&target_sshd, &kh);
    target.jump = Some(JumpHost { address: bastion.address.clone(), port: bastion.port, user: "root".into() });

    let s = Session::connect(&target).await.unwrap();
    let out = s.exec("echo via-bastion; cat", Some(b"stdin too")).await.unwrap();
    assert_eq!(out.stdout_text(), "via-bastion\nstdin too");
    let log = bastion.log();
    assert!(log.contains("target 127.0.2.17 port 2217"), "bastion did not forward: {log}");

    // The bastion may not forward elsewhere: a clear "unreachable via jump host".
    let mut other = target.clone();
    other.port = 2299;
    let err = Session::connect(&other).await.unwrap_err();
    match &err {
        SshError::Unreachable { host, endpoint, reason } => {
            assert_eq!(host, "node17");
            assert!(endpoint.contains("via jump host root@127.0.2.16:2216"), "{endpoint}");
            assert!(reason.contains("forbids forwarding"), "{reason}");
        }
        other => panic!("expected Unreachable, got {other}"),
    }

    // The bastion's own host key is checked too.
    let only_target = lab.known_hosts("kh_target_only", &[&target_sshd]);
    let mut t2 = lab.target(&target_sshd, &only_target);
    t2.jump = target.jump.clone();
    let err = Session::connect(&t2).await.unwrap_err();
    match &err {
        SshError::UnknownHostKey { host, lookup, .. } => {
            assert_eq!(host, "node17 (jump host root@127.0.2.16:2216)");
            assert_eq!(lookup, &bastion.lookup());
        }
        other => panic!("expected the bastion's key to be unknown, got {other}"),
    }

    // accept-new pins both hops.
    let pins = lab.path("state/known_hosts");
    let mut t3 = lab.target(&target_sshd, &pins);
    t3.jump = target.jump.clone();
    t3.host_keys = HostKeyPolicy::AcceptNew;
    Session::connect(&t3).await.unwrap();
    let text = fs::read_to_string(&pins).unwrap();
    assert!(text.contains(&bastion.known_hosts_line()) && text.contains(&target_sshd.known_hosts_line()), "{text}");
}

// ---------------------------------------------------------------------------------------
// non-root users with sudo
// ---------------------------------------------------------------------------------------

/// Two test users exist only inside a private mount namespace in which sshd runs: their
/// passwd/shadow/group/sudoers entries are bind-mounted copies, so the machine's own files
/// are never modified and nothing needs restoring, even if the test is killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_root_user_with_passwordless_sudo_runs_commands_as_root() {
    assert!(Path::new("/usr/bin/sudo").exists(), "/usr/bin/sudo missing: apt-get install sudo");
    let lab = Lab::new();
    let etc = lab.path("etc");
    fs::create_dir(&etc).unwrap();
    let home = lab.path("home");
    fs::create_dir(&home).unwrap();
    let add = |name: &str, line: &str| {
        let mut text = fs::read_to_string(format!("/etc/{name}")).unwrap();
        text.push_str(line);
        fs::write(etc.join(name), text).unwrap();
    };
    let h = home.display();
    add("passwd", &format!("provtest:x:45001:45001::{h}:/bin/sh\nprovpw:x:45002:45002::{h}:/bin/sh\n"));
    add("group", "provtest:x:45001:\nprovpw:x:45002:\n");
    add("shadow", "provtest:*:19000:0:99999:7:::\nprovpw:*:19000:0:99999:7:::\n");
    fs::write(
        etc.join("sudoers"),
        "root ALL=(ALL:ALL) ALL\nprovtest ALL=(ALL:ALL) NOPASSWD: ALL\nprovpw ALL=(ALL:ALL) ALL\n",
    )
    .unwrap();
    fs::set_permissions(etc.join("sudoers"), fs::Permissions::from_mode(0o440)).unwrap();
    fs::set_permissions(etc.join("shadow"), fs::Permissions::from_mode(0o640)).unwrap();
    let e = etc.display();
    let wrapper = format!(
        "exec unshare --mount --propagation private sh -c '\
         for f in passwd group shadow sudoers; do mount --bind {e}/$f /etc/$f || exit 1; done; exec \"$@\"' sh \"$@\""
    );
    let sshd = lab.sshd_wrapped(19, "", Some(&wrapper));
    let kh = lab.known_hosts("known_hosts", &[&sshd]);

    let mut target = lab.target(&sshd, &kh);
    target.user = "provtest".into();
    let s = Session::connect(&target).await.unwrap();
    assert!(s.uses_sudo());
    assert_eq!(s.exec("id -un", None).await.unwrap().stdout_text(), "root\n");
    assert_eq!(s.exec("echo \"it's $((6*7))\"", None).await.unwrap().stdout_text(), "it's 42\n");
    assert_eq!(s.exec("cat", Some(b"through sudo")).await.unwrap().stdout_text(), "through sudo");
    let dir = lab.path("sudo-out");
    fs::create_dir(&dir).unwrap();
    let file = dir.join("secret.key");
    s.write_file_atomic(file.to_str().unwrap(), b"key material", 0o600, "root", "root").await.unwrap();
    let meta = fs::metadata(&file).unwrap();
    assert_eq!((meta.uid(), meta.gid(), meta.permissions().mode() & 0o7777), (0, 0, 0o600));
    assert_eq!(fs::read(&file).unwrap(), b"key material");
    assert!(temp_leftovers(&dir).is_empty());
    let err = s.exec_checked("exit 4", None).await.unwrap_err();
    assert!(matches!(err, SshError::CommandFailed { status: 4, .. }), "{err}");

    // A user whose sudo wants a password: refused at connect, saying so.
    target.user = "provpw".into();
    let err = Session::connect(&target).await.unwrap_err();
    assert!(matches!(&err, SshError::SudoNeedsPassword { user, .. } if user == "provpw"), "{err}");
    assert!(err.to_string().contains("NOPASSWD"), "{err}");

    // The machine's own files were never touched.
    assert!(!fs::read_to_string("/etc/passwd").unwrap().contains("provtest"));
}

// ---------------------------------------------------------------------------------------
// figures (not a timed test: prints, asserts only correctness)
// ---------------------------------------------------------------------------------------

/// `cargo test --locked --test ssh_transport -- --ignored --nocapture loopback_latency`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "prints loopback latency figures; run on demand"]
async fn loopback_latency_figures() {
    let lab = Lab::new();
    let sshd = lab.sshd(20, "");
    let kh = lab.known_hosts("known_hosts", &[&sshd]);
    let target = lab.target(&sshd, &kh);
    let mut connects = Vec::new();
    for _ in 0..10 {
        let t = Instant::now();
        let s = Session::connect(&target).await.unwrap();
        connects.push(t.elapsed());
        s.close().await;
    }
    let s = Session::connect(&target).await.unwrap();
    let mut execs = Vec::new();
    for _ in 0..50 {
        let t = Instant::now();
        assert!(s.exec("true", None).await.unwrap().success());
        execs.push(t.elapsed());
    }
    let data = vec![7u8; 16 * 1024 * 1024];
    let t = Instant::now();
    let out = s.exec_checked("wc -c", Some(&data)).await.unwrap();
    let upload = t.elapsed();
    assert_eq!(out.stdout_text().trim(), data.len().to_string());
    connects.sort();
    execs.sort();
    println!(
        "loopback: connect (tcp+kex+auth) median {:?} min {:?} max {:?}; exec `true` median {:?} min {:?} max {:?}; 16 MiB stdin {:?} ({:.0} MiB/s)",
        connects[connects.len() / 2],
        connects[0],
        connects[connects.len() - 1],
        execs[execs.len() / 2],
        execs[0],
        execs[execs.len() - 1],
        upload,
        16.0 / upload.as_secs_f64()
    );
}

/// A byte stream to a Unix socket on the host (what verify's CRI client rides on): bytes
/// go both ways; a missing socket and an sshd forbidding such channels are refusals whose
/// reason names both causes (OpenSSH answers both alike).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamlocal_channels_reach_unix_sockets_unless_sshd_forbids_them() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let lab = Lab::new();
    let socket = lab.path("echo.sock");
    let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        if let Ok((mut conn, _)) = listener.accept() {
            let mut buf = [0u8; 64];
            let n = conn.read(&mut buf).unwrap_or(0);
            let _ = conn.write_all(&buf[..n].to_ascii_uppercase());
        }
    });
    let sshd = lab.sshd(25, "");
    let forbidding = lab.sshd(26, "AllowStreamLocalForwarding no");
    let kh = lab.known_hosts("known_hosts", &[&sshd, &forbidding]);
    let limit = Duration::from_secs(5);

    let s = Session::connect(&lab.target(&sshd, &kh)).await.unwrap();
    let mut stream = s.open_streamlocal(socket.to_str().unwrap(), limit).await.unwrap();
    stream.write_all(b"through the socket").await.unwrap();
    let mut answer = vec![0u8; 18];
    tokio::time::timeout(limit, stream.read_exact(&mut answer)).await.unwrap().unwrap();
    assert_eq!(answer, b"THROUGH THE SOCKET");

    let missing = lab.path("missing.sock");
    match s.open_streamlocal(missing.to_str().unwrap(), limit).await {
        Err(SshError::StreamLocalRefused { host, reason, .. }) => {
            assert_eq!(host, "node25");
            assert!(reason.contains("missing or not \"root\"'s to open"), "{reason}");
        }
        other => panic!("a missing socket: {:?}", other.map(|_| "a stream")),
    }
    let f = Session::connect(&lab.target(&forbidding, &kh)).await.unwrap();
    let err = f.open_streamlocal(socket.to_str().unwrap(), limit).await.map(|_| ()).unwrap_err();
    // OpenSSH answers as for a missing socket; the reason names both, its log tells which.
    assert!(matches!(err, SshError::StreamLocalRefused { .. }), "{err}");
    assert!(err.to_string().contains("AllowStreamLocalForwarding no"), "{err}");
    assert!(forbidding.log().contains("refused streamlocal port forward"), "{}", forbidding.log());
    // The session is still good for commands.
    assert_eq!(f.exec("echo still", None).await.unwrap().stdout_text(), "still\n");
}
