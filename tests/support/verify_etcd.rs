//! A real 3-member etcd 3.4 cluster on 127.0.6.1-3 (the verify helper's loopback range),
//! started with the TLS flags the rendered etcd unit uses (server and PEER certificates
//! from the project's PKI, client-cert auth both ways, the rendered cipher suites), and
//! an inventory + state directory beside it so `verify` finds everything as on an
//! operator's machine. Dropping it kills the members.

#![allow(dead_code)]

use std::fs;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use provision::inventory::Inventory;
use provision::state::StateDir;

pub const ETCD_BIN: &str = "/usr/bin/etcd";
pub const ETCDCTL_BIN: &str = "/usr/bin/etcdctl";

pub struct VerifyEtcd {
    pub dir: tempfile::TempDir,
    pub client_port: u16,
    pub peer_port: u16,
    pub names: Vec<String>,
    pub ips: Vec<Ipv4Addr>,
    pub pki_dir: PathBuf,
    pub inventory_path: PathBuf,
    children: Vec<Option<Child>>,
}

impl VerifyEtcd {
    pub fn start(cluster: &str, client_port: u16, peer_port: u16) -> VerifyEtcd {
        assert!(Path::new(ETCD_BIN).exists(), "{ETCD_BIN} missing: apt-get install etcd-server");
        let dir = tempfile::Builder::new().prefix("provision-verify-etcd-").tempdir().expect("tempdir");
        let names: Vec<String> = (1..=3).map(|i| format!("v{i}")).collect();
        let ips: Vec<Ipv4Addr> = (1..=3).map(|i| Ipv4Addr::new(127, 0, 6, i)).collect();
        for ip in &ips {
            let addr = SocketAddr::new(IpAddr::V4(*ip), client_port);
            assert!(
                TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err(),
                "{addr} is already in use (a leftover etcd from a crashed run?)"
            );
        }
        let inventory_path = dir.path().join("inventory.toml");
        let state = StateDir::beside(&inventory_path, cluster);
        let mut c = VerifyEtcd {
            pki_dir: state.pki_dir(),
            inventory_path,
            dir,
            client_port,
            peer_port,
            names,
            ips,
            children: vec![None, None, None],
        };
        fs::write(&c.inventory_path, c.inventory_toml(cluster)).expect("write inventory");
        let inventory: Inventory = toml::from_str(&c.inventory_toml(cluster)).expect("fixture inventory parses");
        provision::pki::ensure(&inventory, &state).expect("pki::ensure for the fixture");
        for i in 0..3 {
            c.spawn(i, cluster);
        }
        c.wait_healthy(Duration::from_secs(60));
        c
    }

    pub fn inventory_toml(&self, cluster: &str) -> String {
        let mut s = format!(
            "[cluster]\nname = \"{cluster}\"\nkubernetes_version = \"1.34.2\"\netcd_version = \"3.4.23\"\n\
             api_endpoint = \"127.0.6.1\"\nservice_cidr = \"10.32.0.0/24\"\npod_cidr = \"10.200.0.0/16\"\n\n\
             [ssh]\nuser = \"root\"\nconnect_timeout_secs = 2\n\n\
             [etcd]\nclient_port = {}\npeer_port = {}\n\n[artifacts]\nkubernetes = \"skip\"\netcd = \"preinstalled\"\n",
            self.client_port, self.peer_port
        );
        for (name, ip) in self.names.iter().zip(&self.ips) {
            s.push_str(&format!(
                "\n[[host]]\nname = \"{name}\"\naddress = \"{ip}\"\nroles = [\"etcd\", \"control-plane\"]\n"
            ));
        }
        s
    }

    pub fn initial_cluster(&self) -> String {
        self.names
            .iter()
            .zip(&self.ips)
            .map(|(n, ip)| format!("{n}=https://{ip}:{}", self.peer_port))
            .collect::<Vec<_>>()
            .join(",")
    }

