//! 2.x: etcd command line (settings in environment files do not count).

use super::checks_files::check;
use super::support::{flag_is, flag_set, flag_unset_or};
use super::{Check, ETCD, HostView, Outcome};
use crate::render::paths;

const E: &str = ETCD;

pub fn c_2_1(v: &HostView) -> Outcome {
    flag_set(v, E, "cert-file").and(flag_set(v, E, "key-file"))
}
pub fn c_2_2(v: &HostView) -> Outcome {
    flag_is(v, E, "client-cert-auth", "true")
}
pub fn c_2_3(v: &HostView) -> Outcome {
    flag_unset_or(v, E, "auto-tls", "false")
}
pub fn c_2_4(v: &HostView) -> Outcome {
    flag_set(v, E, "peer-cert-file").and(flag_set(v, E, "peer-key-file"))
}
pub fn c_2_5(v: &HostView) -> Outcome {
    flag_is(v, E, "peer-client-cert-auth", "true")
}
pub fn c_2_6(v: &HostView) -> Outcome {
    flag_unset_or(v, E, "peer-auto-tls", "false")
}
/// --trusted-ca-file is set, and where the cluster CA is on the same host, the two
/// certificates differ (a client certificate from the cluster CA must not open etcd).
pub fn c_2_7(v: &HostView) -> Outcome {
    let set = flag_set(v, E, "trusted-ca-file");
    let Some(path) = v.flag(E, "trusted-ca-file") else { return set };
    let etcd_ca = v.file(path).and_then(|f| f.content.as_ref());
    let cluster_ca = v.file(paths::CA_CRT).and_then(|f| f.content.as_ref());
    match (etcd_ca, cluster_ca) {
        (Some(e), Some(c)) if e == c => set.and(Outcome::fail(format!("{path} is the cluster CA ({})", paths::CA_CRT))),
        (Some(_), Some(_)) => set.and(Outcome::pass(format!("{path} differs from the cluster CA"))),
        (None, _) if v.file(path).is_none() => set.and(Outcome::fail(format!("{path} does not exist"))),
        _ => set,
    }
}

pub static CHECKS: [Check; 7] = [
    check!("2.1", "etcd --cert-file and --key-file are set", E, false, c_2_1),
    check!("2.2", "etcd --client-cert-auth is true", E, false, c_2_2),
    check!("2.3", "etcd --auto-tls is not true", E, false, c_2_3),
    check!("2.4", "etcd --peer-cert-file and --peer-key-file are set", E, false, c_2_4),
    check!("2.5", "etcd --peer-client-cert-auth is true", E, false, c_2_5),
    check!("2.6", "etcd --peer-auto-tls is not true", E, false, c_2_6),
    check!("2.7", "etcd uses its own certificate authority", E, true, c_2_7),
];
