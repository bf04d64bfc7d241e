//! A small real HTTP/1.1 server on 127.0.7.1 (the artifacts tests' loopback range),
//! laid out like dl.k8s.io and the etcd release page, with the faults downloads meet:
//! a wrong checksum file, a missing file (404), a transfer that breaks off, redirects.
//! Every request is recorded so tests can count what was fetched.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use provision::artifacts::{Arch, Binary, elf, etcd_tarball, sha256_hex};

pub const K8S: &str = "1.34.2";
pub const ETCD: &str = "3.5.21";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    pub path: String,
    /// The Range header, if any ("bytes=100-").
    pub range: Option<String>,
}

#[derive(Default)]
struct State {
    files: BTreeMap<String, Vec<u8>>,
    /// path -> bytes sent before the connection is closed (Content-Length stays full).
    truncate: BTreeMap<String, usize>,
    /// Answer Range requests with the whole file (200), like servers without range support.
    ignore_range: bool,
    hits: Vec<Hit>,
}

pub struct Mirror {
    pub addr: std::net::SocketAddr,
    state: Arc<Mutex<State>>,
}

impl Mirror {
    pub fn start() -> Mirror {
        let listener = TcpListener::bind("127.0.7.1:0").expect("bind 127.0.7.1");
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State::default()));
        let st = state.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let st = st.clone();
                std::thread::spawn(move || {
                    let _ = serve(conn, &st);
                });
            }
        });
        Mirror { addr, state }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
    /// What `kubernetes_base_url` points at (requests there redirect to /k8s-cdn, like dl.k8s.io).
    pub fn k8s_base(&self) -> String {
        format!("{}/k8s", self.url())
    }
    pub fn etcd_base(&self) -> String {
        format!("{}/etcd", self.url())
    }

    pub fn put(&self, path: &str, bytes: Vec<u8>) {
        self.state.lock().unwrap().files.insert(path.to_string(), bytes);
    }
    pub fn remove(&self, path: &str) {
        self.state.lock().unwrap().files.remove(path);
    }
    pub fn get(&self, path: &str) -> Vec<u8> {
        self.state.lock().unwrap().files[path].clone()
    }
    pub fn truncate(&self, path: &str, after: usize) {
        self.state.lock().unwrap().truncate.insert(path.to_string(), after);
    }
    pub fn heal(&self, path: &str) {
        self.state.lock().unwrap().truncate.remove(path);
    }
    pub fn ignore_range(&self, yes: bool) {
        self.state.lock().unwrap().ignore_range = yes;
    }
    pub fn hits(&self) -> Vec<Hit> {
        self.state.lock().unwrap().hits.clone()
    }
    pub fn hit_count(&self) -> usize {
        self.state.lock().unwrap().hits.len()
    }

    /// The served path of a Kubernetes file (after the redirect).
    pub fn k8s_path(arch: Arch, name: &str) -> String {
        format!("/k8s-cdn/release/v{K8S}/bin/linux/{arch}/{name}")
    }
    pub fn etcd_path(name: &str) -> String {
        format!("/etcd/v{ETCD}/{name}")
    }

    /// Publishes fake binaries (ELF headers of `arch`) with their checksums, like the
    /// real release sites. Returns the binaries' contents by name.
    pub fn publish(&self, arch: Arch) -> BTreeMap<String, Vec<u8>> {
        let mut out = BTreeMap::new();
        for b in Binary::KUBERNETES {
            let bytes = fake(b.name(), arch);
            self.put(&Self::k8s_path(arch, b.name()), bytes.clone());
            // dl.k8s.io's .sha256 holds just the digest, without a newline.
            self.put(&Self::k8s_path(arch, &format!("{}.sha256", b.name())), sha256_hex(&bytes).into_bytes());
            out.insert(b.name().to_string(), bytes);
        }
        let members: Vec<(String, Vec<u8>)> =
            Binary::ETCD.iter().map(|b| (b.name().to_string(), fake(b.name(), arch))).collect();
        let refs: Vec<(&str, &[u8])> = members.iter().map(|(n, b)| (n.as_str(), b.as_slice())).collect();
        let mut with_docs = refs.clone();
        with_docs.push(("README.md", b"etcd docs"));
        let tgz = etcd_tarball::build(&format!("etcd-v{ETCD}-linux-{arch}"), &with_docs).unwrap();
        let name = format!("etcd-v{ETCD}-linux-{arch}.tar.gz");
        self.put(&Self::etcd_path(&name), tgz.clone());
        self.add_to_sums(&name, &tgz);
        for (n, b) in members {
            out.insert(n, b);
        }
        out
    }

    fn add_to_sums(&self, name: &str, bytes: &[u8]) {
        let path = Self::etcd_path("SHA256SUMS");
        let mut st = self.state.lock().unwrap();
        let sums = st.files.entry(path).or_insert_with(|| {
            // Other assets of a release, as on the real page.
            format!("{}  etcd-v{ETCD}-darwin-amd64.zip\n", "ab".repeat(32)).into_bytes()
        });
        sums.extend_from_slice(format!("{}  {name}\n", sha256_hex(bytes)).as_bytes());
    }
}

/// A tiny "binary": a valid ELF header for `arch` and a recognisable body.
pub fn fake(name: &str, arch: Arch) -> Vec<u8> {
    let body = format!("fake {name} for {arch}\n").repeat(2000);
    elf::fake_binary(arch, body.as_bytes())
}

fn serve(conn: TcpStream, state: &Mutex<State>) -> std::io::Result<()> {
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
    let mut range = None;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h == "\r\n" || h == "\n" {
            break;
        }
        if let Some((k, v)) = h.split_once(':')
            && k.eq_ignore_ascii_case("range")
        {
            range = Some(v.trim().to_string());
        }
    }
    let (file, cut) = {
        let mut st = state.lock().unwrap();
        st.hits.push(Hit { path: path.clone(), range: range.clone() });
        if st.ignore_range {
            range = None;
        }
        (st.files.get(&path).cloned(), st.truncate.get(&path).copied())
    };
    let mut out = conn;
    // Like dl.k8s.io: the release URL redirects to the CDN.
    if let Some(rest) = path.strip_prefix("/k8s/") {
        let head = format!(
            "HTTP/1.1 302 Found\r\nLocation: /k8s-cdn/{rest}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        return out.write_all(head.as_bytes());
    }
    let Some(body) = file else {
        let msg = b"<html>404 Not Found</html>";
        let head = format!("HTTP/1.1 404 Not Found\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", msg.len());
        out.write_all(head.as_bytes())?;
        return out.write_all(msg);
    };
    let start = range
        .as_deref()
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|s| s.parse::<usize>().ok());
    let (status, from) = match start {
        Some(s) if s < body.len() => ("206 Partial Content", s),
        Some(_) => {
            let head = format!(
                "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                body.len()
            );
            return out.write_all(head.as_bytes());
        }
        None => ("200 OK", 0),
    };
    let mut head = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n", body.len() - from);
    if from > 0 {
        head.push_str(&format!("Content-Range: bytes {from}-{}/{}\r\n", body.len() - 1, body.len()));
    }
    head.push_str("\r\n");
    out.write_all(head.as_bytes())?;
    let end = cut.map_or(body.len(), |c| c.clamp(from, body.len()));
    out.write_all(&body[from..end])?;
    out.flush()?;
    // Dropping the socket closes it: a cut transfer ends short of Content-Length.
    Ok(())
}
