//! Changing a running cluster (issue #11) against the REAL lab hosts through the real
//! `provision` binary. Holds the lab's test lock like every lab test.
//!
//! Needs root and `provision lab` prerequisites (systemd-container, debootstrap, zstd).

#[path = "support/lab_cli.rs"]
mod lab_cli;

use lab_cli::*;
use provision::lab::{TestLab, ensure_fresh_for_tests};
use serde_json::Value;

const UNIT: &str = "etcd.service";
const DROPIN: &str = "/etc/systemd/system/etcd.service.d/10-bootstrap.conf";

fn addr(lab: &TestLab, i: usize) -> String {
    lab.hosts[i].address.to_string()
}

fn plan_json(inventory: &str) -> (i32, Value) {
    let out = provision(&["--output", "json", "plan", inventory]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("plan json: {e}\n{}", text(&out)));
    (code(&out), v)
}

/// (host, action kind) of every action in a plan.
fn actions(plan: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for phase in plan["phases"].as_array().unwrap() {
        for h in phase["hosts"].as_array().unwrap() {
            for a in h["actions"].as_array().unwrap() {
                out.push((h["host"].as_str().unwrap().into(), a["action"].as_str().unwrap().into()));
            }
        }
    }
    out
}

/// etcd's own command line on a host, one argument a line.
fn etcd_cmdline(lab: &TestLab, i: usize) -> String {
    ssh_ok(lab, &addr(lab, i), "tr '\\0' '\\n' < /proc/$(systemctl show -p MainPID --value etcd.service)/cmdline")
}

/// Item 1: the --initial-cluster* flags reach etcd's command line through the bootstrap
/// drop-in, and a new etcd host in the inventory plans nothing at all for the running
/// members (before: their units were rewritten and all three restarted together).
#[test]
fn a_new_etcd_host_leaves_running_members_alone() {
    let lab = ensure_fresh_for_tests().expect("lab up");
    let inventory = lab.inventory.to_str().unwrap();
    let out = provision(&["apply", inventory]);
    assert_eq!(code(&out), 0, "apply: {}", text(&out));
    assert_eq!(plan_json(inventory).0, 0, "converged after apply");

    for i in 0..3 {
        let argv = etcd_cmdline(&lab, i);
        let want = "--initial-cluster=node1=https://127.0.1.1:2380,node2=https://127.0.1.2:2380,node3=https://127.0.1.3:2380";
        assert!(argv.lines().any(|l| l == want), "node{}: {argv}", i + 1);
        assert!(argv.lines().any(|l| l == "--initial-cluster-state=new"), "node{}: {argv}", i + 1);
        assert!(argv.lines().any(|l| l == "--initial-cluster-token=provision-lab"), "node{}: {argv}", i + 1);
        assert!(!argv.contains('$'), "node{}: unexpanded variable: {argv}", i + 1);
    }
    let starts: Vec<String> = (0..3).map(|i| unit_start(&lab, &addr(&lab, i), UNIT)).collect();
    let dropins: Vec<String> = (0..3).map(|i| ssh_ok(&lab, &addr(&lab, i), &format!("sha256sum {DROPIN}"))).collect();

    // node4 at an address nothing answers on: the plan reads node1..3 and must find
    // nothing to do there, although the rendered bootstrap drop-in now names node4.
    let tmp = tempfile::tempdir().unwrap();
    let grown = inventory_copy(&lab, tmp.path(), |t| {
        t + "\n[[host]]\nname = \"node4\"\naddress = \"127.0.1.250\"\nroles = [\"etcd\"]\n"
    });
    let (status, plan) = plan_json(grown.to_str().unwrap());
    let node4 = plan["hosts"].as_array().unwrap().iter().find(|h| h["host"] == "node4").expect("node4 reported");
    assert_ne!(status, 0, "node4 is unreachable: {plan}");
    assert!(node4.to_string().contains("reach"), "{node4}");
    let on_members: Vec<_> = actions(&plan).into_iter().filter(|(h, _)| h != "node4").collect();
    assert_eq!(on_members, Vec::<(String, String)>::new(), "running members must not change: {plan}");
    for h in plan["hosts"].as_array().unwrap().iter().filter(|h| h["host"] != "node4") {
        assert_eq!(h["problems"], serde_json::json!([]), "{h}");
    }

    // And apply over the grown inventory touches none of them either (node4 fails preflight).
    let out = provision(&["apply", grown.to_str().unwrap()]);
    assert_ne!(code(&out), 0, "{}", text(&out));
    let after: Vec<String> = (0..3).map(|i| unit_start(&lab, &addr(&lab, i), UNIT)).collect();
    assert_eq!(starts, after, "a running member restarted");
    let dropins_after: Vec<String> =
        (0..3).map(|i| ssh_ok(&lab, &addr(&lab, i), &format!("sha256sum {DROPIN}"))).collect();
    assert_eq!(dropins, dropins_after, "a member's bootstrap drop-in was rewritten");
    assert_eq!(plan_json(inventory).0, 0, "the original inventory is still converged");
}
