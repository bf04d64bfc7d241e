//! A real 3-member etcd cluster on 127.0.3.1-3 with mTLS, for tests and the benchmark.
//!
//! Each member runs /usr/bin/etcd (Debian's 3.4.23) with its own data dir in a temp dir.
//! Certificates come from the project's PKI (`pki::ensure` on the fixture's inventory, in
//! the state directory beside it), so the `provision etcd` commands find them exactly as
//! they would on an operator's machine. Dropping the fixture kills every member (SIGCONT
//! first, in case a test stopped one).

#![allow(dead_code)]

use std::fs;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use provision::inventory::Inventory;
use provision::state::StateDir;

pub const ETCD_BIN: &str = "/usr/bin/etcd";
pub const ETCDCTL_BIN: &str = "/usr/bin/etcdctl";

pub struct Member {
    pub name: String,
    pub ip: Ipv4Addr,
    pub data_dir: PathBuf,
    pub log: PathBuf,
    child: Option<Child>,
}

impl Member {
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }
}

pub struct LocalEtcd {
    pub dir: tempfile::TempDir,
    pub client_port: u16,
    pub peer_port: u16,
    pub members: Vec<Member>,
    pub ca_file: PathBuf,
    pub client_cert_file: PathBuf,
    pub client_key_file: PathBuf,
    pub cluster_name: String,
    /// The state directory's pki/ (written by `pki::ensure`).
    pub pki_dir: PathBuf,
    pub inventory_path: PathBuf,
}

