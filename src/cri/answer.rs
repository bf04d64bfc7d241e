//! What a container runtime said over CRI, however it was asked (gRPC through SSH, or
//! `crictl` on the host), and what of it makes a node unfit for pods.

use serde_json::Value;

use super::proto::{API_VERSION, StatusResponse, VersionResponse};

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CriAnswer {
    pub runtime_name: String,
    pub runtime_version: String,
    pub api_version: String,
    /// RuntimeReady, NetworkReady (and whatever else the runtime reports).
    pub conditions: Vec<Condition>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Condition {
    pub kind: String,
    pub ready: bool,
    pub reason: String,
    pub message: String,
}

pub const RUNTIME_READY: &str = "RuntimeReady";
pub const NETWORK_READY: &str = "NetworkReady";

impl CriAnswer {
    pub fn from_grpc(version: VersionResponse, status: StatusResponse) -> CriAnswer {
        let conditions = status.status.map(|s| s.conditions).unwrap_or_default();
        CriAnswer {
            runtime_name: version.runtime_name,
            runtime_version: version.runtime_version,
            api_version: version.runtime_api_version,
            conditions: conditions
                .into_iter()
                .map(|c| Condition { kind: c.r#type, ready: c.status, reason: c.reason, message: c.message })
                .collect(),
        }
    }

    /// From `crictl version` (lines `RuntimeName: containerd`) and `crictl info` (JSON with
    /// `status.conditions[]` of type/status/reason/message). None without a runtime name.
    pub fn from_crictl(version: &str, info: &str) -> Option<CriAnswer> {
        let field = |name: &str| {
            version.lines().find_map(|l| l.trim().strip_prefix(name)?.strip_prefix(':').map(|v| v.trim().to_string()))
        };
        let runtime_name = field("RuntimeName").filter(|n| !n.is_empty())?;
        let info: Value = serde_json::from_str(info).unwrap_or(Value::Null);
        let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
        let conditions = info["status"]["conditions"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|c| Condition {
                        kind: text(&c["type"]),
                        ready: c["status"] == Value::Bool(true),
                        reason: text(&c["reason"]),
                        message: text(&c["message"]),
                    })
                    .collect()
            })
            .unwrap_or_default();
        Some(CriAnswer {
            runtime_name,
            runtime_version: field("RuntimeVersion").unwrap_or_default(),
            api_version: field("RuntimeApiVersion").unwrap_or_default(),
            conditions,
        })
    }

    pub fn condition(&self, kind: &str) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.kind == kind)
    }

    /// "CRI v1 containerd 1.6.20, RuntimeReady, NetworkReady" (a false condition with its
    /// reason: "NetworkReady false (NetworkPluginNotReady: cni config uninitialized)").
    pub fn summary(&self) -> String {
        let mut parts = vec![format!("CRI {} {} {}", self.api_version, self.runtime_name, self.runtime_version)];
        for kind in [RUNTIME_READY, NETWORK_READY] {
            parts.push(match self.condition(kind) {
                Some(c) if c.ready => kind.to_string(),
                Some(c) => format!("{kind} false ({})", c.why()),
                None => format!("no {kind} condition"),
            });
        }
        parts.join(", ")
    }

    /// What makes the runtime unusable by the kubelet: not ready, or not speaking CRI v1
    /// (the kubelet since 1.26 speaks nothing else).
    pub fn failures(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.api_version != API_VERSION {
            out.push(format!("the runtime speaks CRI {:?}, the kubelet needs {API_VERSION}", self.api_version));
        }
        match self.condition(RUNTIME_READY) {
            Some(c) if c.ready => {}
            Some(c) => out.push(format!("{RUNTIME_READY} false ({})", c.why())),
            None => out.push(format!("the runtime reports no {RUNTIME_READY} condition")),
        }
        out
    }

    /// NetworkReady false: the CNI config is not loaded, pods cannot get an address yet.
    pub fn network_not_ready(&self) -> Option<String> {
        match self.condition(NETWORK_READY) {
            Some(c) if c.ready => None,
            Some(c) => Some(format!("{NETWORK_READY} false ({}): the runtime has not loaded a CNI config", c.why())),
            None => Some(format!("the runtime reports no {NETWORK_READY} condition")),
        }
    }
}

impl Condition {
    fn why(&self) -> String {
        match (self.reason.is_empty(), self.message.is_empty()) {
            (true, true) => "no reason given".into(),
            (false, true) => self.reason.clone(),
            (true, false) => self.message.clone(),
            (false, false) => format!("{}: {}", self.reason, self.message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `crictl version` and the relevant part of `crictl info` against containerd 1.6.
    const CRICTL_VERSION: &str =
        "Version:  0.1.0\nRuntimeName:  containerd\nRuntimeVersion:  1.6.20~ds1\nRuntimeApiVersion:  v1\n";
    const CRICTL_INFO: &str = r#"{"status":{"conditions":[
        {"type":"RuntimeReady","status":true,"reason":"","message":""},
        {"type":"NetworkReady","status":false,"reason":"NetworkPluginNotReady","message":"Network plugin returns error: cni plugin not initialized"}]},
        "config":{"containerd":{}}}"#;

    #[test]
    fn crictl_answers_read_like_grpc_ones() {
        let a = CriAnswer::from_crictl(CRICTL_VERSION, CRICTL_INFO).unwrap();
        assert_eq!(
            (a.runtime_name.as_str(), a.runtime_version.as_str(), a.api_version.as_str()),
            ("containerd", "1.6.20~ds1", "v1")
        );
        assert!(a.failures().is_empty(), "{:?}", a.failures());
        assert_eq!(
            a.summary(),
            "CRI v1 containerd 1.6.20~ds1, RuntimeReady, NetworkReady false (NetworkPluginNotReady: Network plugin \
             returns error: cni plugin not initialized)"
        );
        assert!(a.network_not_ready().unwrap().contains("CNI config"));
        assert_eq!(CriAnswer::from_crictl("crictl: command not found", ""), None);
    }

    #[test]
    fn a_runtime_not_ready_or_not_v1_fails() {
        let mut a = CriAnswer::from_crictl(CRICTL_VERSION, CRICTL_INFO).unwrap();
        a.api_version = "v1alpha2".into();
        a.conditions[0].ready = false;
        a.conditions[0].reason = "ContainerdNotReady".into();
        let f = a.failures();
        assert!(f[0].contains("\"v1alpha2\"") && f[1] == "RuntimeReady false (ContainerdNotReady)", "{f:?}");
        a.conditions.clear();
        assert!(a.failures().iter().any(|f| f.contains("no RuntimeReady")));
    }
}