    fn spawn(&mut self, i: usize, cluster: &str) {
        let (name, ip) = (&self.names[i], self.ips[i]);
        let pki = |f: &str| self.pki_dir.join(f).display().to_string();
        let client = format!("https://{ip}:{}", self.client_port);
        let peer = format!("https://{ip}:{}", self.peer_port);
        let log_path = self.dir.path().join(format!("{name}.log"));
        let log = fs::OpenOptions::new().create(true).append(true).open(&log_path).expect("log");
        let child = Command::new(ETCD_BIN)
            .arg(format!("--name={name}"))
            .arg(format!("--data-dir={}", self.dir.path().join(name).display()))
            .arg(format!("--listen-client-urls={client}"))
            .arg(format!("--advertise-client-urls={client}"))
            .arg(format!("--listen-peer-urls={peer}"))
            .arg(format!("--initial-advertise-peer-urls={peer}"))
            .arg(format!("--initial-cluster={}", self.initial_cluster()))
            .arg(format!("--initial-cluster-token={cluster}-token"))
            .arg("--initial-cluster-state=new")
            .arg(format!("--cert-file={}", pki(&format!("etcd-server-{name}.crt"))))
            .arg(format!("--key-file={}", pki(&format!("etcd-server-{name}.key"))))
            .arg("--client-cert-auth=true")
            .arg(format!("--trusted-ca-file={}", pki("etcd-ca.crt")))
            .arg(format!("--peer-cert-file={}", pki(&format!("etcd-peer-{name}.crt"))))
            .arg(format!("--peer-key-file={}", pki(&format!("etcd-peer-{name}.key"))))
            .arg("--peer-client-cert-auth=true")
            .arg(format!("--peer-trusted-ca-file={}", pki("etcd-ca.crt")))
            .arg(format!("--cipher-suites={}", provision::render::context::TLS_CIPHER_SUITES.join(",")))
            .arg("--heartbeat-interval=100")
            .arg("--election-timeout=1000")
            .arg("--logger=zap")
            .arg("--log-outputs=stderr")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log fd"))
            .stderr(log)
            .spawn()
            .expect("spawn etcd");
        self.children[i] = Some(child);
    }

    pub fn etcdctl(&self, args: &[&str]) -> std::process::Output {
        let endpoints: Vec<String> = self.ips.iter().map(|ip| format!("https://{ip}:{}", self.client_port)).collect();
        Command::new(ETCDCTL_BIN)
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", endpoints.join(",")))
            .arg(format!("--cacert={}", self.pki_dir.join("etcd-ca.crt").display()))
            .arg(format!("--cert={}", self.pki_dir.join("apiserver-etcd-client.crt").display()))
            .arg(format!("--key={}", self.pki_dir.join("apiserver-etcd-client.key").display()))
            .arg("--command-timeout=20s")
            .args(args)
            .output()
            .expect("run etcdctl")
    }

    fn wait_healthy(&self, within: Duration) {
        let start = Instant::now();
        loop {
            let out = self.etcdctl(&["endpoint", "health"]);
            if out.status.success() {
                return;
            }
            if start.elapsed() > within {
                let logs: String = self
                    .names
                    .iter()
                    .map(|n| {
                        let log = fs::read_to_string(self.dir.path().join(format!("{n}.log"))).unwrap_or_default();
                        let tail: Vec<&str> = log.lines().rev().take(10).collect();
                        format!("--- {n}:\n{}\n", tail.into_iter().rev().collect::<Vec<_>>().join("\n"))
                    })
                    .collect();
                panic!("verify etcd fixture not healthy: {}\n{logs}", String::from_utf8_lossy(&out.stderr));
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    pub fn inventory(&self) -> &Path {
        &self.inventory_path
    }
}

impl Drop for VerifyEtcd {
    fn drop(&mut self) {
        for child in self.children.iter_mut().flatten() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
