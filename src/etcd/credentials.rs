//! The client identity the operator's machine presents to etcd: the etcd CA (to check the
//! members' server certificates) and a client certificate signed by that CA.
//!
//! Normally the PKI's apiserver-etcd-client certificate (`CertId::ApiServerEtcdClient`,
//! CA `CertId::EtcdCa`); files given on the command line override it. Certificates are
//! checked when loaded, so an expired or unparsable one is reported by name instead of
//! surfacing later as an obscure TLS handshake failure.

use std::fmt;
use std::path::Path;

use anyhow::{Context, bail};
use etcd_client::{Certificate, Identity, TlsOptions};
use x509_parser::pem::Pem;
use zeroize::Zeroizing;

use crate::pki::{CertId, Pki};

#[derive(Clone)]
pub struct ClientCredentials {
    ca_pem: String,
    cert_pem: String,
    key_pem: Zeroizing<String>,
    /// Where they came from, for error messages ("PKI in .provision/lab/pki", file paths).
    pub source: String,
}

/// The private key never appears in Debug output.
impl fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("source", &self.source)
            .field("key_pem", &"<redacted>")
            .finish_non_exhaustive()
    }
}

impl ClientCredentials {
    /// Checks that `ca_pem` and `cert_pem` hold parsable, currently valid certificates and
    /// that `key_pem` looks like a PEM private key.
    pub fn from_pem(
        ca_pem: String,
        cert_pem: String,
        key_pem: Zeroizing<String>,
        source: impl Into<String>,
    ) -> anyhow::Result<ClientCredentials> {
        let source = source.into();
        check_certs(&ca_pem, "etcd CA certificate").with_context(|| format!("client credentials from {source}"))?;
        check_certs(&cert_pem, "etcd client certificate")
            .with_context(|| format!("client credentials from {source}"))?;
        if !key_pem.contains("PRIVATE KEY-----") {
            bail!("client credentials from {source}: the client key is not a PEM private key");
        }
        Ok(ClientCredentials { ca_pem, cert_pem, key_pem, source })
    }

    pub fn from_files(ca: &Path, cert: &Path, key: &Path) -> anyhow::Result<ClientCredentials> {
        let read = |p: &Path, what: &str| {
            std::fs::read_to_string(p).with_context(|| format!("cannot read the {what} {}", p.display()))
        };
        let ca_pem = read(ca, "etcd CA certificate (--cacert)")?;
        let cert_pem = read(cert, "client certificate (--cert)")?;
        let key_pem = Zeroizing::new(read(key, "client key (--key)")?);
        let source = format!("--cacert {} --cert {} --key {}", ca.display(), cert.display(), key.display());
        ClientCredentials::from_pem(ca_pem, cert_pem, key_pem, source)
    }

    /// The apiserver's etcd client certificate and the etcd CA, read from the PKI's files in
    /// the state directory (`<stem>.crt` / `<stem>.key` in `pki_dir`) without changing
    /// anything: operator tools must not issue or renew certificates as a side effect.
    pub fn from_state(pki_dir: &Path) -> anyhow::Result<ClientCredentials> {
        let ca = pki_dir.join(format!("{}.crt", CertId::EtcdCa.file_stem()));
        let stem = CertId::ApiServerEtcdClient.file_stem();
        let (cert, key) = (pki_dir.join(format!("{stem}.crt")), pki_dir.join(format!("{stem}.key")));
        if !ca.is_file() {
            bail!(
                "no etcd CA at {}: run `provision apply` first (it builds the PKI), or pass --cacert, --cert and --key",
                ca.display()
            );
        }
        // Through the PKI store: regular files of ours only, never through a link.
        let read = |p: &Path| {
            crate::trust::read_ours(p)?
                .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
                .with_context(|| format!("{} is missing", p.display()))
        };
        let source = format!("the PKI in {}", pki_dir.display());
        ClientCredentials::from_pem(read(&ca)?, read(&cert)?, Zeroizing::new(read(&key)?), source)
    }

    /// The apiserver's etcd client certificate and the etcd CA from a loaded PKI.
    pub fn from_pki(pki: &Pki, pki_dir: &Path) -> anyhow::Result<ClientCredentials> {
        let source = format!("the PKI in {}", pki_dir.display());
        let ca = pki.get(&CertId::EtcdCa).with_context(|| format!("{source} has no etcd CA"))?;
        let client = pki
            .get(&CertId::ApiServerEtcdClient)
            .with_context(|| format!("{source} has no apiserver-etcd-client certificate"))?;
        ClientCredentials::from_pem(ca.cert_pem.clone(), client.cert_pem.clone(), client.key_pem.clone(), source)
    }

    pub(crate) fn tls(&self) -> TlsOptions {
        TlsOptions::new()
            .ca_certificate(Certificate::from_pem(&self.ca_pem))
            .identity(Identity::from_pem(&self.cert_pem, self.key_pem.as_str()))
    }

    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }
}

/// Every certificate in `pem` parses and is inside its validity period.
fn check_certs(pem: &str, what: &str) -> anyhow::Result<()> {
    let mut count = 0;
    for block in Pem::iter_from_buffer(pem.as_bytes()) {
        let block = block.map_err(|e| anyhow::anyhow!("the {what} is not valid PEM: {e}"))?;
        if block.label != "CERTIFICATE" {
            continue;
        }
        let cert = block.parse_x509().map_err(|e| anyhow::anyhow!("the {what} does not parse: {e}"))?;
        let validity = cert.validity();
        let now = x509_parser::time::ASN1Time::now();
        if now > validity.not_after {
            bail!(
                "the {what} ({}) expired on {}; renew it (provision apply renews certificates)",
                cert.subject(),
                validity.not_after
            );
        }
        if now < validity.not_before {
            bail!(
                "the {what} ({}) is not valid before {}; check this machine's clock",
                cert.subject(),
                validity.not_before
            );
        }
        count += 1;
    }
    if count == 0 {
        bail!("the {what} holds no PEM certificate");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, KeyPair};

    fn self_signed(days_from_now: (i64, i64)) -> (String, String) {
        let key = KeyPair::generate().expect("key");
        let mut p = CertificateParams::new(vec!["x".to_string()]).expect("params");
        let now = time::OffsetDateTime::now_utc();
        p.not_before = now + time::Duration::days(days_from_now.0);
        p.not_after = now + time::Duration::days(days_from_now.1);
        (p.self_signed(&key).expect("cert").pem(), key.serialize_pem())
    }

    #[test]
    fn valid_credentials_load_and_debug_hides_the_key() {
        let (cert, key) = self_signed((-1, 30));
        let c = ClientCredentials::from_pem(cert.clone(), cert, Zeroizing::new(key.clone()), "test").expect("valid");
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("PRIVATE KEY"), "{dbg}");
        assert!(dbg.contains("redacted"));
    }

    #[test]
    fn expired_and_garbage_certificates_are_named() {
        let (good, key) = self_signed((-1, 30));
        let (old, _) = self_signed((-30, -1));
        let e = ClientCredentials::from_pem(good.clone(), old, Zeroizing::new(key.clone()), "files").unwrap_err();
        let msg = format!("{e:#}");
        assert!(msg.contains("client certificate") && msg.contains("expired"), "{msg}");
        let e = ClientCredentials::from_pem("nonsense".into(), good.clone(), Zeroizing::new(key), "files").unwrap_err();
        assert!(format!("{e:#}").contains("CA certificate"), "{e:#}");
        let e = ClientCredentials::from_pem(good.clone(), good, Zeroizing::new("x".into()), "files").unwrap_err();
        assert!(format!("{e:#}").contains("client key"));
    }
}
