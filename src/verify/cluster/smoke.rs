//! `cluster.smoke`: Kubernetes the Hard Way's smoke test, through the API only. In a
//! namespace of its own that enforces the restricted Pod Security level, a busybox httpd
//! pod serves a file holding this run's token behind a ClusterIP Service; a client Job
//! resolves `kubernetes.default.svc.<cluster domain>` through the cluster DNS and fetches
//! the token through the Service. It passes when the Job succeeds. The namespace (and with
//! it everything the test made) is deleted afterwards, also after a failure or timeout.
//!
//! The objects are templates/smoke-test.yaml, rendered with the cluster's values.

use std::time::{Duration, Instant};

use hyper::Method;
use serde_json::Value;

use super::{SMOKE, title};
use crate::inventory::Inventory;
use crate::kube::api::{ApiClient, ApiResponse};
use crate::kube::objects::{ApiObject, SMOKE_TEMPLATE, render_with};
use crate::render::Templates;
use crate::verify::report::{CheckResult, Status};

/// The whole test, image pulls included (two pods of a small image, on fresh nodes).
pub const LIMIT: Duration = Duration::from_secs(180);
/// Between two looks at the Job.
const POLL: Duration = Duration::from_secs(2);
/// busybox 1.36.1 (the multi-arch index, as Docker Hub serves it): a digest cannot be
/// moved to other content, a tag can. Has httpd, nslookup and wget.
pub const IMAGE: &str =
    "docker.io/library/busybox:1.36.1@sha256:73aaf090f3d85aa34ee199857f03fa3a95c8ede2ffd4cc2cdb5b94e566b11662";

/// The test's objects: Namespace, server Pod, Service, client Job (the template's order).
pub fn objects(templates: &Templates, inv: &Inventory, namespace: &str, token: &str) -> anyhow::Result<Vec<ApiObject>> {
    let mut extra = tera::Context::new();
    extra.insert("namespace", namespace);
    extra.insert("token", token);
    extra.insert("image", IMAGE);
    // The Job gives up a little before verify does, so that its own verdict is seen.
    extra.insert("deadline_seconds", &(LIMIT.as_secs() - 15));
    render_with(templates, SMOKE_TEMPLATE, inv, extra)
}

/// `templates`: the embedded ones, or why they could not be had.
pub async fn run(api: &ApiClient, inv: &Inventory, templates: Result<&Templates, String>) -> CheckResult {
    let namespace = format!("provision-smoke-{:08x}", rand::random::<u32>());
    let token = format!("{:032x}", rand::random::<u128>());
    let objects = match templates.and_then(|t| objects(t, inv, &namespace, &token).map_err(|e| format!("{e:#}"))) {
        Ok(o) => o,
        Err(e) => return CheckResult::cluster(SMOKE, title(SMOKE), Status::Fail, e),
    };
    let started = Instant::now();
    let outcome = match tokio::time::timeout(LIMIT, exercise(api, &objects)).await {
        Ok(outcome) => outcome,
        Err(_) => Outcome::Failed(format!("no verdict within {}s", LIMIT.as_secs())),
    };
    // Nothing to clean up, nor to report, when not even the namespace was made (the API
    // did not answer, or refused it); deleting is still tried in case it was.
    let made_nothing = matches!(&outcome, Outcome::NotCreated { made: 0, .. });
    let elapsed = started.elapsed().as_secs_f64();
    let (mut status, mut evidence) = match outcome {
        Outcome::Passed => (Status::Pass, format!("the client Job succeeded after {elapsed:.1}s")),
        Outcome::NotCreated { why, .. } => (Status::Fail, why),
        Outcome::Failed(why) => {
            let seen = diagnostics(api, &namespace).await;
            (Status::Fail, format!("{why} after {elapsed:.1}s; {seen}"))
        }
    };
    // Always: deleting the namespace deletes the pods, the Service and the Job with it.
    let path = format!("/api/v1/namespaces/{namespace}");
    match api.send(Method::DELETE, &path, "application/json", None).await {
        _ if made_nothing => {}
        Ok(r) if r.status < 300 || r.status == 404 => evidence.push_str(&format!("; namespace {namespace} deleted")),
        Ok(r) => note_left_behind(&mut status, &mut evidence, &namespace, &r.describe()),
        Err(e) => note_left_behind(&mut status, &mut evidence, &namespace, &format!("{e:#}")),
    }
    CheckResult::cluster(SMOKE, title(SMOKE), status, evidence)
}

