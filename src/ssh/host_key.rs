//! The host key check: the russh client handler that decides whether to trust the server.
//!
//! russh calls `check_server_key` after verifying the key-exchange signature, i.e. once the
//! server has proved it holds the private key. We decide from the known_hosts files and the
//! policy, and record why, because russh only reports a bare "unknown key" to the caller.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use russh::client;
use russh::keys::PublicKeyOrCertificate;
use russh::keys::ssh_key::PublicKey;

use crate::inventory::HostKeyPolicy;

use super::error::SshError;
use super::known_hosts::{KnownHosts, Verdict, fingerprint, key_type};

/// What the check saw: the offered key and the verdict (shared with the connecting code).
#[derive(Debug, Clone)]
pub(crate) struct Observed {
    pub offered: PublicKey,
    pub verdict: Verdict,
}

pub(crate) struct HostKeyCheck {
    known: Arc<KnownHosts>,
    lookup: String,
    policy: HostKeyPolicy,
    observed: Arc<Mutex<Option<Observed>>>,
}

impl HostKeyCheck {
    pub(crate) fn new(known: Arc<KnownHosts>, lookup: String, policy: HostKeyPolicy) -> (HostKeyCheck, Arc<Mutex<Option<Observed>>>) {
        let observed = Arc::new(Mutex::new(None));
        (HostKeyCheck { known, lookup, policy, observed: observed.clone() }, observed)
    }
}

impl client::Handler for HostKeyCheck {
    type Error = russh::Error;

    async fn check_server_key(&mut self, offered: &PublicKeyOrCertificate) -> Result<bool, Self::Error> {
        // We do not advertise certificate host-key algorithms, so this is a plain key; a
        // certificate would be judged by its key like any other.
        let offered = offered.public_key();
        let mut slot = self.observed.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        // On a re-key the server must present the key it started with, pinned or not yet.
        if let Some(first) = slot.as_ref() {
            return Ok(first.offered.key_data() == offered.key_data() && accepted(&first.verdict, self.policy));
        }
        let verdict = self.known.check(&self.lookup, &offered);
        let ok = accepted(&verdict, self.policy);
        *slot = Some(Observed { offered, verdict });
        Ok(ok)
    }
}

fn accepted(verdict: &Verdict, policy: HostKeyPolicy) -> bool {
    match verdict {
        Verdict::Trusted => true,
        Verdict::Unknown => policy == HostKeyPolicy::AcceptNew,
        Verdict::Changed { .. } | Verdict::Revoked { .. } => false,
    }
}

/// Where the refusal message points the operator.
pub(crate) struct RefusalContext<'a> {
    pub host: &'a str,
    pub lookup: &'a str,
    pub address: &'a str,
    pub port: u16,
    pub searched: Vec<PathBuf>,
    pub pin_file: PathBuf,
}

/// The error for a refused key; None when the policy accepted it.
pub(crate) fn refusal(ctx: RefusalContext<'_>, observed: &Observed, policy: HostKeyPolicy) -> Option<SshError> {
    if accepted(&observed.verdict, policy) {
        return None;
    }
    let offered = &observed.offered;
    match &observed.verdict {
        Verdict::Trusted => None,
        Verdict::Unknown => Some(SshError::UnknownHostKey {
            host: ctx.host.to_string(),
            lookup: ctx.lookup.to_string(),
            address: ctx.address.to_string(),
            port: ctx.port,
            key_type: key_type(offered),
            offered: fingerprint(offered),
            searched: ctx.searched,
            pin_file: ctx.pin_file,
        }),
        Verdict::Changed { expected, file, line } => Some(SshError::HostKeyChanged {
            host: ctx.host.to_string(),
            lookup: ctx.lookup.to_string(),
            key_type: key_type(offered),
            offered: fingerprint(offered),
            expected_type: key_type(expected),
            expected: fingerprint(expected),
            file: file.clone(),
            line: *line,
        }),
        Verdict::Revoked { file, line } => Some(SshError::HostKeyRevoked {
            host: ctx.host.to_string(),
            lookup: ctx.lookup.to_string(),
            key_type: key_type(offered),
            offered: fingerprint(offered),
            file: file.clone(),
            line: *line,
        }),
    }
}
