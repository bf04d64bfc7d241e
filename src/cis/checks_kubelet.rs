//! 4.2.x kubelet settings (command-line flag first, then the KubeletConfiguration file)
//! and 4.3.1 kube-proxy metrics address.

use serde_yaml_ng::Value;

use super::checks_control_plane::gate_not_disabled;
use super::checks_files::check;
use super::support::{get, kubelet_setting, scalar, suites_within, yaml};
use super::{Check, HostView, KUBE_PROXY, KUBELET, Outcome};
use crate::render::paths;

const K: &str = KUBELET;

/// CIS 4.2.12: the only acceptable kubelet TLS cipher suites.
pub const KUBELET_ALLOWED_SUITES: &[&str] = &[
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
];

fn config(v: &HostView) -> Result<Value, Outcome> {
    let path = v.flag(K, "config").unwrap_or(paths::KUBELET_CONFIG).to_string();
    yaml(v, &path)
}

fn setting(v: &HostView, flag: &str, field: &str, pass: impl Fn(Option<&str>) -> bool) -> Outcome {
    let cfg = config(v);
    let (value, evidence) = kubelet_setting(v, flag, field, &cfg);
    Outcome::when(pass(value.as_deref()), evidence)
}

pub fn c_4_2_1(v: &HostView) -> Outcome {
    setting(v, "anonymous-auth", "authentication.anonymous.enabled", |x| x == Some("false"))
}
pub fn c_4_2_2(v: &HostView) -> Outcome {
    setting(v, "authorization-mode", "authorization.mode", |x| x.is_some_and(|m| !m.is_empty() && m != "AlwaysAllow"))
}
pub fn c_4_2_3(v: &HostView) -> Outcome {
    setting(v, "client-ca-file", "authentication.x509.clientCAFile", |x| x.is_some_and(|p| !p.is_empty()))
}
pub fn c_4_2_4(v: &HostView) -> Outcome {
    setting(v, "read-only-port", "readOnlyPort", |x| x == Some("0"))
}
pub fn c_4_2_5(v: &HostView) -> Outcome {
    setting(v, "streaming-connection-idle-timeout", "streamingConnectionIdleTimeout", |x| {
        x.is_some_and(|t| !matches!(t, "" | "0" | "0s"))
    })
}
pub fn c_4_2_6(v: &HostView) -> Outcome {
    setting(v, "make-iptables-util-chains", "makeIPTablesUtilChains", |x| x.is_none() || x == Some("true"))
}
pub fn c_4_2_7(v: &HostView) -> Outcome {
    match v.flag(K, "hostname-override") {
        None => Outcome::pass("kubelet: --hostname-override is not set"),
        Some(h) => Outcome::fail(format!("kubelet: --hostname-override={h}")),
    }
}
pub fn c_4_2_8(v: &HostView) -> Outcome {
    setting(v, "event-qps", "eventRecordQPS", |x| x.and_then(|q| q.parse::<f64>().ok()).is_some_and(|q| q >= 0.0))
}
pub fn c_4_2_9(v: &HostView) -> Outcome {
    let has = |x: Option<&str>| x.is_some_and(|p| !p.is_empty());
    setting(v, "tls-cert-file", "tlsCertFile", has).and(setting(v, "tls-private-key-file", "tlsPrivateKeyFile", has))
}
pub fn c_4_2_10(v: &HostView) -> Outcome {
    setting(v, "rotate-certificates", "rotateCertificates", |x| x == Some("true"))
}
pub fn c_4_2_11(v: &HostView) -> Outcome {
    if let Some(gates) = v.flag(K, "feature-gates") {
        return gate_not_disabled(K, Some(gates), "RotateKubeletServerCertificate");
    }
    match config(v) {
        Ok(doc) => {
            let value = scalar(get(&doc, "featureGates.RotateKubeletServerCertificate"));
            let ev = match &value {
                Some(x) => format!("kubelet config featureGates.RotateKubeletServerCertificate: {x}"),
                None => "kubelet config: RotateKubeletServerCertificate not set (enabled by default)".to_string(),
            };
            Outcome::when(value.as_deref() != Some("false"), ev)
        }
        Err(o) => o,
    }
}
pub fn c_4_2_12(v: &HostView) -> Outcome {
    if let Some(flag) = v.flag(K, "tls-cipher-suites") {
        return suites_within("kubelet --tls-cipher-suites", Some(flag), KUBELET_ALLOWED_SUITES);
    }
    match config(v) {
        Ok(doc) => {
            let list: Option<Vec<String>> = get(&doc, "tlsCipherSuites")
                .and_then(Value::as_sequence)
                .map(|s| s.iter().filter_map(|x| x.as_str().map(str::to_string)).collect());
            let joined = list.map(|l| l.join(","));
            suites_within("kubelet config tlsCipherSuites", joined.as_deref(), KUBELET_ALLOWED_SUITES)
        }
        Err(o) => o,
    }
}
pub fn c_4_2_13(v: &HostView) -> Outcome {
    setting(v, "pod-max-pids", "podPidsLimit", |x| x.and_then(|n| n.parse::<i64>().ok()).is_some_and(|n| n > 0))
}
pub fn c_4_2_14(v: &HostView) -> Outcome {
    setting(v, "seccomp-default", "seccompDefault", |x| x == Some("true"))
}