fn write(path: &Path, content: &str) {
    fs::write(path, content).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

impl LocalEtcd {
    /// Starts 3 members on 127.0.3.1-3 with the given ports and waits until the cluster
    /// answers `etcdctl endpoint health` on every member.
    pub fn start(cluster_name: &str, client_port: u16, peer_port: u16) -> LocalEtcd {
        assert!(Path::new(ETCD_BIN).exists(), "{ETCD_BIN} missing: apt-get install etcd-server");
        let dir = tempfile::Builder::new().prefix("provision-etcd-").tempdir().expect("tempdir");
        let mut members = Vec::new();
        for i in 1..=3u8 {
            let name = format!("m{i}");
            members.push(Member {
                data_dir: dir.path().join(&name),
                log: dir.path().join(format!("{name}.log")),
                name,
                ip: Ipv4Addr::new(127, 0, 3, i),
                child: None,
            });
        }
        for m in &members {
            let addr = SocketAddr::new(IpAddr::V4(m.ip), client_port);
            assert!(
                TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err(),
                "{addr} is already in use (a leftover etcd from a crashed run?)"
            );
        }
        let inventory_path = dir.path().join("inventory.toml");
        let state = StateDir::beside(&inventory_path, cluster_name);
        let pki_dir = state.pki_dir();
        let mut cluster = LocalEtcd {
            ca_file: pki_dir.join("etcd-ca.crt"),
            client_cert_file: pki_dir.join("apiserver-etcd-client.crt"),
            client_key_file: pki_dir.join("apiserver-etcd-client.key"),
            pki_dir,
            inventory_path,
            dir,
            client_port,
            peer_port,
            members,
            cluster_name: cluster_name.to_string(),
        };
        write(&cluster.inventory_path, &cluster.inventory_toml());
        let inventory: Inventory = provision::inventory::load(&cluster.inventory_path)
            .unwrap_or_else(|e| panic!("fixture inventory is invalid:\n{e}"))
            .inventory;
        provision::pki::ensure(&inventory, &state).expect("pki::ensure for the fixture inventory");
        for i in 0..3 {
            cluster.spawn(i, "new");
        }
        cluster.wait_healthy(Duration::from_secs(60));
        cluster
    }

    pub fn initial_cluster(&self) -> String {
        self.members
            .iter()
            .map(|m| format!("{}=https://{}:{}", m.name, m.ip, self.peer_port))
            .collect::<Vec<_>>()
            .join(",")
    }

    fn spawn(&mut self, i: usize, state: &str) {
        let m = &self.members[i];
        let cert = self.pki_dir.join(format!("etcd-server-{}.crt", m.name));
        let key = self.pki_dir.join(format!("etcd-server-{}.key", m.name));
        // The peer certificate is the member's SERVER certificate here: etcd 3.4 checks a
        // peer's client certificate SANs against the connection's source address, and on
        // loopback every peer connection comes from 127.0.0.1, which the PKI's peer
        // certificates (host name + host address) rightly do not name; the server
        // certificate does (and carries ClientAuth too).
        let peer_cert = cert.clone();
        let peer_key = key.clone();
        let client = format!("https://{}:{}", m.ip, self.client_port);
        let peer = format!("https://{}:{}", m.ip, self.peer_port);
        let log = fs::OpenOptions::new().create(true).append(true).open(&m.log).expect("log");
        let child = Command::new(ETCD_BIN)
            .arg(format!("--name={}", m.name))
            .arg(format!("--data-dir={}", m.data_dir.display()))
            .arg(format!("--listen-client-urls={client}"))
            .arg(format!("--advertise-client-urls={client}"))
            .arg(format!("--listen-peer-urls={peer}"))
            .arg(format!("--initial-advertise-peer-urls={peer}"))
            .arg(format!("--initial-cluster={}", self.initial_cluster()))
            .arg(format!("--initial-cluster-token={}-token", self.cluster_name))
            .arg(format!("--initial-cluster-state={state}"))
            .arg(format!("--cert-file={}", cert.display()))
            .arg(format!("--key-file={}", key.display()))
            .arg("--client-cert-auth=true")
            .arg(format!("--trusted-ca-file={}", self.ca_file.display()))
            .arg(format!("--peer-cert-file={}", peer_cert.display()))
            .arg(format!("--peer-key-file={}", peer_key.display()))
            .arg("--peer-client-cert-auth=true")
            .arg(format!("--peer-trusted-ca-file={}", self.ca_file.display()))
            .arg("--heartbeat-interval=100")
            .arg("--election-timeout=1000")
            .arg("--logger=zap")
            .arg("--log-outputs=stderr")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log fd"))
            .stderr(log)
            .spawn()
            .expect("spawn etcd");
        self.members[i].child = Some(child);
    }

    pub fn endpoint(&self, i: usize) -> String {
        format!("https://{}:{}", self.members[i].ip, self.client_port)
    }

    pub fn endpoints(&self) -> String {
        (0..self.members.len()).map(|i| self.endpoint(i)).collect::<Vec<_>>().join(",")
    }

    /// Runs the real etcdctl (API v3) against the given endpoints with the client cert.
    pub fn etcdctl(&self, endpoints: &str, args: &[&str]) -> Output {
        Command::new(ETCDCTL_BIN)
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={endpoints}"))
            .arg(format!("--cacert={}", self.ca_file.display()))
            .arg(format!("--cert={}", self.client_cert_file.display()))
            .arg(format!("--key={}", self.client_key_file.display()))
            .arg("--command-timeout=20s")
            .args(args)
            .output()
            .expect("run etcdctl")
    }

    pub fn wait_healthy(&self, within: Duration) {
        let start = Instant::now();
        loop {
            let out = self.etcdctl(&self.endpoints(), &["endpoint", "health"]);
            if out.status.success() {
                return;
            }
            if start.elapsed() > within {
                let logs: String = self
                    .members
                    .iter()
                    .map(|m| {
                        let log = fs::read_to_string(&m.log).unwrap_or_default();
                        let tail: Vec<&str> = log.lines().rev().take(15).collect();
                        format!("--- {} log tail:\n{}\n", m.name, tail.into_iter().rev().collect::<Vec<_>>().join("\n"))
                    })
                    .collect();
                panic!(
                    "local etcd not healthy after {within:?}: {}{}\n{logs}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    /// Kills member `i` and waits for it to exit.
    pub fn stop(&mut self, i: usize) {
        if let Some(mut child) = self.members[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts member `i` again with exactly the flags it was first started with
    /// (including --initial-cluster-state=new and the original token).
    pub fn start_again(&mut self, i: usize) {
        self.spawn(i, "new");
    }

    fn signal(&self, i: usize, sig: &str) {
        let pid = self.members[i].pid();
        assert!(pid != 0, "member {i} not running");
        let st = Command::new("kill").arg(format!("-{sig}")).arg(pid.to_string()).status().expect("kill");
        assert!(st.success(), "kill -{sig} {pid}");
    }

    /// SIGSTOP: the process keeps its sockets (TCP connects still succeed) but never answers.
    pub fn freeze(&self, i: usize) {
        self.signal(i, "STOP");
    }

    pub fn thaw(&self, i: usize) {
        self.signal(i, "CONT");
    }

    /// The inventory (TOML) of this cluster: the hosts are the members, role etcd.
    pub fn inventory_toml(&self) -> String {
        let mut s = format!(
            r#"[cluster]
name = "{name}"
kubernetes_version = "1.34.2"
etcd_version = "3.4.23"
api_endpoint = "127.0.3.1"
service_cidr = "10.32.0.0/24"
pod_cidr = "10.200.0.0/16"

[etcd]
client_port = {cp}
peer_port = {pp}
"#,
            name = self.cluster_name,
            cp = self.client_port,
            pp = self.peer_port
        );
        for m in &self.members {
            s.push_str(&format!(
                "\n[[host]]\nname = \"{}\"\naddress = \"{}\"\nroles = [\"etcd\", \"control-plane\"]\n",
                m.name, m.ip
            ));
        }
        s
    }

    /// The inventory, loaded and validated like the CLI does.
    pub fn load_inventory(&self) -> Inventory {
        provision::inventory::load(&self.inventory_path).unwrap_or_else(|e| panic!("invalid inventory:\n{e}")).inventory
    }

    /// Where the inventory (and, beside it, the state directory with the PKI) lives.
    pub fn inventory(&self) -> &Path {
        &self.inventory_path
    }

    /// The TLS flags the `provision etcd` commands take for this cluster's client cert.
    pub fn tls_args(&self) -> Vec<String> {
        vec![
            format!("--cacert={}", self.ca_file.display()),
            format!("--cert={}", self.client_cert_file.display()),
            format!("--key={}", self.client_key_file.display()),
        ]
    }
}

impl Drop for LocalEtcd {
    fn drop(&mut self) {
        for m in &mut self.members {
            if let Some(mut child) = m.child.take() {
                let pid = child.id().to_string();
                let _ = Command::new("kill").args(["-CONT", &pid]).status();
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}
