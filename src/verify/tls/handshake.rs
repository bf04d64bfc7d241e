//! A TLS 1.2/1.3 handshake with rustls that records the certificate chain the server
//! presents, then judges that chain separately against the CA it must chain to.
//!
//! Recording first and judging second is what makes the evidence useful: a handshake
//! that simply fails says "unknown issuer"; here the report can say which CA the
//! certificate does chain to, and which names it is valid for.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, anyhow};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::pki::Issued;

pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Accepts any server certificate and keeps it: the chain is judged afterwards by
/// [`judge_chain`]. Handshake signatures are still checked (the server proves it holds
/// the key of the certificate it presented).
#[derive(Debug)]
pub struct Recorder {
    seen: Mutex<Option<Vec<CertificateDer<'static>>>>,
    provider: Arc<CryptoProvider>,
}

impl Recorder {
    pub fn new(provider: Arc<CryptoProvider>) -> Arc<Recorder> {
        Arc::new(Recorder { seen: Mutex::new(None), provider })
    }

    pub fn chain(&self) -> Option<Vec<CertificateDer<'static>>> {
        self.seen.lock().ok().and_then(|g| g.clone())
    }
}

impl ServerCertVerifier for Recorder {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let mut chain = vec![end_entity.clone().into_owned()];
        chain.extend(intermediates.iter().map(|c| c.clone().into_owned()));
        if let Ok(mut seen) = self.seen.lock() {
            *seen = Some(chain);
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// A client config that records the server's chain, optionally presenting `identity`.
pub fn recording_config(recorder: Arc<Recorder>, identity: Option<&Issued>) -> anyhow::Result<ClientConfig> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .dangerous()
        .with_custom_certificate_verifier(recorder);
    Ok(match identity {
        Some(id) => {
            let (certs, key) = identity_der(id)?;
            builder.with_client_auth_cert(certs, key).context("the client certificate")?
        }
        None => builder.with_no_client_auth(),
    })
}

/// A client config that trusts only `ca_pem` (and presents `identity` when given).
pub fn verifying_config(ca_pem: &str, identity: Option<&Issued>) -> anyhow::Result<ClientConfig> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_root_certificates(roots(ca_pem)?);
    Ok(match identity {
        Some(id) => {
            let (certs, key) = identity_der(id)?;
            builder.with_client_auth_cert(certs, key).context("the client certificate")?
        }
        None => builder.with_no_client_auth(),
    })
}

pub fn identity_der(id: &Issued) -> anyhow::Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
    let certs = CertificateDer::pem_slice_iter(id.cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow!("the client certificate is not valid PEM: {e}"))?;
    // The error of a bad key never quotes the key.
    let key = PrivateKeyDer::from_pem_slice(id.key_pem.as_bytes())
        .map_err(|_| anyhow!("the client key is not a PEM private key"))?;
    Ok((certs, key))
}

pub fn roots(ca_pem: &str) -> anyhow::Result<RootCertStore> {
    let mut store = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        let cert = cert.map_err(|e| anyhow!("the CA certificate is not valid PEM: {e}"))?;
        store.add(cert).context("the CA certificate")?;
    }
    if store.is_empty() {
        anyhow::bail!("the CA file holds no certificate");
    }
    Ok(store)
}

/// The server name a certificate must be valid for: an IP address or a DNS name.
pub fn server_name(name: &str) -> anyhow::Result<ServerName<'static>> {
    ServerName::try_from(name.to_string()).map_err(|_| anyhow!("{name:?} is neither an IP address nor a DNS name"))
}

/// TCP connect under `limit`, naming the endpoint in the error.
pub async fn tcp(addr: SocketAddr, limit: Duration) -> anyhow::Result<TcpStream> {
    match tokio::time::timeout(limit, TcpStream::connect(addr)).await {
        Ok(Ok(s)) => {
            let _ = s.set_nodelay(true);
            Ok(s)
        }
        Ok(Err(e)) => Err(anyhow!("cannot connect to {addr}: {}", plain_io(&e))),
        Err(_) => Err(anyhow!("no TCP answer from {addr} within {}s", limit.as_secs_f64())),
    }
}

pub fn plain_io(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "connection refused (nothing listens there)".into(),
        std::io::ErrorKind::ConnectionReset => "connection reset by the server".into(),
        _ => e.to_string(),
    }
}

/// What one recorded handshake produced.
pub struct Handshake {
    /// The chain the server presented (leaf first), when it got that far.
    pub chain: Option<Vec<CertificateDer<'static>>>,
    /// "TLSv1_3" etc., when the handshake completed.
    pub version: Option<String>,
    pub error: Option<String>,
}

