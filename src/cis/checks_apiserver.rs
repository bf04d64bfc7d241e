//! 1.2.x: kube-apiserver command line (and the files it names).

use serde_yaml_ng::Value;

use super::checks_files::check;
use super::support::{
    flag_at_least, flag_is, flag_list_has, flag_list_lacks, flag_set, flag_unset, flag_unset_or, suites_within, yaml,
};
use super::{APISERVER, Check, HostView, Outcome};

const A: &str = APISERVER;

/// CIS 1.2.29: the only acceptable --tls-cipher-suites values.
pub const APISERVER_ALLOWED_SUITES: &[&str] = &[
    "TLS_AES_128_GCM_SHA256",
    "TLS_AES_256_GCM_SHA384",
    "TLS_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
];

pub fn c_1_2_1(v: &HostView) -> Outcome {
    flag_is(v, A, "anonymous-auth", "false")
}
pub fn c_1_2_2(v: &HostView) -> Outcome {
    flag_unset(v, A, "token-auth-file")
}
pub fn c_1_2_3(v: &HostView) -> Outcome {
    flag_list_has(v, A, "enable-admission-plugins", "DenyServiceExternalIPs")
}
pub fn c_1_2_4(v: &HostView) -> Outcome {
    flag_set(v, A, "kubelet-client-certificate").and(flag_set(v, A, "kubelet-client-key"))
}
pub fn c_1_2_5(v: &HostView) -> Outcome {
    flag_set(v, A, "kubelet-certificate-authority")
}
pub fn c_1_2_6(v: &HostView) -> Outcome {
    let set = flag_set(v, A, "authorization-mode");
    let lacks = flag_list_lacks(v, A, "authorization-mode", "AlwaysAllow");
    Outcome::when(set.passed && lacks.passed, set.evidence)
}
pub fn c_1_2_7(v: &HostView) -> Outcome {
    flag_list_has(v, A, "authorization-mode", "Node")
}
pub fn c_1_2_8(v: &HostView) -> Outcome {
    flag_list_has(v, A, "authorization-mode", "RBAC")
}

/// EventRateLimit is enabled AND configured: the admission configuration file names it
/// (without a configuration the plugin refuses to start the apiserver).
pub fn c_1_2_9(v: &HostView) -> Outcome {
    let enabled = flag_list_has(v, A, "enable-admission-plugins", "EventRateLimit");
    let Some(path) = v.flag(A, "admission-control-config-file") else {
        return enabled.and(Outcome::fail("--admission-control-config-file is not set"));
    };
    let configured = match yaml(v, path) {
        Ok(doc) => {
            let plugins = doc.get("plugins").and_then(Value::as_sequence).cloned().unwrap_or_default();
            let found = plugins.iter().any(|p| {
                p.get("name").and_then(Value::as_str) == Some("EventRateLimit")
                    && (p.get("path").is_some() || p.get("configuration").is_some())
            });
            Outcome::when(found, format!("{path}: EventRateLimit {}", if found { "configured" } else { "not configured" }))
        }
        Err(o) => o,
    };
    enabled.and(configured)
}
pub fn c_1_2_10(v: &HostView) -> Outcome {
    flag_list_lacks(v, A, "enable-admission-plugins", "AlwaysAdmit")
}
pub fn c_1_2_11(v: &HostView) -> Outcome {
    flag_list_has(v, A, "enable-admission-plugins", "AlwaysPullImages")
}
pub fn c_1_2_12(v: &HostView) -> Outcome {
    flag_list_lacks(v, A, "disable-admission-plugins", "ServiceAccount")
}
pub fn c_1_2_13(v: &HostView) -> Outcome {
    flag_list_lacks(v, A, "disable-admission-plugins", "NamespaceLifecycle")
}
pub fn c_1_2_14(v: &HostView) -> Outcome {
    flag_list_has(v, A, "enable-admission-plugins", "NodeRestriction")
}
pub fn c_1_2_15(v: &HostView) -> Outcome {
    flag_is(v, A, "profiling", "false")
}
/// The audit log path is set, and so is a policy file that exists (without a policy
/// the apiserver writes no events at all).
pub fn c_1_2_16(v: &HostView) -> Outcome {
    let path = flag_set(v, A, "audit-log-path");
    let policy = match v.flag(A, "audit-policy-file") {
        Some(p) if v.file(p).is_some() => Outcome::pass(format!("--audit-policy-file={p} exists")),
        Some(p) => Outcome::fail(format!("--audit-policy-file={p} does not exist")),
        None => Outcome::fail("--audit-policy-file is not set: no audit events are written"),
    };
    path.and(policy)
}
pub fn c_1_2_17(v: &HostView) -> Outcome {
    flag_at_least(v, A, "audit-log-maxage", 30)
}
pub fn c_1_2_18(v: &HostView) -> Outcome {
    flag_at_least(v, A, "audit-log-maxbackup", 10)
}
pub fn c_1_2_19(v: &HostView) -> Outcome {
    flag_at_least(v, A, "audit-log-maxsize", 100)
}
pub fn c_1_2_20(v: &HostView) -> Outcome {
    let o = flag_set(v, A, "request-timeout");
    let zero = matches!(v.flag(A, "request-timeout"), Some("0") | Some("0s"));
    Outcome::when(o.passed && !zero, o.evidence)
}
pub fn c_1_2_21(v: &HostView) -> Outcome {
    flag_unset_or(v, A, "service-account-lookup", "true")
}
pub fn c_1_2_22(v: &HostView) -> Outcome {
    flag_set(v, A, "service-account-key-file")
}
pub fn c_1_2_23(v: &HostView) -> Outcome {
    flag_set(v, A, "etcd-certfile").and(flag_set(v, A, "etcd-keyfile"))
}
pub fn c_1_2_24(v: &HostView) -> Outcome {
    flag_set(v, A, "tls-cert-file").and(flag_set(v, A, "tls-private-key-file"))
}
pub fn c_1_2_25(v: &HostView) -> Outcome {
    flag_set(v, A, "client-ca-file")
}
pub fn c_1_2_26(v: &HostView) -> Outcome {
    flag_set(v, A, "etcd-cafile")
}
pub fn c_1_2_27(v: &HostView) -> Outcome {
    flag_set(v, A, "encryption-provider-config")
}