fn note_left_behind(status: &mut Status, evidence: &mut String, namespace: &str, why: &str) {
    if *status == Status::Pass {
        *status = Status::Warn;
        evidence.insert_str(0, "warning: ");
    }
    evidence.push_str(&format!("; namespace {namespace} NOT deleted ({why}): `kubectl delete namespace {namespace}`"));
}

enum Outcome {
    Passed,
    /// An object was refused (e.g. Pod Security) or the API did not answer: nothing ran.
    /// `made`: how many objects had been created before.
    NotCreated {
        why: String,
        made: usize,
    },
    Failed(String),
}

/// Creates the objects in order, then watches the Job until it succeeds or fails.
async fn exercise(api: &ApiClient, objects: &[ApiObject]) -> Outcome {
    for (made, o) in objects.iter().enumerate() {
        let why = match api.server_side_apply(&o.path, &o.body).await {
            Ok(r) if r.status < 300 => continue,
            Ok(r) => r.describe(),
            Err(e) => format!("{e:#}"),
        };
        return Outcome::NotCreated { why: format!("creating {} {}: {why}", o.kind, o.name), made };
    }
    let Some(job) = objects.iter().find(|o| o.kind == "Job") else {
        return Outcome::NotCreated { why: "the smoke template has no Job".into(), made: objects.len() };
    };
    loop {
        tokio::time::sleep(POLL).await;
        // A failed look is not a verdict: the API may be busy; the overall limit ends it.
        let Ok(r) = api.send(Method::GET, &job.path, "application/json", None).await else { continue };
        let Ok(v) = serde_json::from_slice::<Value>(&r.body) else { continue };
        match job_state(&v) {
            JobState::Succeeded => return Outcome::Passed,
            JobState::Failed(why) => return Outcome::Failed(format!("the client Job failed ({why})")),
            JobState::Running => {}
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum JobState {
    Succeeded,
    Failed(String),
    Running,
}

/// Pure: a Job's state from its status (the Complete / Failed conditions the Job
/// controller sets when it is done; `succeeded` counts too).
pub fn job_state(job: &Value) -> JobState {
    let status = &job["status"];
    let conditions = status["conditions"].as_array().map(Vec::as_slice).unwrap_or_default();
    let holds = |kind: &str| conditions.iter().find(|c| c["type"] == kind && c["status"] == "True");
    if holds("Complete").is_some() || status["succeeded"].as_u64().unwrap_or(0) > 0 {
        return JobState::Succeeded;
    }
    match holds("Failed") {
        Some(c) => JobState::Failed(format!(
            "{}: {}",
            c["reason"].as_str().unwrap_or_default(),
            c["message"].as_str().unwrap_or_default()
        )),
        None => JobState::Running,
    }
}

/// What the namespace's pods and events say, for a failure's evidence.
async fn diagnostics(api: &ApiClient, namespace: &str) -> String {
    let get = |path: String| async move {
        api.send(Method::GET, &path, "application/json", None)
            .await
            .ok()
            .filter(|r| r.status == 200)
            .and_then(|r| serde_json::from_slice::<Value>(&r.body).ok())
            .unwrap_or(Value::Null)
    };
    let (pods, events) = tokio::join!(
        get(format!("/api/v1/namespaces/{namespace}/pods")),
        get(format!("/api/v1/namespaces/{namespace}/events"))
    );
    let mut text = describe_pods(&pods, &events);
    // The client's last lines say which step it gave up on.
    let client =
        pods["items"].as_array().into_iter().flatten().find(|p| p["metadata"]["labels"]["job-name"].is_string());
    if let Some(name) = client.and_then(|p| p["metadata"]["name"].as_str()) {
        let path = format!("/api/v1/namespaces/{namespace}/pods/{name}/log?tailLines=3");
        if let Ok(ApiResponse { status: 200, body }) = api.send(Method::GET, &path, "text/plain", None).await {
            let log = String::from_utf8_lossy(&body).trim().replace('\n', " | ");
            if !log.is_empty() {
                text.push_str(&format!("; {name} said: {log}"));
            }
        }
    }
    text
}

/// Pure: "pods: smoke-server Pending (httpd: ErrImagePull), ...; events: Failed: ..." from
/// a PodList and an EventList (the last three Warning events).
pub fn describe_pods(pods: &Value, events: &Value) -> String {
    let items = |v: &Value| v["items"].as_array().cloned().unwrap_or_default();
    let pods: Vec<String> = items(pods)
        .iter()
        .map(|p| {
            let name = p["metadata"]["name"].as_str().unwrap_or("?");
            let phase = p["status"]["phase"].as_str().unwrap_or("?");
            let waiting: Vec<String> = p["status"]["containerStatuses"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|c| {
                    let w = &c["state"]["waiting"];
                    let reason = w["reason"].as_str()?;
                    Some(format!(
                        "{}: {reason} {}",
                        c["name"].as_str().unwrap_or("?"),
                        w["message"].as_str().unwrap_or("")
                    ))
                })
                .collect();
            if waiting.is_empty() {
                format!("{name} {phase}")
            } else {
                format!("{name} {phase} ({})", waiting.join(", ").trim())
            }
        })
        .collect();
    let warnings: Vec<String> = items(events)
        .iter()
        .filter(|e| e["type"] == "Warning")
        .map(|e| format!("{}: {}", e["reason"].as_str().unwrap_or("?"), e["message"].as_str().unwrap_or("")))
        .collect();
    let last = &warnings[warnings.len().saturating_sub(3)..];
    let pods = if pods.is_empty() { "no pods".to_string() } else { format!("pods: {}", pods.join(", ")) };
    if last.is_empty() { pods } else { format!("{pods}; events: {}", last.join("; ")) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kube::pod_security::restricted_violations;
    use serde_json::json;

    fn inventory(domain: &str) -> Inventory {
        let mut inv: Inventory = toml::from_str(include_str!("../../../inventories/example-ha.toml")).unwrap();
        inv.cluster.cluster_domain = domain.into();
        inv
    }

    fn rendered(domain: &str) -> Vec<ApiObject> {
        objects(&Templates::embedded().unwrap(), &inventory(domain), "provision-smoke-0a1b2c3d", "f00d").unwrap()
    }

    #[test]
    fn the_objects_parse_in_order_in_their_namespace() {
        let o = rendered("cluster.local");
        let kinds: Vec<(&str, &str, &str)> =
            o.iter().map(|o| (o.kind.as_str(), o.name.as_str(), o.path.as_str())).collect();
        assert_eq!(
            kinds,
            [
                ("Namespace", "provision-smoke-0a1b2c3d", "/api/v1/namespaces/provision-smoke-0a1b2c3d"),
                ("Pod", "smoke-server", "/api/v1/namespaces/provision-smoke-0a1b2c3d/pods/smoke-server"),
                ("Service", "smoke-server", "/api/v1/namespaces/provision-smoke-0a1b2c3d/services/smoke-server"),
                ("Job", "smoke-client", "/apis/batch/v1/namespaces/provision-smoke-0a1b2c3d/jobs/smoke-client"),
            ]
        );
        let labels = &o[0].body["metadata"]["labels"];
        assert_eq!(labels["pod-security.kubernetes.io/enforce"], "restricted");
        assert_eq!(o[2].body["spec"]["selector"]["app"], o[1].body["metadata"]["labels"]["app"]);
        assert_eq!(o[3].body["spec"]["backoffLimit"], 0);
        assert_eq!(o[3].body["spec"]["activeDeadlineSeconds"], LIMIT.as_secs() - 15);
    }

    /// Both pods pass the level their namespace enforces, and run a digest-pinned image.
    #[test]
    fn both_pods_pass_restricted_pod_security_with_a_pinned_image() {
        let o = rendered("cluster.local");
        for spec in [&o[1].body["spec"], &o[3].body["spec"]["template"]["spec"]] {
            assert_eq!(restricted_violations(spec), Vec::<String>::new(), "{spec}");
            let image = spec["containers"][0]["image"].as_str().unwrap();
            let digest = image.split_once("@sha256:").unwrap().1;
            assert!(digest.len() == 64 && digest.bytes().all(|b| b.is_ascii_hexdigit()), "{image}");
            assert_eq!(spec["containers"][0]["securityContext"]["readOnlyRootFilesystem"], true);
        }
    }

    #[test]
    fn the_client_asks_the_inventorys_cluster_domain_and_checks_the_token() {
        let o = rendered("corp.internal");
        let script = o[3].body["spec"]["template"]["spec"]["containers"][0]["command"][2].as_str().unwrap();
        assert!(script.contains("nslookup -type=a kubernetes.default.svc.corp.internal"), "{script}");
        assert!(script.contains("http://smoke-server.provision-smoke-0a1b2c3d.svc.corp.internal:8080/"), "{script}");
        assert!(script.contains("= \"f00d\""), "{script}");
        assert!(!script.contains("cluster.local"), "{script}");
        let server = o[1].body["spec"]["containers"][0]["command"][2].as_str().unwrap();
        assert!(server.contains("echo f00d > /www/index.html") && server.contains("httpd -f -p 8080"), "{server}");
    }

    #[test]
    fn job_states_from_real_statuses() {
        let done = json!({"status": {"startTime": "2026-12-05T20:00:00Z", "completionTime": "2026-12-05T20:00:41Z",
            "succeeded": 1, "ready": 0, "terminating": 0,
            "conditions": [{"type": "SuccessCriteriaMet", "status": "True", "reason": "CompletionsReached"},
                           {"type": "Complete", "status": "True", "reason": "CompletionsReached"}]}});
        assert_eq!(job_state(&done), JobState::Succeeded);
        let failed = json!({"status": {"failed": 1, "ready": 0, "conditions": [
            {"type": "FailureTarget", "status": "True", "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit"},
            {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit"}]}});
        assert_eq!(
            job_state(&failed),
            JobState::Failed("BackoffLimitExceeded: Job has reached the specified backoff limit".into())
        );
        let active = json!({"status": {"active": 1, "ready": 0, "startTime": "2026-12-05T20:00:00Z"}});
        assert_eq!(job_state(&active), JobState::Running);
        assert_eq!(job_state(&json!({"metadata": {"name": "smoke-client"}})), JobState::Running);
    }

    #[test]
    fn pods_and_events_explain_a_timeout() {
        let pods = json!({"kind": "PodList", "items": [
            {"metadata": {"name": "smoke-server"}, "status": {"phase": "Pending", "containerStatuses": [
                {"name": "httpd", "ready": false, "state": {"waiting": {"reason": "ImagePullBackOff",
                 "message": "Back-off pulling image \"docker.io/library/busybox:1.36.1@sha256:73aa\""}}}]}},
            {"metadata": {"name": "smoke-client-x7k2p", "labels": {"job-name": "smoke-client"}}, "status": {"phase": "Running"}}]});
        let events = json!({"kind": "EventList", "items": [
            {"type": "Normal", "reason": "Scheduled", "message": "Successfully assigned"},
            {"type": "Warning", "reason": "Failed", "message": "Failed to pull image: dial tcp: lookup registry-1.docker.io: no such host"}]});
        let text = describe_pods(&pods, &events);
        assert_eq!(
            text,
            "pods: smoke-server Pending (httpd: ImagePullBackOff Back-off pulling image \
             \"docker.io/library/busybox:1.36.1@sha256:73aa\"), smoke-client-x7k2p Running; \
             events: Failed: Failed to pull image: dial tcp: lookup registry-1.docker.io: no such host"
        );
        assert_eq!(describe_pods(&Value::Null, &Value::Null), "no pods");
    }
}
