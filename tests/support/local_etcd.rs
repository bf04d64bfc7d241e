//! A real 3-member etcd cluster on 127.0.3.1-3 with mTLS, for tests and the benchmark.
//!
//! Each member runs /usr/bin/etcd (Debian's 3.4.23) with its own data dir in a temp dir.
//! Certificates come from rcgen here (an etcd CA, one server+peer certificate per member,
//! one client certificate), shaped like the ones the PKI module issues: server certificates
//! carry ServerAuth AND ClientAuth because etcd 3.4 dials itself with them.
//! Dropping the fixture kills every member (SIGCONT first, in case a test stopped one).

#![allow(dead_code)]

use std::fs;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

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
}

fn write(path: &Path, content: &str) {
    fs::write(path, content).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

fn leaf(issuer: &Issuer<'_, KeyPair>, cn: &str, sans: Vec<String>, server: bool) -> (String, String) {
    let key = KeyPair::generate().expect("generate key");
    let mut params = CertificateParams::new(sans).expect("leaf params");
    params.distinguished_name.push(DnType::CommonName, cn);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = if server {
        vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth]
    } else {
        vec![ExtendedKeyUsagePurpose::ClientAuth]
    };
    let cert = params.signed_by(&key, issuer).expect("sign leaf");
    (cert.pem(), key.serialize_pem())
}

impl LocalEtcd {
    /// Starts 3 members on 127.0.3.1-3 with the given ports and waits until the cluster
    /// answers `etcdctl endpoint health` on every member.
    pub fn start(cluster_name: &str, client_port: u16, peer_port: u16) -> LocalEtcd {
        assert!(Path::new(ETCD_BIN).exists(), "{ETCD_BIN} missing: apt-get install etcd-server");
        let dir = tempfile::Builder::new().prefix("provision-etcd-").tempdir().expect("tempdir");
        let pki = dir.path().join("pki");
        fs::create_dir_all(&pki).expect("pki dir");

        let ca_key = KeyPair::generate().expect("ca key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        ca_params.distinguished_name.push(DnType::CommonName, "test-etcd-ca");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca_params.self_signed(&ca_key).expect("ca cert");
        let issuer = Issuer::new(ca_params, ca_key);
        let ca_file = pki.join("ca.crt");
        write(&ca_file, &ca_cert.pem());

        let (cert, key) = leaf(&issuer, "test-etcd-client", vec![], false);
        let client_cert_file = pki.join("client.crt");
        let client_key_file = pki.join("client.key");
        write(&client_cert_file, &cert);
        write(&client_key_file, &key);

        let mut members = Vec::new();
        for i in 1..=3u8 {
            let name = format!("m{i}");
            let ip = Ipv4Addr::new(127, 0, 3, i);
            let (cert, key) =
                leaf(&issuer, &name, vec![ip.to_string(), "localhost".into()], true);
            write(&pki.join(format!("{name}.crt")), &cert);
            write(&pki.join(format!("{name}.key")), &key);
            members.push(Member {
                data_dir: dir.path().join(&name),
                log: dir.path().join(format!("{name}.log")),
                name,
                ip,
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
        let mut cluster = LocalEtcd {
            dir,
            client_port,
            peer_port,
            members,
            ca_file,
            client_cert_file,
            client_key_file,
            cluster_name: cluster_name.to_string(),
        };
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
        let pki = self.dir.path().join("pki");
        let m = &self.members[i];
        let cert = pki.join(format!("{}.crt", m.name));
        let key = pki.join(format!("{}.key", m.name));
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
            .arg(format!("--peer-cert-file={}", cert.display()))
            .arg(format!("--peer-key-file={}", key.display()))
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

    pub fn write_inventory(&self) -> PathBuf {
        let path = self.dir.path().join("inventory.toml");
        write(&path, &self.inventory_toml());
        path
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
