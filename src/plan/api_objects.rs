//! A phase of cluster objects in the plan (bootstrap-rbac, cluster-dns: the phase table's
//! `objects`): one action per object that is missing, differs, or could not be read, all
//! on the API host (the first control-plane host).

use std::sync::Arc;

use super::action::{Action, ObjectReason, Phase};
use super::{HostSteps, PhasePlan, Plan};
use crate::kube::bootstrap::{Observation, Observed};

pub fn add_phase(plan: &mut Plan, phase: Phase, api: &Observation) {
    let actions: Vec<Action> = api
        .objects
        .iter()
        .filter_map(|(o, seen)| {
            let (why, detail) = match seen {
                Observed::Current => return None,
                Observed::Absent => (ObjectReason::Create, None),
                Observed::Differs => (ObjectReason::Update, None),
                Observed::Unknown(d) => (ObjectReason::Unknown, Some(d.clone())),
            };
            Some(Action::ApplyObject {
                kind: o.kind.clone(),
                name: o.name.clone(),
                why,
                detail,
                object: Arc::new(o.clone()),
            })
        })
        .collect();
    let hosts = if actions.is_empty() { vec![] } else { vec![HostSteps { host: api.host.clone(), actions }] };
    let at = plan.phases.iter().position(|p| p.phase > phase).unwrap_or(plan.phases.len());
    plan.phases.insert(at, PhasePlan { phase, hosts, waits: vec![], stages: vec![], snapshot: None });
    plan.count_changes();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kube::objects::ApiObject;
    use crate::plan::PlanKind;

    fn observation(objects: Vec<(ApiObject, Observed)>) -> Observation {
        Observation { host: "cp1".into(), objects }
    }

    fn object(name: &str) -> ApiObject {
        ApiObject {
            kind: "ClusterRole".into(),
            name: name.into(),
            path: format!("/apis/rbac.authorization.k8s.io/v1/clusterroles/{name}"),
            body: Arc::new(serde_json::json!({"metadata": {"name": name}})),
        }
    }

    fn plan_with(phases: &[Phase]) -> Plan {
        let phases = phases.iter().map(|&phase| PhasePlan { phase, hosts: vec![], waits: vec![], stages: vec![], snapshot: None }).collect();
        Plan { kind: PlanKind::Apply, cluster: "c".into(), hosts: vec![], phases, changes: 0 }
    }

    #[test]
    fn only_what_is_not_current_becomes_an_action_between_controllers_and_kubelet() {
        let mut plan = plan_with(&[Phase::Preflight, Phase::Controllers, Phase::Kubelet]);
        let api = observation(vec![
            (object("a"), Observed::Current),
            (object("b"), Observed::Absent),
            (object("c"), Observed::Differs),
            (object("d"), Observed::Unknown("not running".into())),
        ]);
        add_phase(&mut plan, Phase::BootstrapRbac, &api);
        let order: Vec<Phase> = plan.phases.iter().map(|p| p.phase).collect();
        assert_eq!(order, [Phase::Preflight, Phase::Controllers, Phase::BootstrapRbac, Phase::Kubelet]);
        assert_eq!(plan.changes, 3);
        let json = serde_json::to_value(&plan.phases[2]).unwrap();
        assert_eq!(json["phase"], "bootstrap-rbac");
        assert_eq!(json["hosts"][0]["host"], "cp1");
        let whys: Vec<&str> = json["hosts"][0]["actions"].as_array().unwrap().iter().map(|a| a["why"].as_str().unwrap()).collect();
        assert_eq!(whys, ["create", "update", "unknown"]);
        assert_eq!(json["hosts"][0]["actions"][2]["detail"], "not running");
        assert_eq!(json["hosts"][0]["actions"][0]["action"], "apply-object");
    }

    #[test]
    fn all_current_means_no_change() {
        let mut plan = plan_with(&[Phase::Preflight, Phase::Controllers]);
        add_phase(&mut plan, Phase::BootstrapRbac, &observation(vec![(object("a"), Observed::Current)]));
        assert_eq!(plan.changes, 0);
        assert!(plan.is_empty());
        assert_eq!(plan.phases.last().unwrap().phase, Phase::BootstrapRbac);
    }

    #[test]
    fn cluster_dns_goes_after_the_kubelets() {
        let mut plan = plan_with(&[Phase::Preflight, Phase::Kubelet]);
        add_phase(&mut plan, Phase::ClusterDns, &observation(vec![(object("a"), Observed::Absent)]));
        add_phase(&mut plan, Phase::BootstrapRbac, &observation(vec![(object("b"), Observed::Absent)]));
        let order: Vec<Phase> = plan.phases.iter().map(|p| p.phase).collect();
        assert_eq!(order, [Phase::Preflight, Phase::BootstrapRbac, Phase::Kubelet, Phase::ClusterDns]);
        assert_eq!(plan.changes, 2);
        assert_eq!(serde_json::to_value(&plan.phases[3]).unwrap()["phase"], "cluster-dns");
    }
}