/// The first provider for secrets is aescbc, kms or secretbox.
pub fn c_1_2_28(v: &HostView) -> Outcome {
    let Some(path) = v.flag(A, "encryption-provider-config") else {
        return Outcome::fail("--encryption-provider-config is not set");
    };
    let doc = match yaml(v, path) {
        Ok(d) => d,
        Err(o) => return o,
    };
    let resources = doc.get("resources").and_then(Value::as_sequence).cloned().unwrap_or_default();
    let for_secrets = resources.iter().find(|r| {
        r.get("resources")
            .and_then(Value::as_sequence)
            .is_some_and(|l| l.iter().any(|x| matches!(x.as_str(), Some("secrets") | Some("*.*") | Some("*."))))
    });
    let Some(entry) = for_secrets else {
        return Outcome::fail(format!("{path}: no provider list covers secrets"));
    };
    let first = entry
        .get("providers")
        .and_then(Value::as_sequence)
        .and_then(|p| p.first())
        .and_then(Value::as_mapping)
        .and_then(|m| m.keys().next())
        .and_then(Value::as_str)
        .unwrap_or("(none)")
        .to_string();
    Outcome::when(
        matches!(first.as_str(), "aescbc" | "kms" | "secretbox"),
        format!("{path}: first provider for secrets is {first}"),
    )
}
pub fn c_1_2_29(v: &HostView) -> Outcome {
    suites_within("kube-apiserver --tls-cipher-suites", v.flag(A, "tls-cipher-suites"), APISERVER_ALLOWED_SUITES)
}
pub fn c_1_2_30(v: &HostView) -> Outcome {
    flag_is(v, A, "service-account-extend-token-expiration", "false")
}

pub static CHECKS: [Check; 30] = [
    check!("1.2.1", "--anonymous-auth is false", A, true, c_1_2_1),
    check!("1.2.2", "--token-auth-file is not set", A, false, c_1_2_2),
    check!("1.2.3", "DenyServiceExternalIPs admission plugin is enabled", A, true, c_1_2_3),
    check!("1.2.4", "--kubelet-client-certificate and --kubelet-client-key are set", A, false, c_1_2_4),
    check!("1.2.5", "--kubelet-certificate-authority is set", A, false, c_1_2_5),
    check!("1.2.6", "--authorization-mode does not include AlwaysAllow", A, false, c_1_2_6),
    check!("1.2.7", "--authorization-mode includes Node", A, false, c_1_2_7),
    check!("1.2.8", "--authorization-mode includes RBAC", A, false, c_1_2_8),
    check!("1.2.9", "EventRateLimit admission plugin is enabled and configured", A, true, c_1_2_9),
    check!("1.2.10", "AlwaysAdmit admission plugin is not enabled", A, false, c_1_2_10),
    check!("1.2.11", "AlwaysPullImages admission plugin is enabled", A, true, c_1_2_11),
    check!("1.2.12", "ServiceAccount admission plugin is not disabled", A, false, c_1_2_12),
    check!("1.2.13", "NamespaceLifecycle admission plugin is not disabled", A, false, c_1_2_13),
    check!("1.2.14", "NodeRestriction admission plugin is enabled", A, false, c_1_2_14),
    check!("1.2.15", "--profiling is false", A, false, c_1_2_15),
    check!("1.2.16", "--audit-log-path is set (with an audit policy)", A, false, c_1_2_16),
    check!("1.2.17", "--audit-log-maxage is 30 or more", A, false, c_1_2_17),
    check!("1.2.18", "--audit-log-maxbackup is 10 or more", A, false, c_1_2_18),
    check!("1.2.19", "--audit-log-maxsize is 100 or more", A, false, c_1_2_19),
    check!("1.2.20", "--request-timeout is set", A, true, c_1_2_20),
    check!("1.2.21", "--service-account-lookup is true", A, false, c_1_2_21),
    check!("1.2.22", "--service-account-key-file is set", A, false, c_1_2_22),
    check!("1.2.23", "--etcd-certfile and --etcd-keyfile are set", A, false, c_1_2_23),
    check!("1.2.24", "--tls-cert-file and --tls-private-key-file are set", A, false, c_1_2_24),
    check!("1.2.25", "--client-ca-file is set", A, false, c_1_2_25),
    check!("1.2.26", "--etcd-cafile is set", A, false, c_1_2_26),
    check!("1.2.27", "--encryption-provider-config is set", A, true, c_1_2_27),
    check!("1.2.28", "encryption providers: the first is aescbc, kms or secretbox", A, true, c_1_2_28),
    check!("1.2.29", "--tls-cipher-suites uses strong cryptographic ciphers only", A, true, c_1_2_29),
    check!("1.2.30", "--service-account-extend-token-expiration is false", A, false, c_1_2_30),
];
