//! What verify needs from the state directory, read WITHOUT changing anything: the CAs
//! the endpoints must chain to, the identities verify presents, the encryption key.
//!
//! `pki::ensure` is not used on purpose: it would renew or re-issue certificates, and a
//! verification that rewrites what it verifies proves nothing (a renewed local copy would
//! no longer be what the hosts hold).

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use zeroize::Zeroizing;

use crate::etcd::credentials::ClientCredentials;
use crate::inventory::Loaded;
use crate::pki::{CertId, ENCRYPTION_KEY, Issued};

pub struct Material {
    pub pki_dir: PathBuf,
    /// The etcd CA certificate (PEM): etcd's client and peer endpoints must chain to it.
    pub etcd_ca_pem: String,
    /// The cluster CA certificate (PEM): kube-apiserver and kubelets must chain to it.
    pub cluster_ca_pem: String,
    /// Signs the throw-away identity of the RBAC check (never written anywhere).
    pub cluster_ca: Option<Issued>,
    /// apiserver-etcd-client: what verify talks to etcd as.
    pub etcd_client: ClientCredentials,
    /// The same identity as PEM, for verify's own TLS probes of etcd.
    pub etcd_client_identity: Issued,
    /// admin (admin.conf's identity), for the API checks.
    pub admin: Option<Issued>,
    /// The 32-byte key render writes into the encryption config (as key1).
    pub encryption_key: Option<Zeroizing<Vec<u8>>>,
    pub encryption_key_path: PathBuf,
}

impl fmt::Debug for Material {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Material")
            .field("pki_dir", &self.pki_dir)
            .field("admin", &self.admin)
            .field("encryption_key", &self.encryption_key.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

impl Material {
    /// Reads the state directory beside the inventory. Fails (verify cannot run) when
    /// there is no PKI: nothing was applied yet.
    pub fn load(loaded: &Loaded) -> anyhow::Result<Material> {
        let state = loaded.state_dir();
        let pki_dir = state.pki_dir();
        if !pki_dir.join(format!("{}.crt", CertId::EtcdCa.file_stem())).is_file() {
            bail!(
                "there is no PKI in {}: run `provision apply {}` first (verify never creates one)",
                pki_dir.display(),
                loaded.path.display()
            );
        }
        let etcd_ca_pem = read_cert(&pki_dir, &CertId::EtcdCa)?;
        let cluster_ca_pem = read_cert(&pki_dir, &CertId::ClusterCa)?;
        let client = read_issued(&pki_dir, &CertId::ApiServerEtcdClient)?
            .with_context(|| format!("{} has no apiserver-etcd-client certificate and key", pki_dir.display()))?;
        let etcd_client = ClientCredentials::from_pem(
            etcd_ca_pem.clone(),
            client.cert_pem.clone(),
            client.key_pem.clone(),
            format!("the PKI in {}", pki_dir.display()),
        )?;
        let encryption_key_path = state.secrets_dir().join(ENCRYPTION_KEY);
        Ok(Material {
            cluster_ca: read_issued(&pki_dir, &CertId::ClusterCa)?,
            admin: read_issued(&pki_dir, &CertId::Admin)?,
            encryption_key: read_encryption_key(&encryption_key_path)?,
            encryption_key_path,
            pki_dir,
            etcd_ca_pem,
            cluster_ca_pem,
            etcd_client,
            etcd_client_identity: client,
        })
    }
}

fn read_cert(dir: &Path, id: &CertId) -> anyhow::Result<String> {
    let path = dir.join(format!("{}.crt", id.file_stem()));
    std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))
}

/// The certificate and key of `id`, or None when either file is missing.
fn read_issued(dir: &Path, id: &CertId) -> anyhow::Result<Option<Issued>> {
    let cert = dir.join(format!("{}.crt", id.file_stem()));
    let key = dir.join(format!("{}.key", id.file_stem()));
    if !cert.is_file() || !key.is_file() {
        return Ok(None);
    }
    let cert_pem = std::fs::read_to_string(&cert).with_context(|| format!("cannot read {}", cert.display()))?;
    let key_pem =
        Zeroizing::new(std::fs::read_to_string(&key).with_context(|| format!("cannot read {}", key.display()))?);
    Ok(Some(Issued { cert_pem, key_pem }))
}

fn read_encryption_key(path: &Path) -> anyhow::Result<Option<Zeroizing<Vec<u8>>>> {
    let text = match std::fs::read(path) {
        Ok(t) => Zeroizing::new(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let key = std::str::from_utf8(&text)
        .ok()
        .and_then(|t| STANDARD.decode(t.trim()).ok())
        .map(Zeroizing::new)
        .with_context(|| format!("{} is not base64 (it should hold the encryption key)", path.display()))?;
    Ok(Some(key))
}
