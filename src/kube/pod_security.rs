//! The restricted Pod Security Standard, checked on a pod spec as provision renders it
//! (parsed YAML): what kube-apiserver's PodSecurity admission would refuse, so a rendered
//! workload is known to pass before any API server sees it. Checked: host namespaces,
//! volume sources, host ports, privilege, procMount, privilege escalation, capabilities,
//! non-root users, seccomp. Not checked (no template of provision sets them): sysctls,
//! AppArmor, SELinux options, Windows host processes.

use serde_json::Value;

/// Every violation of the restricted level in `pod_spec` (a Deployment's
/// `spec.template.spec`), as text; empty when it passes.
pub fn restricted_violations(pod_spec: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for ns in ["hostNetwork", "hostPID", "hostIPC"] {
        if pod_spec[ns] == Value::Bool(true) {
            out.push(format!("{ns}: true"));
        }
    }
    // Restricted allows these volume sources only (hostPath, above all, is not one).
    const VOLUMES: &[&str] =
        &["configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret"];
    for v in list(&pod_spec["volumes"]) {
        let fields = v.as_object().into_iter().flat_map(|o| o.keys()).filter(|k| k.as_str() != "name");
        for source in fields.filter(|k| !VOLUMES.contains(&k.as_str())) {
            out.push(format!("volume {}: {source}", v["name"]));
        }
    }
    let pod = &pod_spec["securityContext"];
    let containers =
        ["initContainers", "containers", "ephemeralContainers"].into_iter().flat_map(|k| list(&pod_spec[k]));
    let mut any = false;
    for c in containers {
        any = true;
        let name = c["name"].as_str().unwrap_or("?");
        let sc = &c["securityContext"];
        // A container's own setting wins over the pod's.
        let effective = |field: &str| if sc[field].is_null() { &pod[field] } else { &sc[field] };
        if sc["procMount"].as_str().is_some_and(|m| m != "Default") {
            out.push(format!("{name}: procMount {}", sc["procMount"]));
        }
        if sc["privileged"] == Value::Bool(true) {
            out.push(format!("{name}: privileged"));
        }
        if sc["allowPrivilegeEscalation"] != Value::Bool(false) {
            out.push(format!("{name}: allowPrivilegeEscalation must be false"));
        }
        if *effective("runAsNonRoot") != Value::Bool(true) {
            out.push(format!("{name}: runAsNonRoot must be true"));
        }
        if effective("runAsUser").as_u64() == Some(0) {
            out.push(format!("{name}: runAsUser 0"));
        }
        let seccomp = effective("seccompProfile");
        if !["RuntimeDefault", "Localhost"].contains(&seccomp["type"].as_str().unwrap_or("")) {
            out.push(format!("{name}: seccompProfile.type must be RuntimeDefault or Localhost"));
        }
        let caps = &sc["capabilities"];
        if !list(&caps["drop"]).iter().any(|d| d.as_str() == Some("ALL")) {
            out.push(format!("{name}: capabilities must drop ALL"));
        }
        for add in list(&caps["add"]).iter().filter(|a| a.as_str() != Some("NET_BIND_SERVICE")) {
            out.push(format!("{name}: capability {add} added (only NET_BIND_SERVICE may be)"));
        }
        for p in list(&c["ports"]).iter().filter(|p| p.get("hostPort").is_some_and(|h| h.as_u64() != Some(0))) {
            out.push(format!("{name}: hostPort {}", p["hostPort"]));
        }
    }
    if !any {
        out.push("no containers".into());
    }
    out
}

fn list(v: &Value) -> Vec<&Value> {
    v.as_array().map(|a| a.iter().collect()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn good() -> Value {
        json!({
            "securityContext": {"runAsNonRoot": true, "runAsUser": 1000, "seccompProfile": {"type": "RuntimeDefault"}},
            "volumes": [{"name": "config", "configMap": {"name": "c"}}],
            "containers": [{"name": "c", "ports": [{"containerPort": 53}], "securityContext": {
                "allowPrivilegeEscalation": false,
                "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}}}]
        })
    }

    #[test]
    fn a_restricted_pod_passes() {
        assert_eq!(restricted_violations(&good()), Vec::<String>::new());
    }

    /// Each control is checked: one change, one violation (the checker is not vacuous).
    #[test]
    fn every_control_is_checked() {
        let cases: &[(&str, Value, &str)] = &[
            ("/hostNetwork", json!(true), "hostNetwork"),
            ("/volumes", json!([{"name": "h", "hostPath": {"path": "/"}}]), "hostPath"),
            ("/volumes", json!([{"name": "n", "nfs": {"server": "x", "path": "/"}}]), "nfs"),
            ("/containers/0/securityContext/procMount", json!("Unmasked"), "procMount"),
            ("/containers/0/securityContext/privileged", json!(true), "privileged"),
            ("/containers/0/securityContext/allowPrivilegeEscalation", json!(true), "allowPrivilegeEscalation"),
            ("/containers/0/securityContext/runAsNonRoot", json!(false), "runAsNonRoot"),
            ("/securityContext/runAsUser", json!(0), "runAsUser 0"),
            ("/securityContext/seccompProfile/type", json!("Unconfined"), "seccompProfile"),
            ("/containers/0/securityContext/capabilities/drop", json!(["NET_RAW"]), "drop ALL"),
            ("/containers/0/securityContext/capabilities/add", json!(["NET_BIND_SERVICE", "SYS_ADMIN"]), "SYS_ADMIN"),
            ("/containers/0/ports/0/hostPort", json!(53), "hostPort 53"),
        ];
        for (pointer, value, expect) in cases {
            let mut spec = good();
            let (parent, key) = pointer.rsplit_once('/').unwrap();
            spec.pointer_mut(parent).unwrap()[key] = value.clone();
            let v = restricted_violations(&spec);
            assert!(v.len() == 1 && v[0].contains(expect), "{pointer}: {v:?}");
        }
    }
}
