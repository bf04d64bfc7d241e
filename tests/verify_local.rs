//! verify's TLS and encryption-at-rest checks against REAL servers on this machine:
//! a 3-member etcd 3.4 with the rendered TLS flags on 127.0.6.1-3 (support/verify_etcd.rs),
//! and `openssl s_server` instances on 127.0.6.5-9 set up wrong on purpose (wrong CA,
//! wrong SAN, TLS 1.0 allowed, no client certificate required) to prove each check fails
//! when it should. openssl s_client is used as an independent oracle where it helps.

#[path = "support/verify_etcd.rs"]
mod verify_etcd;

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use provision::etcd::connect::connect;
use provision::etcd::members;
use provision::inventory::{self, Loaded};
use provision::render::{self, Templates, paths};
use provision::verify::encryption::envelope::{self, Provider};
use provision::verify::encryption::k8s_proto::{NewSecret, encode_secret};
use provision::verify::encryption::keyring::Keyring;
use provision::verify::encryption::{self as enc};
use provision::verify::material::Material;
use provision::verify::report::{CheckResult, Status};
use provision::verify::tls::{self, Endpoint, Kind};
use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType};
use verify_etcd::VerifyEtcd;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn lock() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner())
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime")
}

const LIMIT: Duration = Duration::from_secs(5);

fn loaded(path: &Path) -> Loaded {
    inventory::load(path).unwrap_or_else(|e| panic!("{e}"))
}

fn find<'a>(results: &'a [CheckResult], check: &str, target: &str) -> &'a CheckResult {
    results
        .iter()
        .find(|r| r.check == check && r.target.as_deref().is_some_and(|t| t.starts_with(target)))
        .unwrap_or_else(|| panic!("no {check} ({target}) in {results:#?}"))
}

fn openssl(args: &[&str]) -> Output {
    Command::new("openssl").args(args).stdin(Stdio::null()).output().expect("run openssl")
}

#[test]
fn real_etcd_passes_every_tls_check() {
    let _g = lock();
    let c = VerifyEtcd::start("vtls", 26379, 26380);
    let l = loaded(c.inventory());
    let material = Material::load(&l).expect("material");
    let results = rt().block_on(tls::run(&l.inventory, &material, LIMIT));
    for r in &results {
        eprintln!("{} ({}) {:?}: {}", r.check, r.target.as_deref().unwrap_or(""), r.status, r.evidence);
    }
    for check in [tls::CERTIFICATE, tls::MIN_VERSION, tls::PLAINTEXT, tls::CLIENT_CERT] {
        for target in ["etcd client :26379", "etcd peer :26380"] {
            let r = find(&results, check, target);
            assert_eq!(r.status, Status::Pass, "{check} {target}: {}", r.evidence);
            assert_eq!(r.hosts, vec!["v1", "v2", "v3"]);
        }
    }
    let cert = find(&results, tls::CERTIFICATE, "etcd client");
    assert!(
        cert.evidence.contains("chains to the etcd CA") && cert.evidence.contains("valid for 127.0.6.2"),
        "{}",
        cert.evidence
    );
    assert!(cert.evidence.contains("TLSv1_3") || cert.evidence.contains("TLSv1_2"), "{}", cert.evidence);
    // etcd 3.4 (Go) answers an old ClientHello with a protocol_version alert; its TLS
    // listener hangs up on a plaintext request; a client without a certificate is turned
    // away in the handshake.
    let min = find(&results, tls::MIN_VERSION, "etcd client");
    assert!(min.evidence.contains("TLS 1.0 and TLS 1.1: fatal alert protocol_version (70)"), "{}", min.evidence);
    let plain = find(&results, tls::PLAINTEXT, "etcd client");
    assert!(plain.evidence.contains("closed the connection without an HTTP answer"), "{}", plain.evidence);
    let no_cert = find(&results, tls::CLIENT_CERT, "etcd client");
    assert!(no_cert.evidence.contains("handshake rejected: received fatal alert"), "{}", no_cert.evidence);
    let skipped: Vec<&CheckResult> = results.iter().filter(|r| r.status == Status::Skip).collect();
    assert_eq!(skipped.len(), 2, "kube-apiserver and kubelet endpoints are skipped");
    assert!(skipped.iter().all(|r| r.evidence.contains("artifacts.kubernetes = skip")));

    // The oracle agrees: OpenSSL cannot negotiate TLS 1.1 with this etcd, but TLS 1.2 works.
    let ca = c.pki_dir.join("etcd-ca.crt");
    let cert = c.pki_dir.join("apiserver-etcd-client.crt");
    let key = c.pki_dir.join("apiserver-etcd-client.key");
    let old = openssl(&["s_client", "-connect", "127.0.6.1:26379", "-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0"]);
    assert!(!old.status.success(), "openssl negotiated TLS 1.1 with etcd: {}", String::from_utf8_lossy(&old.stdout));
    let new = openssl(&[
        "s_client",
        "-connect",
        "127.0.6.1:26379",
        "-tls1_2",
        "-CAfile",
        ca.to_str().unwrap(),
        "-cert",
        cert.to_str().unwrap(),
        "-key",
        key.to_str().unwrap(),
        "-verify_return_error",
    ]);
    assert!(
        String::from_utf8_lossy(&new.stdout).contains("Verify return code: 0 (ok)"),
        "{}",
        String::from_utf8_lossy(&new.stdout)
    );
}

