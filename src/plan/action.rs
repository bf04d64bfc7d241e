//! The plan's vocabulary: phases, the actions on one host, and the phase-level waits.
//!
//! Everything here serialises to JSON with a stable shape (`--output json`). File
//! contents are carried for apply but never serialised: a plan shows paths, sha256
//! and sizes only, so printing it can never leak a private key.

use std::sync::Arc;

use serde::{Serialize, Serializer};

use crate::desired::Component;
use crate::kube::objects::ApiObject;

/// Apply works through phases in this order; hosts run in parallel inside a phase and
/// the run stops before the next phase when any host failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// Connect, gather facts, check OS/systemd/sudo/ports; remove stale temp files.
    Preflight,
    /// Users, directories and the files every component shares (CA certificates).
    Base,
    Etcd,
    KubeApiserver,
    /// kube-controller-manager and kube-scheduler (independent of each other).
    Controllers,
    /// Cluster objects through the API (not a host's files): the apiserver-to-kubelet
    /// ClusterRole and binding, the admin group bound to cluster-admin.
    BootstrapRbac,
    /// The container runtime and pod network of every kubelet host.
    Runtime,
    Kubelet,
    /// Cluster objects through the API: CoreDNS and the `kube-dns` Service at the
    /// kubelets' clusterDNS address.
    ClusterDns,
}

impl Phase {
    pub const ALL: [Phase; 9] = [
        Phase::Preflight,
        Phase::Base,
        Phase::Etcd,
        Phase::KubeApiserver,
        Phase::Controllers,
        Phase::BootstrapRbac,
        Phase::Runtime,
        Phase::Kubelet,
        Phase::ClusterDns,
    ];

    /// The phase that installs `component` (from the phase table, `phase_spec`).
    pub fn of(component: Component) -> Phase {
        super::phase_spec::phase_of(component)
    }

    pub fn name(self) -> &'static str {
        super::phase_spec::spec(self).name
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A file mode, shown as "0600" in text and JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mode(pub u32);

impl Serialize for Mode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04o}", self.0)
    }
}

/// Why a file is (re)written or fixed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum WriteReason {
    Create,
    Content,
    Mode,
    Owner,
}

impl WriteReason {
    /// Create/Content write the bytes; Mode/Owner alone only chmod/chown (the bytes
    /// and mtime stay, so nothing watching the file restarts).
    pub fn rewrites_content(self) -> bool {
        matches!(self, WriteReason::Create | WriteReason::Content)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "kebab-case")]
pub enum RestartReason {
    /// A file the unit watches is rewritten by this plan.
    WatchedFileChanged { paths: Vec<String> },
    /// The unit is in the failed state.
    Failed,
    /// A watched file is newer than the running process: an earlier apply wrote it
    /// and was interrupted before the restart.
    ProcessOlderThan { paths: Vec<String> },
}

/// The file bytes apply writes. Never serialised, never Debug-printed.
#[derive(Clone)]
pub struct Content(pub Arc<Vec<u8>>);

impl std::fmt::Debug for Content {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "<{} bytes>", self.0.len())
    }
}

impl PartialEq for Content {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}
impl Eq for Content {}

