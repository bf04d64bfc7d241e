//! 1.3.x kube-controller-manager and 1.4.x kube-scheduler command lines.

use super::checks_files::check;
use super::support::{flag_is, flag_set};
use super::{CONTROLLER_MANAGER, Check, HostView, Outcome, SCHEDULER};

const CM: &str = CONTROLLER_MANAGER;

/// A --feature-gates value does not turn `gate` off.
pub fn gate_not_disabled(process: &str, value: Option<&str>, gate: &str) -> Outcome {
    let disabled = value.is_some_and(|v| {
        v.split(',').any(|kv| {
            let (k, val) = kv.split_once('=').unwrap_or((kv, ""));
            let k = k.trim();
            let k = k.rsplit(':').next().unwrap_or(k); // "kube:Gate=false" (1.31+ syntax)
            k == gate && val.trim().eq_ignore_ascii_case("false")
        })
    });
    let shown = value.map(|v| format!("--feature-gates={v}")).unwrap_or_else(|| "--feature-gates is not set".into());
    Outcome::when(!disabled, format!("{process}: {shown}"))
}

pub fn c_1_3_1(v: &HostView) -> Outcome {
    let o = flag_set(v, CM, "terminated-pod-gc-threshold");
    let positive = v.flag(CM, "terminated-pod-gc-threshold").and_then(|x| x.parse::<i64>().ok()).is_some_and(|n| n > 0);
    Outcome::when(o.passed && positive, o.evidence)
}
pub fn c_1_3_2(v: &HostView) -> Outcome {
    flag_is(v, CM, "profiling", "false")
}
pub fn c_1_3_3(v: &HostView) -> Outcome {
    flag_is(v, CM, "use-service-account-credentials", "true")
}
pub fn c_1_3_4(v: &HostView) -> Outcome {
    flag_set(v, CM, "service-account-private-key-file")
}
pub fn c_1_3_5(v: &HostView) -> Outcome {
    flag_set(v, CM, "root-ca-file")
}
pub fn c_1_3_6(v: &HostView) -> Outcome {
    gate_not_disabled(CM, v.flag(CM, "feature-gates"), "RotateKubeletServerCertificate")
}
pub fn c_1_3_7(v: &HostView) -> Outcome {
    flag_is(v, CM, "bind-address", "127.0.0.1")
}
pub fn c_1_4_1(v: &HostView) -> Outcome {
    flag_is(v, SCHEDULER, "profiling", "false")
}
pub fn c_1_4_2(v: &HostView) -> Outcome {
    flag_is(v, SCHEDULER, "bind-address", "127.0.0.1")
}

pub static CHECKS: [Check; 9] = [
    check!("1.3.1", "--terminated-pod-gc-threshold is set", CM, true, c_1_3_1),
    check!("1.3.2", "controller manager --profiling is false", CM, false, c_1_3_2),
    check!("1.3.3", "--use-service-account-credentials is true", CM, false, c_1_3_3),
    check!("1.3.4", "--service-account-private-key-file is set", CM, false, c_1_3_4),
    check!("1.3.5", "--root-ca-file is set", CM, false, c_1_3_5),
    check!("1.3.6", "RotateKubeletServerCertificate is not disabled", CM, false, c_1_3_6),
    check!("1.3.7", "controller manager --bind-address is 127.0.0.1", CM, false, c_1_3_7),
    check!("1.4.1", "scheduler --profiling is false (on the command line)", SCHEDULER, false, c_1_4_1),
    check!("1.4.2", "scheduler --bind-address is 127.0.0.1", SCHEDULER, false, c_1_4_2),
];