/// A TLS server `openssl s_server` on `addr`, killed when dropped.
struct SServer {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for SServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_listening(addr: SocketAddr) {
    let start = Instant::now();
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        assert!(start.elapsed() < Duration::from_secs(20), "nothing listens on {addr}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A server certificate for `ip`, signed by the CA in `pki_dir/<ca>.crt|key`.
fn server_cert(pki_dir: &Path, ca: &str, ip: Ipv4Addr) -> (String, String) {
    let ca_cert = std::fs::read_to_string(pki_dir.join(format!("{ca}.crt"))).unwrap();
    let ca_key = KeyPair::from_pem(&std::fs::read_to_string(pki_dir.join(format!("{ca}.key"))).unwrap()).unwrap();
    let issuer = Issuer::from_ca_cert_pem(&ca_cert, ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::default();
    p.distinguished_name.push(DnType::CommonName, format!("test-{ip}"));
    p.subject_alt_names = vec![SanType::IpAddress(IpAddr::V4(ip))];
    p.is_ca = IsCa::ExplicitNoCa;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    (p.signed_by(&key, &issuer).unwrap().pem(), key.serialize_pem())
}

fn s_server(addr: SocketAddr, cert: &(String, String), extra: &[&str]) -> SServer {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("c.pem"), &cert.0).unwrap();
    std::fs::write(dir.path().join("k.pem"), &cert.1).unwrap();
    let child = Command::new("openssl")
        .arg("s_server")
        .args(["-accept", &addr.to_string(), "-cert", "c.pem", "-key", "k.pem", "-www", "-quiet"])
        .args(extra)
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("openssl s_server");
    wait_listening(addr);
    SServer { child, _dir: dir }
}

/// A PKI + inventory in a temp dir (no servers): what Material::load reads.
fn bare_state(name: &str) -> (tempfile::TempDir, Loaded) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("inventory.toml");
    let text = format!(
        "[cluster]\nname = \"{name}\"\nkubernetes_version = \"1.34.2\"\netcd_version = \"3.4.23\"\napi_endpoint = \"127.0.6.5\"\n\
         service_cidr = \"10.32.0.0/24\"\npod_cidr = \"10.200.0.0/16\"\n[artifacts]\nkubernetes = \"skip\"\n\
         [[host]]\nname = \"h1\"\naddress = \"127.0.6.5\"\nroles = [\"etcd\", \"control-plane\"]\n"
    );
    std::fs::write(&path, text).unwrap();
    let l = loaded(&path);
    provision::pki::ensure(&l.inventory, &l.state_dir()).unwrap();
    (dir, l)
}

#[test]
fn tls_checks_fail_on_servers_set_up_wrong() {
    let _g = lock();
    let (_dir, l) = bare_state("vbad");
    let material = Material::load(&l).unwrap();
    let pki = l.state_dir().pki_dir();
    let runtime = rt();
    let check = |ip: [u8; 4], port: u16| {
        let e = Endpoint { host: "h1".into(), address: IpAddr::from(ip), port, kind: Kind::EtcdClient };
        runtime.block_on(tls::check_endpoint(&l.inventory, &material, e, LIMIT))
    };
    let etcd_ca = pki.join("etcd-ca.crt");

    // A server set up right (etcd CA, right SAN, TLS 1.2+, client certificate required):
    // every check passes, so the failures below are about what was changed, nothing else.
    let good_addr: SocketAddr = "127.0.6.5:26443".parse().unwrap();
    let good = s_server(
        good_addr,
        &server_cert(&pki, "etcd-ca", Ipv4Addr::new(127, 0, 6, 5)),
        &["-tls1_2", "-Verify", "1", "-CAfile", etcd_ca.to_str().unwrap()],
    );
    let f = check([127, 0, 6, 5], 26443);
    for o in [&f.certificate, &f.min_version, &f.plaintext, f.client_cert.as_ref().unwrap()] {
        assert_eq!(o.status, Status::Pass, "good server: {}", o.evidence);
    }
    drop(good);

    // Wrong CA: the cluster CA signed it, and the evidence says so.
    let _wrong_ca = s_server(
        "127.0.6.6:26443".parse().unwrap(),
        &server_cert(&pki, "ca", Ipv4Addr::new(127, 0, 6, 6)),
        &["-tls1_2"],
    );
    let f = check([127, 0, 6, 6], 26443);
    assert_eq!(f.certificate.status, Status::Fail);
    assert!(f.certificate.evidence.contains("chains to the cluster CA instead"), "{}", f.certificate.evidence);

    // Wrong SAN: a certificate for 127.0.6.9 served on 127.0.6.7.
    let _wrong_san = s_server(
        "127.0.6.7:26443".parse().unwrap(),
        &server_cert(&pki, "etcd-ca", Ipv4Addr::new(127, 0, 6, 9)),
        &["-tls1_2"],
    );
    let f = check([127, 0, 6, 7], 26443);
    assert_eq!(f.certificate.status, Status::Fail);
    assert!(
        f.certificate.evidence.contains("not valid for name") && f.certificate.evidence.contains("127.0.6.9"),
        "{}",
        f.certificate.evidence
    );
    // ... and no client certificate required: s_server -www answers the request.
    let no_cert = f.client_cert.unwrap();
    assert_eq!(no_cert.status, Status::Fail);
    assert!(
        no_cert.evidence.contains("served a client without a certificate: HTTP/1.0 200 ok"),
        "{}",
        no_cert.evidence
    );

    // TLS 1.0 allowed. The oracle (openssl s_client -tls1) confirms the server really speaks it.
    let old_addr: SocketAddr = "127.0.6.8:26443".parse().unwrap();
    let _old = s_server(
        old_addr,
        &server_cert(&pki, "etcd-ca", Ipv4Addr::new(127, 0, 6, 8)),
        &["-tls1", "-cipher", "DEFAULT:@SECLEVEL=0"],
    );
    let oracle = openssl(&["s_client", "-connect", "127.0.6.8:26443", "-tls1", "-cipher", "DEFAULT:@SECLEVEL=0"]);
    assert!(
        String::from_utf8_lossy(&oracle.stdout).contains("Protocol  : TLSv1"),
        "oracle: {}",
        String::from_utf8_lossy(&oracle.stdout)
    );
    let f = check([127, 0, 6, 8], 26443);
    assert_eq!(f.min_version.status, Status::Fail);
    assert!(f.min_version.evidence.contains("accepts TLS 1.0: ServerHello TLS 1.0"), "{}", f.min_version.evidence);

    // Plaintext served: an HTTP server (no TLS at all) on the "TLS" port.
    let listener = TcpListener::bind("127.0.6.9:26443").unwrap();
    let server = std::thread::spawn(move || {
        use std::io::{Read, Write};
        for stream in listener.incoming().take(5) {
            let Ok(mut s) = stream else { continue };
            let mut buf = [0u8; 1024];
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            let _ = s.read(&mut buf);
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
        }
    });
    let f = check([127, 0, 6, 9], 26443);
    assert_eq!(f.plaintext.status, Status::Fail);
    assert!(f.plaintext.evidence.contains("answered a plaintext request: HTTP/1.1 200 OK"), "{}", f.plaintext.evidence);
    assert_eq!(f.certificate.status, Status::Fail, "no TLS at all: {}", f.certificate.evidence);
    drop(server);

    // Nothing listening: every check fails and says why.
    let f = check([127, 0, 6, 10], 26443);
    assert!(f.certificate.evidence.contains("connection refused"), "{}", f.certificate.evidence);
    assert_eq!(f.min_version.status, Status::Fail);
}

fn put(c: &VerifyEtcd, material: &Material, key: &str, value: Vec<u8>) {
    let m = members(&loaded(c.inventory()).inventory);
    rt().block_on(async {
        let mut client = connect(&m[0], &material.etcd_client, LIMIT).await.unwrap();
        client.client.put(key, value, None).await.unwrap();
    });
}

fn delete(c: &VerifyEtcd, material: &Material, key: &str) {
    let m = members(&loaded(c.inventory()).inventory);
    rt().block_on(async {
        let mut client = connect(&m[0], &material.etcd_client, LIMIT).await.unwrap();
        client.client.delete(key, None).await.unwrap();
    });
}

fn stored_check(c: &VerifyEtcd, material: &Material, ring: &Result<Keyring, String>) -> CheckResult {
    let m = members(&loaded(c.inventory()).inventory);
    let r = rt().block_on(enc::stored_secrets(ring, Some(&m[1]), material, LIMIT));
    eprintln!("{:?}: {}", r.status, r.evidence);
    r
}

/// The encryption config render writes for this cluster's control-plane hosts.
fn rendered_keyring(l: &Loaded, provider: &str) -> Keyring {
    let mut inv = l.inventory.clone();
    inv.artifacts.kubernetes = provision::inventory::KubernetesSource::Download;
    inv.security.encryption = if provider == "secretbox" {
        provision::inventory::EncryptionProvider::Secretbox
    } else {
        provision::inventory::EncryptionProvider::Aescbc
    };
    let pki = provision::pki::ensure(&inv, &l.state_dir()).unwrap();
    let rendered = render::render(&inv, &pki, &Templates::load(None).unwrap()).unwrap();
    let host = &rendered.desired.hosts[0];
    let file = host.file(paths::ENCRYPTION_CONFIG).expect("a control-plane host gets the encryption config");
    Keyring::from_config(&file.content, format!("rendered {}", paths::ENCRYPTION_CONFIG)).unwrap()
}

#[test]
fn encryption_check_decrypts_what_kube_apiserver_stores_and_names_plaintext() {
    let _g = lock();
    let c = VerifyEtcd::start("venc", 26479, 26480);
    let l = loaded(c.inventory());
    let material = Material::load(&l).unwrap();

    // Nothing stored yet: nothing proven, and the check says so.
    let ring = Ok(rendered_keyring(&l, "aescbc"));
    assert_eq!(stored_check(&c, &material, &ring).status, Status::Skip);

    // A Secret exactly as kube-apiserver stores it with the rendered config's aescbc key.
    let aes = rendered_keyring(&l, "aescbc");
    let key = &aes.keys[0];
    assert_eq!((key.provider, key.name.as_str(), key.secret.len()), (Provider::Aescbc, "key1", 32));
    let plain = encode_secret(&NewSecret {
        namespace: "default",
        name: "db-password",
        uid: "0f5c8a7e-3b1d-4c2a-9e8f-1a2b3c4d5e6f",
        created_unix: 1_763_800_000,
        data: &[("password", b"correct horse battery staple")],
    });
    let stored =
        envelope::encrypt(Provider::Aescbc, &key.name, &key.secret, &rand::random::<[u8; 16]>(), &plain).unwrap();
    put(&c, &material, "/registry/secrets/default/db-password", stored);
    // The oracle: etcdctl shows the raw value starting with the provider prefix (as in the
    // Kubernetes-the-hard-way hexdump) and without the plaintext.
    let raw = c.etcdctl(&["get", "/registry/secrets/default/db-password", "--print-value-only"]);
    assert!(raw.stdout.starts_with(b"k8s:enc:aescbc:v1:key1:"), "{}", String::from_utf8_lossy(&raw.stdout));
    assert!(!String::from_utf8_lossy(&raw.stdout).contains("correct horse"));

    let r = stored_check(&c, &material, &Ok(rendered_keyring(&l, "aescbc")));
    assert_eq!(r.status, Status::Pass, "{}", r.evidence);
    assert!(r.evidence.contains("1 decrypted to the Secret their key names (1 with aescbc key1"), "{}", r.evidence);
    assert!(!r.evidence.contains("correct horse"));

    // What verify itself uses on this cluster (no Kubernetes tier): the state directory's
    // key, which is the rendered config's key1.
    let from_state = rt().block_on(enc::load_keyring(&l.inventory, &material, &Default::default()));
    assert_eq!(from_state.as_ref().unwrap().keys[0].secret.as_slice(), key.secret.as_slice());
    assert_eq!(stored_check(&c, &material, &from_state).status, Status::Pass);

    // secretbox, also as kube-apiserver writes it, beside the aescbc one: both decrypt
    // when the config lists both providers.
    let sb = rendered_keyring(&l, "secretbox");
    let plain = encode_secret(&NewSecret {
        namespace: "apps",
        name: "api-token",
        uid: "u2",
        created_unix: 1,
        data: &[("token", b"t0k3n")],
    });
    let stored =
        envelope::encrypt(Provider::Secretbox, "key1", &sb.keys[0].secret, &rand::random::<[u8; 24]>(), &plain)
            .unwrap();
    put(&c, &material, "/registry/secrets/apps/api-token", stored);
    let both = format!(
        "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n  - resources: [secrets]\n    providers:\n      \
         - secretbox:\n          keys:\n            - name: key1\n              secret: {k}\n      \
         - aescbc:\n          keys:\n            - name: key1\n              secret: {k}\n      - identity: {{}}\n",
        k = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, key.secret.as_slice())
    );
    let ring = Keyring::from_config(both.as_bytes(), "a two-provider config".into());
    let r = stored_check(&c, &material, &ring);
    assert_eq!(r.status, Status::Pass, "{}", r.evidence);
    assert!(r.evidence.contains("1 with aescbc key1, 1 with secretbox key1"), "{}", r.evidence);