/// One step on one host. Apply executes them in plan order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum Action {
    CreateUser {
        name: String,
        home: String,
        /// A group of that name exists already (the user joins it instead of making one).
        group_exists: bool,
    },
    CreateDir {
        path: String,
        mode: Mode,
        owner: String,
        group: String,
    },
    FixDir {
        path: String,
        mode: Mode,
        owner: String,
        group: String,
        why: Vec<WriteReason>,
    },
    RemoveStaleTemp {
        path: String,
    },
    WriteFile {
        path: String,
        mode: Mode,
        owner: String,
        group: String,
        sha256: String,
        size: usize,
        secret: bool,
        why: Vec<WriteReason>,
        #[serde(skip)]
        content: Content,
    },
    /// `systemctl daemon-reload`: only when a unit file changed (or systemd says so).
    DaemonReload {
        because: Vec<String>,
    },
    EnableUnit {
        unit: String,
    },
    StartUnit {
        unit: String,
    },
    RestartUnit {
        unit: String,
        #[serde(flatten)]
        because: RestartReason,
    },
    // Reset only.
    StopUnit {
        unit: String,
    },
    DisableUnit {
        unit: String,
    },
    RemoveFile {
        path: String,
    },
    /// Removed only when empty: provision never deletes what it did not put there.
    RemoveDir {
        path: String,
    },
    /// `--purge-data`: the directory and everything in it (the etcd data dir).
    PurgeDir {
        path: String,
    },
    /// `etcd restore`: the member's data dir rebuilt from the uploaded snapshot (checked
    /// against `sha256` first) beside the old one, then swapped in; the old one is kept as
    /// `<data_dir>.before-restore-<stamp>` (restore_script::restore).
    RestoreEtcdMember {
        #[serde(flatten)]
        restore: crate::etcd::restore_script::MemberRestore,
        sha256: String,
    },
    /// A failed restore undone: the kept data dir put back (restore_script::roll_back).
    RollBackEtcdRestore {
        #[serde(flatten)]
        restore: crate::etcd::restore_script::MemberRestore,
    },
    /// Renamed, never deleted (a removed or stale etcd member's data): nothing to do
    /// when `path` is gone already, so a re-run converges.
    MoveAside {
        path: String,
        to: String,
    },
    /// A cluster object, server-side applied through the host's kube-apiserver.
    ApplyObject {
        kind: String,
        name: String,
        why: ObjectReason,
        /// Why the current state is unknown (`why` = unknown).
        #[serde(skip_serializing_if = "Option::is_none")]
        detail: Option<String>,
        #[serde(skip)]
        object: Arc<ApiObject>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ObjectReason {
    Create,
    Update,
    /// kube-apiserver was not running or not readable when the plan was made; applying
    /// is safe either way (server-side apply creates or updates).
    Unknown,
}

impl Action {
    /// Start/restart run after every host's other actions in the phase are done, all
    /// hosts together: etcd members (Type=notify) must come up at the same time.
    pub fn is_service_start(&self) -> bool {
        matches!(self, Action::StartUnit { .. } | Action::RestartUnit { .. })
    }

    /// The path, unit or user the action is about.
    pub fn target(&self) -> &str {
        match self {
            Action::CreateUser { name, .. } => name,
            Action::CreateDir { path, .. }
            | Action::FixDir { path, .. }
            | Action::RemoveStaleTemp { path }
            | Action::WriteFile { path, .. }
            | Action::RemoveFile { path }
            | Action::RemoveDir { path }
            | Action::PurgeDir { path }
            | Action::MoveAside { path, .. } => path,
            Action::RestoreEtcdMember { restore, .. } | Action::RollBackEtcdRestore { restore } => &restore.data_dir,
            Action::DaemonReload { .. } => "systemd",
            Action::EnableUnit { unit }
            | Action::StartUnit { unit }
            | Action::RestartUnit { unit, .. }
            | Action::StopUnit { unit }
            | Action::DisableUnit { unit } => unit,
            Action::ApplyObject { name, .. } => name,
        }
    }
}

/// What a phase waits for after its actions, before the next phase starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "wait", rename_all = "kebab-case")]
pub enum Wait {
    /// The units reach `active` on these hosts (fails fast when one fails).
    UnitsActive { hosts: Vec<HostUnits> },
    /// Every etcd member answers healthy over mTLS and the cluster has a leader.
    EtcdQuorum { members: Vec<String> },
    /// kube-apiserver on each of these hosts answers 200 on /readyz (its unit is `active`
    /// as soon as the process runs, long before it serves).
    ApiserverReady { hosts: Vec<String> },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostUnits {
    pub host: String,
    pub units: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_is_never_serialised_nor_debug_printed() {
        let a = Action::WriteFile {
            path: "/etc/etcd/pki/server.key".into(),
            mode: Mode(0o600),
            owner: "etcd".into(),
            group: "etcd".into(),
            sha256: "ab".into(),
            size: 16,
            secret: true,
            why: vec![WriteReason::Create],
            content: Content(Arc::new(b"-----BEGIN KEY-----".to_vec())),
        };
        let json = serde_json::to_string(&a).unwrap();
        assert!(!json.contains("BEGIN"), "{json}");
        assert!(json.contains(r#""mode":"0600""#), "{json}");
        assert!(json.contains(r#""action":"write-file""#), "{json}");
        assert!(!format!("{a:?}").contains("BEGIN"));
    }

    #[test]
    fn restart_reason_is_flattened() {
        let a = Action::RestartUnit {
            unit: "etcd.service".into(),
            because: RestartReason::WatchedFileChanged { paths: vec!["/a".into()] },
        };
        assert_eq!(
            serde_json::to_value(&a).unwrap(),
            serde_json::json!({"action": "restart-unit", "unit": "etcd.service", "reason": "watched-file-changed", "paths": ["/a"]})
        );
    }
}
