//! The desired state of every host: the files, directories, users and units that
//! `render` produces and that `plan` compares with what the hosts have.
//!
//! This is the contract between rendering and the plan: `provision render` writes
//! exactly these files (mirrored under its output directory), and `apply` installs
//! exactly these files, so the two can never disagree.

use std::sync::Arc;

use serde::Serialize;

/// The part of the control plane a file or unit belongs to. Apply works through
/// components in this order, one phase each, waiting for health in between.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Component {
    /// Files every host needs before any service starts (CA certificates, users, dirs).
    Base,
    Etcd,
    KubeApiserver,
    KubeControllerManager,
    KubeScheduler,
    /// containerd, the kernel prerequisites, the CNI configuration and the pod routes:
    /// what a kubelet needs to run pods (rendered even without the kubernetes tier).
    Runtime,
    Kubelet,
}

/// Files earlier versions of provision installed that must not be on any host: the plan
/// removes them where they are found (`plan` shows "- remove"), and so does reset.
/// super-admin.conf (system:masters, which RBAC cannot revoke) was put on every
/// control-plane host though nothing there uses it; it now stays in the operator's
/// state directory only.
pub const RETIRED_FILES: &[&str] = &[crate::render::paths::SUPER_ADMIN_CONF];

#[derive(Debug, Clone, Serialize)]
pub struct DesiredState {
    pub hosts: Vec<DesiredHost>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DesiredHost {
    /// Inventory host name.
    pub host: String,
    pub users: Vec<SystemUser>,
    pub dirs: Vec<ManagedDir>,
    pub files: Vec<ManagedFile>,
    pub units: Vec<ManagedUnit>,
}

/// A system account a service runs as (e.g. etcd), created when missing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SystemUser {
    pub name: String,
    pub home: String,
    pub component: Component,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ManagedDir {
    /// Absolute path on the host.
    pub path: String,
    pub mode: u32,
    pub owner: String,
    pub group: String,
    pub component: Component,
}

#[derive(Clone, Serialize)]
pub struct ManagedFile {
    /// Absolute path on the host.
    pub path: String,
    pub mode: u32,
    pub owner: String,
    pub group: String,
    #[serde(skip)]
    pub content: Arc<Vec<u8>>,
    /// Private keys, tokens, encryption keys: content never printed or logged.
    pub secret: bool,
    pub component: Component,
    /// Written only while this path is missing on the host, left as it is once it exists.
    /// Why: some settings only matter the first time a service starts (etcd's
    /// `--initial-cluster*` flags are read only when the member has no data yet); their
    /// file must not change under a running member when the inventory grows, or every
    /// member would be rewritten (and, if watched, restarted) for nothing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub only_while_missing: Option<String>,
}

/// A systemd unit provision manages. It is enabled and started; it is restarted
/// when any file in `watches` (its unit file, flags' files, certificates) changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ManagedUnit {
    /// e.g. "etcd.service"
    pub name: String,
    pub component: Component,
    /// Absolute paths of the files whose change requires a restart.
    pub watches: Vec<String>,
}

/// Debug never shows the content: it may be a private key (only its size and digest).
impl std::fmt::Debug for ManagedFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ManagedFile")
            .field("path", &self.path)
            .field("mode", &format_args!("{:04o}", self.mode))
            .field("owner", &self.owner)
            .field("group", &self.group)
            .field("size", &self.content.len())
            .field("sha256", &self.sha256_hex())
            .field("secret", &self.secret)
            .field("component", &self.component)
            .field("only_while_missing", &self.only_while_missing)
            .finish()
    }
}

impl ManagedFile {
    /// The content's sha256 (what the plan compares with the host's). Large contents
    /// (binaries, shared by every host through one `Arc`) are hashed once per process.
    pub fn sha256_hex(&self) -> String {
        sha256_memo::of(&self.content)
    }
}

/// Shares `bytes` as file content whose sha256 (`sha256`, computed by the caller from
/// these very bytes) the plan will not compute again.
pub(crate) fn shared_content_with_sha256(bytes: Vec<u8>, sha256: &str) -> Arc<Vec<u8>> {
    let content = Arc::new(bytes);
    sha256_memo::remember(&content, sha256);
    content
}

mod sha256_memo {
    //! Why: the plan hashes every desired file, per host; a 90 MB kube-apiserver on
    //! three control-plane hosts would be hashed six times per plan. Keyed by the `Arc`'s
    //! allocation: while a `Weak` to it lives, the allocation cannot be reused or mutated
    //! (`Arc::get_mut` refuses, `make_mut` moves the data), so a live entry is exact.
    use std::sync::{Arc, Mutex, Weak};

    use sha2::{Digest, Sha256};

    /// Smaller contents are cheaper to hash than to look up.
    const MEMO_FROM_BYTES: usize = 1 << 20;

    static MEMO: Mutex<Vec<(Weak<Vec<u8>>, String)>> = Mutex::new(Vec::new());

    /// Records a digest the caller just computed from exactly `content`'s bytes (the
    /// artifacts hash every binary when verifying it; the plan need not do it again).
    pub fn remember(content: &Arc<Vec<u8>>, sha256: &str) {
        if content.len() < MEMO_FROM_BYTES {
            return;
        }
        if let Ok(mut memo) = MEMO.lock() {
            memo.retain(|(w, _)| w.strong_count() > 0);
            if !memo.iter().any(|(w, _)| std::ptr::eq(w.as_ptr(), Arc::as_ptr(content))) {
                memo.push((Arc::downgrade(content), sha256.to_string()));
            }
        }
    }

    pub fn of(content: &Arc<Vec<u8>>) -> String {
        if content.len() < MEMO_FROM_BYTES {
            return hex::encode(Sha256::digest(content.as_slice()));
        }
        let find = |memo: &Vec<(Weak<Vec<u8>>, String)>| {
            memo.iter().find(|(w, _)| std::ptr::eq(w.as_ptr(), Arc::as_ptr(content))).map(|(_, h)| h.clone())
        };
        if let Some(h) = MEMO.lock().ok().and_then(|m| find(&m)) {
            return h;
        }
        let h = hex::encode(Sha256::digest(content.as_slice()));
        if let Ok(mut memo) = MEMO.lock() {
            memo.retain(|(w, _)| w.strong_count() > 0);
            if find(&memo).is_none() {
                memo.push((Arc::downgrade(content), h.clone()));
            }
        }
        h
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn memo_is_per_allocation_and_exact() {
            let a = Arc::new(vec![1u8; MEMO_FROM_BYTES]);
            let b = Arc::new(vec![2u8; MEMO_FROM_BYTES]);
            let want = |v: &Arc<Vec<u8>>| hex::encode(Sha256::digest(v.as_slice()));
            assert_eq!(of(&a), want(&a));
            assert_eq!(of(&a.clone()), want(&a));
            assert_eq!(of(&b), want(&b));
            // Mutation through make_mut moves the data away from the memoised allocation.
            let mut c = a.clone();
            drop(a);
            Arc::make_mut(&mut c)[0] = 9;
            assert_eq!(of(&c), want(&c));
            // A digest remembered with the content is what the plan gets.
            let d = Arc::new(vec![3u8; MEMO_FROM_BYTES]);
            remember(&d, &want(&d));
            assert_eq!(of(&d), want(&d));
            // Small contents are hashed directly.
            assert_eq!(of(&Arc::new(b"hello".to_vec())), "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824");
        }
    }
}

impl DesiredHost {
    pub fn file(&self, path: &str) -> Option<&ManagedFile> {
        self.files.iter().find(|f| f.path == path)
    }
}