pub fn c_4_3_1(v: &HostView) -> Outcome {
    let address = match v.flag(KUBE_PROXY, "metrics-bind-address") {
        Some(a) => Ok((a.to_string(), format!("kube-proxy --metrics-bind-address={a}"))),
        None => match v.flag(KUBE_PROXY, "config") {
            Some(path) => yaml(v, path).and_then(|doc| match scalar(get(&doc, "metricsBindAddress")) {
                Some(a) => Ok((a.clone(), format!("{path}: metricsBindAddress: {a}"))),
                None => Err(Outcome::fail(format!("{path}: metricsBindAddress is not set"))),
            }),
            None => Err(Outcome::fail("kube-proxy: neither --metrics-bind-address nor --config")),
        },
    };
    match address {
        Ok((a, ev)) => {
            let host = a.rsplit_once(':').map(|(h, _)| h).unwrap_or(&a);
            Outcome::when(host == "127.0.0.1", ev)
        }
        Err(o) => o,
    }
}

pub static CHECKS: [Check; 15] = [
    check!("4.2.1", "kubelet anonymous authentication is disabled", K, false, c_4_2_1),
    check!("4.2.2", "kubelet authorization mode is not AlwaysAllow", K, false, c_4_2_2),
    check!("4.2.3", "kubelet client CA file is set", K, false, c_4_2_3),
    check!("4.2.4", "kubelet read-only port is 0", K, true, c_4_2_4),
    check!("4.2.5", "kubelet streaming connection idle timeout is not 0", K, true, c_4_2_5),
    check!("4.2.6", "kubelet makes iptables util chains", K, false, c_4_2_6),
    check!("4.2.7", "kubelet --hostname-override is not set", K, true, c_4_2_7),
    check!("4.2.8", "kubelet eventRecordQPS captures events", K, true, c_4_2_8),
    check!("4.2.9", "kubelet TLS certificate and key are set", K, true, c_4_2_9),
    check!("4.2.10", "kubelet rotates its certificates", K, false, c_4_2_10),
    check!("4.2.11", "RotateKubeletServerCertificate is not disabled", K, true, c_4_2_11),
    check!("4.2.12", "kubelet uses strong cryptographic ciphers only", K, true, c_4_2_12),
    check!("4.2.13", "kubelet podPidsLimit is set", K, true, c_4_2_13),
    check!("4.2.14", "kubelet seccompDefault is enabled", K, true, c_4_2_14),
    check!("4.3.1", "kube-proxy metrics are bound to 127.0.0.1", KUBE_PROXY, false, c_4_3_1),
];
