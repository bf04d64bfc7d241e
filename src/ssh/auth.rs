//! Public-key authentication: gathering the keys to offer (files, ssh-agent) and offering them.
//!
//! Keys are gathered before any network traffic, so a missing or passphrase-protected key
//! is reported as such, not as "authentication refused".

use std::path::{Path, PathBuf};
use std::sync::Arc;

use russh::client::{self, AuthResult};
use russh::keys::agent::AgentIdentity;
use russh::keys::agent::client::AgentClient;
use russh::keys::ssh_key::{HashAlg, PrivateKey, PublicKey};
use russh::keys::{PrivateKeyWithHashAlg, decode_secret_key};
use tokio::net::UnixStream;
use zeroize::Zeroizing;

use super::error::SshError;
use super::known_hosts::fingerprint;
use super::target::{Credentials, Target};

/// One key to offer.
pub(crate) enum Identity {
    File { path: PathBuf, key: Arc<PrivateKey> },
    Agent { key: PublicKey, comment: String },
}

impl Identity {
    fn describe(&self) -> String {
        match self {
            Identity::File { path, key } => {
                format!("key file {} ({} {})", path.display(), key.algorithm().as_str(), fingerprint(key.public_key()))
            }
            Identity::Agent { key, comment } => {
                let name = if comment.is_empty() { String::new() } else { format!(" {comment:?}") };
                format!("ssh-agent key{name} ({} {})", key.algorithm().as_str(), fingerprint(key))
            }
        }
    }
}

/// The keys to offer, and the agent connection that signs for the agent's keys.
pub(crate) struct Keys {
    identities: Vec<Identity>,
    agent: Option<AgentClient<UnixStream>>,
    /// Facts worth telling the operator if authentication fails.
    notes: Vec<String>,
}

/// Gathers the keys the target's credentials name. Never prompts.
pub(crate) async fn gather(target: &Target) -> Result<Keys, SshError> {
    let host = target.name.as_str();
    let mut notes = Vec::new();
    let (mut agent, agent_keys) = match &target.agent_socket {
        Some(sock) => match open_agent(sock).await {
            Ok((client, keys)) => (Some(client), keys),
            Err(reason) => {
                notes.push(format!("ssh-agent at {} is not usable: {reason}", sock.display()));
                (None, Vec::new())
            }
        },
        None => (None, Vec::new()),
    };

    let mut identities = Vec::new();
    match &target.credentials {
        Credentials::KeyFile(path) => match read_key(path) {
            Ok(ParsedKey::Clear(key)) => identities.push(Identity::File { path: path.clone(), key: Arc::new(key) }),
            Ok(ParsedKey::Encrypted(public)) => match agent_keys.into_iter().find(|(k, _)| Some(k.key_data()) == public.as_ref().map(|p| p.key_data())) {
                Some((key, comment)) => identities.push(Identity::Agent { key, comment }),
                None => return Err(SshError::EncryptedKey { host: host.to_string(), path: path.clone() }),
            },
            Err(reason) => return Err(SshError::KeyFile { host: host.to_string(), path: path.clone(), reason }),
        },
        Credentials::Default { candidates } => {
            if target.agent_socket.is_none() {
                notes.push("SSH_AUTH_SOCK is not set (no ssh-agent)".to_string());
            }
            let agent_datas: Vec<_> = agent_keys.iter().map(|(k, _)| k.key_data().clone()).collect();
            identities.extend(agent_keys.into_iter().map(|(key, comment)| Identity::Agent { key, comment }));
            for path in candidates {
                if !path.exists() {
                    continue;
                }
                match read_key(path) {
                    Ok(ParsedKey::Clear(key)) => {
                        if !agent_datas.contains(key.public_key().key_data()) {
                            identities.push(Identity::File { path: path.clone(), key: Arc::new(key) });
                        }
                    }
                    Ok(ParsedKey::Encrypted(public)) => {
                        if !public.is_some_and(|p| agent_datas.contains(p.key_data())) {
                            notes.push(format!("{} is passphrase-protected and not in ssh-agent: skipped", path.display()));
                        }
                    }
                    Err(reason) => notes.push(format!("{}: {reason}: skipped", path.display())),
                }
            }
            if identities.is_empty() {
                let looked: Vec<String> = candidates.iter().map(|p| p.display().to_string()).collect();
                notes.push(if looked.is_empty() {
                    "no key in ssh-agent and no key file to try".to_string()
                } else {
                    format!("no key in ssh-agent and none of {} is usable", looked.join(", "))
                });
                return Err(SshError::NoCredentials { host: host.to_string(), user: target.user.clone(), notes });
            }
        }
    }
    if identities.iter().all(|i| matches!(i, Identity::File { .. })) {
        agent = None; // not needed: do not keep the socket open
    }
    Ok(Keys { identities, agent, notes })
}