    // A Secret stored in plaintext (as before encryption was configured) is named.
    let leaked = encode_secret(&NewSecret {
        namespace: "kube-system",
        name: "leaked",
        uid: "u3",
        created_unix: 1,
        data: &[("k", b"v")],
    });
    put(&c, &material, "/registry/secrets/kube-system/leaked", leaked);
    let r = stored_check(&c, &material, &ring);
    assert_eq!(r.status, Status::Fail);
    assert!(r.evidence.starts_with("1 stored in PLAINTEXT: kube-system/leaked"), "{}", r.evidence);
    delete(&c, &material, "/registry/secrets/kube-system/leaked");

    // A wrong key: the check fails and names each Secret and why.
    let wrong = Keyring::from_state_key(Provider::Aescbc, &rand::random::<[u8; 32]>(), "a wrong key".into());
    let r = stored_check(&c, &material, &Ok(wrong));
    assert_eq!(r.status, Status::Fail);
    // (A wrong AES key fails the padding check, or, 1 time in 256, the protobuf check.)
    assert!(r.evidence.contains("default/db-password (") && r.evidence.contains("wrong key"), "{}", r.evidence);
    assert!(
        r.evidence.contains("apps/api-token (encrypted by secretbox key \"key1\", which a wrong key does not hold)"),
        "{}",
        r.evidence
    );
}

fn provision(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_provision")).args(args).output().expect("run provision")
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

#[test]
fn cli_exit_codes_table_and_json() {
    let _g = lock();
    let c = VerifyEtcd::start("vcli", 26579, 26580);
    let inv = c.inventory().to_str().unwrap();
    let only = ["--only", "etcd", "--only", "tls", "--only", "encryption"];

    let out = provision(&[&["--output", "json", "verify"][..], &only, &[inv]].concat());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["ok"], true);
    assert_eq!(report["failed"], 0);
    let checks = report["checks"].as_array().unwrap();
    assert!(checks.iter().any(|c| c["check"] == "etcd.health" && c["status"] == "pass"));
    assert!(checks.iter().any(|c| {
        c["check"] == "encryption.new-secret"
            && c["status"] == "skip"
            && c["evidence"].as_str().unwrap().contains("no kube-apiserver on this cluster")
    }));

    // A plaintext Secret: exit 1, and the table names the check and the Secret.
    let l = loaded(c.inventory());
    let material = Material::load(&l).unwrap();
    let leaked = encode_secret(&NewSecret { namespace: "default", name: "oops", uid: "u", created_unix: 1, data: &[] });
    put(&c, &material, "/registry/secrets/default/oops", leaked);
    let out = provision(&[&["verify"][..], &only, &[inv]].concat());
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let t = text(&out);
    let line = t.lines().find(|l| l.contains("encryption.stored-secrets")).unwrap_or_else(|| panic!("{t}"));
    assert!(line.contains("FAIL") && line.contains("PLAINTEXT: default/oops"), "{line}");
    assert!(t.contains("NOT verified"), "{t}");

    // No PKI beside the inventory: verify cannot run (2) and says what to do.
    let elsewhere = tempfile::tempdir().unwrap();
    let copy = elsewhere.path().join("inventory.toml");
    std::fs::copy(c.inventory(), &copy).unwrap();
    let out = provision(&["verify", copy.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("there is no PKI") && text(&out).contains("provision apply"), "{}", text(&out));

    // An invalid inventory: 2, with file:line.
    std::fs::write(&copy, "[cluster]\nname = 7\n").unwrap();
    let out = provision(&["verify", copy.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("inventory.toml:2"), "{}", text(&out));

    let help = provision(&["verify", "--help"]);
    let h = text(&help).split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        h.contains("0 when every check passed")
            && h.contains("1 when a check failed")
            && h.contains("2 when verify could not run"),
        "{h}"
    );
}

/// The Kubernetes API client's transport (rustls + hyper, cluster CA, client identity)
/// against a real TLS server. This proves the HTTP/TLS plumbing only: the RBAC verdicts
/// need a real kube-apiserver and are never claimed from a stand-in.
#[test]
fn kube_api_transport_against_a_real_tls_server() {
    use provision::kube::api::ApiClient;
    let _g = lock();
    let (_dir, l) = bare_state("vapi");
    let material = Material::load(&l).unwrap();
    let pki = l.state_dir().pki_dir();
    let cluster_ca = pki.join("ca.crt");
    let addr: SocketAddr = "127.0.6.11:26443".parse().unwrap();
    // Serves a page to any GET, and requires a client certificate of the cluster CA.
    let _server = s_server(
        addr,
        &server_cert(&pki, "ca", Ipv4Addr::new(127, 0, 6, 11)),
        &["-tls1_2", "-Verify", "1", "-CAfile", cluster_ca.to_str().unwrap()],
    );
    let runtime = rt();
    let admin = provision::verify::material::Material::load(&l).unwrap().admin.expect("admin identity in the PKI");
    let client = ApiClient::new("127.0.6.11", 26443, &material.cluster_ca_pem, Some(&admin), LIMIT).unwrap();
    let r = runtime.block_on(client.send(hyper::Method::GET, "/", "application/json", None)).unwrap();
    assert_eq!(r.status, 200, "{r:?}");
    assert!(
        String::from_utf8_lossy(&r.body).contains("<HTML>") || String::from_utf8_lossy(&r.body).contains("<pre>"),
        "{r:?}"
    );

    // Without a client certificate the same server refuses the handshake.
    let anonymous = ApiClient::new("127.0.6.11", 26443, &material.cluster_ca_pem, None, LIMIT).unwrap();
    let e = runtime.block_on(anonymous.send(hyper::Method::GET, "/", "application/json", None)).unwrap_err();
    eprintln!("anonymous: {e:#}");

    // Trusting the etcd CA instead: the server's certificate is refused by name of cause.
    let wrong = ApiClient::new("127.0.6.11", 26443, &material.etcd_ca_pem, Some(&admin), LIMIT).unwrap();
    let e = runtime.block_on(wrong.send(hyper::Method::GET, "/", "application/json", None)).unwrap_err();
    assert!(format!("{e:#}").contains("UnknownIssuer") || format!("{e:#}").contains("unknown issuer"), "{e:#}");
}