/// Connects to `addr`, handshakes while recording the chain, and closes.
pub async fn record(
    addr: SocketAddr,
    name: &ServerName<'static>,
    identity: Option<&Issued>,
    limit: Duration,
) -> Handshake {
    let recorder = Recorder::new(provider());
    let config = match recording_config(recorder.clone(), identity) {
        Ok(c) => c,
        Err(e) => {
            return Handshake { chain: None, version: None, error: Some(format!("{e:#}")) };
        }
    };
    let outcome = connect(addr, name, Arc::new(config), limit).await;
    let chain = recorder.chain();
    match outcome {
        Ok(stream) => {
            let version = stream.get_ref().1.protocol_version().map(|v| format!("{v:?}"));
            Handshake { chain, version, error: None }
        }
        Err(e) => Handshake { chain, version: None, error: Some(format!("{e:#}")) },
    }
}

pub async fn connect(
    addr: SocketAddr,
    name: &ServerName<'static>,
    config: Arc<ClientConfig>,
    limit: Duration,
) -> anyhow::Result<TlsStream<TcpStream>> {
    let tcp = tcp(addr, limit).await?;
    match tokio::time::timeout(limit, TlsConnector::from(config).connect(name.clone(), tcp)).await {
        Ok(Ok(s)) => Ok(s),
        Ok(Err(e)) => Err(anyhow!("TLS handshake with {addr} failed: {}", tls_io(&e))),
        Err(_) => Err(anyhow!("TLS handshake with {addr} did not finish within {}s", limit.as_secs_f64())),
    }
}

/// An io::Error from tokio-rustls, with the rustls error inside said plainly.
pub fn tls_io(e: &std::io::Error) -> String {
    if let Some(inner) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        return inner.to_string();
    }
    plain_io(e)
}

/// The verdict on a presented chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainVerdict {
    pub ok: bool,
    pub detail: String,
}

/// Does `chain` chain to `ca_pem` and is it valid for every name in `names` right now?
/// When it does not chain to `ca_pem`, `others` ((label, pem) of other CAs) are tried so
/// the evidence can say which CA it chains to instead.
pub fn judge_chain(
    chain: &[CertificateDer<'static>],
    ca_label: &str,
    ca_pem: &str,
    names: &[ServerName<'static>],
    others: &[(&str, &str)],
) -> ChainVerdict {
    let Some((leaf, intermediates)) = chain.split_first() else {
        return ChainVerdict { ok: false, detail: "the server presented no certificate".into() };
    };
    let facts = describe_leaf(leaf);
    let verify = |pem: &str, name: &ServerName<'static>| -> Result<(), String> {
        let roots = roots(pem).map_err(|e| format!("{e:#}"))?;
        let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
            .build()
            .map_err(|e| e.to_string())?;
        verifier.verify_server_cert(leaf, intermediates, name, &[], UnixTime::now()).map(|_| ()).map_err(|e| match e {
            rustls::Error::InvalidCertificate(c) => c.to_string(),
            other => other.to_string(),
        })
    };
    let mut problems = Vec::new();
    for name in names {
        if let Err(e) = verify(ca_pem, name) {
            problems.push(e);
        }
    }
    if problems.is_empty() {
        let shown: Vec<String> = names.iter().map(|n| n.to_str().into_owned()).collect();
        return ChainVerdict {
            ok: true,
            detail: format!("{facts}; chains to the {ca_label}; valid for {}", shown.join(", ")),
        };
    }
    problems.dedup();
    let mut detail = format!("{facts}; against the {ca_label}: {}", problems.join("; "));
    if problems.iter().any(|p| p.contains("UnknownIssuer") || p.contains("unknown issuer")) {
        let instead: Vec<&str> = others
            .iter()
            .filter(|(_, pem)| names.first().is_some_and(|n| verify(pem, n).is_ok()))
            .map(|(label, _)| *label)
            .collect();
        detail.push_str(&match instead.as_slice() {
            [] => " (it does not chain to any CA of this cluster's PKI either)".to_string(),
            found => format!(" (it chains to the {} instead)", found.join(", ")),
        });
    }
    ChainVerdict { ok: false, detail }
}

/// "CN=node1, issuer CN=etcd-ca, expires 2027-11-22 (364 days)": never key material.
pub fn describe_leaf(der: &CertificateDer<'_>) -> String {
    match x509_parser::parse_x509_certificate(der.as_ref()) {
        Ok((_, cert)) => {
            let cn = |n: &x509_parser::x509::X509Name| {
                n.iter_common_name().next().and_then(|c| c.as_str().ok()).unwrap_or("?").to_string()
            };
            let not_after = cert.validity().not_after;
            let days = (not_after.timestamp() - time::OffsetDateTime::now_utc().unix_timestamp()) / 86_400;
            let date = not_after.to_datetime().date();
            format!("CN={}, issuer CN={}, expires {date} ({days} days)", cn(cert.subject()), cn(cert.issuer()))
        }
        Err(e) => format!("unparsable certificate ({e})"),
    }
}