async fn open_agent(sock: &Path) -> Result<(AgentClient<UnixStream>, Vec<(PublicKey, String)>), String> {
    let mut client = AgentClient::connect_uds(sock).await.map_err(|e| e.to_string())?;
    let identities = client.request_identities().await.map_err(|e| e.to_string())?;
    let keys = identities
        .into_iter()
        .filter_map(|id| match id {
            AgentIdentity::PublicKey { key, comment } => Some((key, comment)),
            AgentIdentity::Certificate { .. } => None, // certificates are not offered (not needed here)
        })
        .collect();
    Ok((client, keys))
}

// Short-lived, never stored: boxing would only add another copy of the secret.
#[allow(clippy::large_enum_variant)]
enum ParsedKey {
    Clear(PrivateKey),
    /// Passphrase-protected; the public half when the format keeps it in clear (OpenSSH does).
    Encrypted(Option<PublicKey>),
}

fn read_key(path: &Path) -> Result<ParsedKey, String> {
    let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => "the file does not exist".to_string(),
        _ => e.to_string(),
    })?);
    if text.trim_start().starts_with("ssh-") || text.trim_start().starts_with("ecdsa-") {
        return Err("this is a public key; point at the private key (the file without .pub)".to_string());
    }
    if let Ok(key) = PrivateKey::from_openssh(text.as_bytes()) {
        return Ok(if key.is_encrypted() { ParsedKey::Encrypted(Some(key.public_key().clone())) } else { ParsedKey::Clear(key) });
    }
    // PEM (PKCS#1 / PKCS#8 / SEC1) keys.
    match decode_secret_key(&text, None) {
        Ok(key) => Ok(ParsedKey::Clear(key)),
        Err(russh::keys::Error::KeyIsEncrypted) => {
            let public = russh::keys::load_public_key(pub_path(path)).ok();
            Ok(ParsedKey::Encrypted(public))
        }
        Err(e) => Err(format!("not a private key this tool can read (OpenSSH or PEM; ed25519, ecdsa, rsa): {e}")),
    }
}

fn pub_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(".pub");
    PathBuf::from(name)
}

/// Why authentication did not succeed (turned into [`SshError::AuthRefused`] by the caller).
pub(crate) struct Refused {
    pub tried: Vec<String>,
    pub methods: Vec<String>,
    pub notes: Vec<String>,
}

/// Offers every key in turn until the server accepts one.
pub(crate) async fn authenticate<H: client::Handler>(
    handle: &mut client::Handle<H>,
    user: &str,
    keys: &mut Keys,
) -> Result<(), Refused> {
    let mut tried = Vec::new();
    let mut methods: Vec<String> = Vec::new();
    let mut notes = keys.notes.clone();
    // RSA keys sign with the best hash the server announces (rsa-sha2-512 on OpenSSH).
    // Asked only when needed: without the server's ext-info, the question costs a second.
    let has_rsa = keys.identities.iter().any(|i| match i {
        Identity::File { key, .. } => key.algorithm().is_rsa(),
        Identity::Agent { key, .. } => key.algorithm().is_rsa(),
    });
    let rsa_hash: Option<HashAlg> =
        if has_rsa { handle.best_supported_rsa_hash().await.ok().flatten().flatten() } else { None };
    if let (Some(agent), Some(binding)) = (keys.agent.as_mut(), handle.agent_session_binding()) {
        // Needed only for destination-constrained agent keys; an agent without the
        // extension still signs, so a failure here is not an error.
        let _ = agent.bind_session(binding, false).await;
    }
    for identity in &keys.identities {
        tried.push(identity.describe());
        let result = match identity {
            Identity::File { key, .. } => handle
                .authenticate_publickey(user, PrivateKeyWithHashAlg::new(key.clone(), rsa_hash))
                .await
                .map_err(|e| e.to_string()),
            Identity::Agent { key, .. } => match keys.agent.as_mut() {
                Some(agent) => {
                    let hash = if key.algorithm().is_rsa() { rsa_hash } else { None };
                    handle.authenticate_publickey_with(user, key.clone(), hash, agent).await.map_err(|e| format!("ssh-agent could not sign: {e}"))
                }
                None => Err("ssh-agent connection lost".to_string()),
            },
        };
        match result {
            Ok(AuthResult::Success) => return Ok(()),
            Ok(AuthResult::Failure { remaining_methods, partial_success }) => {
                methods = remaining_methods.iter().map(|m| <&str>::from(m).to_string()).collect();
                if partial_success {
                    notes.push("the server accepted the key but demands a second factor, which provision does not support".into());
                    break;
                }
                if !methods.iter().any(|m| m == "publickey") {
                    break;
                }
            }
            Err(reason) => notes.push(format!("offering {}: {reason}", identity.describe())),
        }
        if handle.is_closed() {
            break;
        }
    }
    // russh reports a hang-up during authentication as a failure offering no methods.
    if handle.is_closed() || methods.is_empty() {
        notes.push(format!(
            "the server closed the connection after {} key(s) (too many offered? sshd allows MaxAuthTries, 6 by default)",
            tried.len()
        ));
    }
    Err(Refused { tried, methods, notes })
}
