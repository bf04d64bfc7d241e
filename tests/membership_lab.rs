//! etcd membership follows the inventory (issue #11, item 2) on the REAL lab hosts,
//! through the real `provision` binary, with a prober sampling the members all along.
//! Holds the lab's test lock like every lab test.
//!
//! Needs root and `provision lab` prerequisites (systemd-container, debootstrap, zstd).

#[path = "support/etcd_probe.rs"]
mod etcd_probe;
#[path = "support/lab_cli.rs"]
mod lab_cli;

use etcd_probe::*;
use lab_cli::*;
use provision::etcd::health::Verdict;
use provision::lab::{Lab, Progress, TestLab, UpOptions, ensure_fresh_for_tests};
use serde_json::Value;


fn etcd_stages(plan: &Value) -> Vec<Value> {
    let etcd = plan["phases"].as_array().unwrap().iter().find(|p| p["phase"] == "etcd").unwrap();
    etcd["stages"].as_array().unwrap().clone()
}

fn with_hosts(lab: &TestLab, dir: &std::path::Path, extra: &[u32]) -> std::path::PathBuf {
    let name = format!("etcd{}.toml", 3 + extra.len());
    let path = inventory_copy(lab, dir, |mut t| {
        for i in extra {
            t += &format!("\n[[host]]\nname = \"node{i}\"\naddress = \"127.0.1.{i}\"\nroles = [\"etcd\"]\n");
        }
        t
    });
    let renamed = dir.join(name);
    std::fs::rename(&path, &renamed).unwrap();
    renamed
}

/// Every member healthy and voting, `n` of them; the key written at the start is served
/// by each.
fn assert_members(inventory: &std::path::Path, n: usize) {
    let h = etcd_health(inventory);
    assert_eq!((h.healthy_count(), h.verdict), (n, Verdict::Healthy), "{}: {:?}", h.summary(), h.notes);
    assert!(h.members.iter().all(|m| m.status.as_ref().is_some_and(|s| !s.is_learner)), "{h:?}");
    assert_eq!(h.membership.as_ref().map(|l| l.len()), Some(n), "{:?}", h.membership);
    let EtcdAccess { members, creds, .. } = etcd_access(inventory);
    let rt = tokio::runtime::Runtime::new().unwrap();
    for m in &members {
        let got = rt.block_on(async {
            let mut c =
                provision::etcd::connect::connect(m, &creds, std::time::Duration::from_secs(5)).await.unwrap().client;
            c.get("membership/before", None).await.unwrap()
        });
        assert_eq!(got.kvs().first().map(|kv| kv.value().to_vec()), Some(b"kept".to_vec()), "on {}", m.name);
    }
}

/// Applies `inventory` with the prober on `probed`'s members; prints the figures and the
/// membership lines; returns apply's output text.
fn apply_probed(probed: &std::path::Path, inventory: &std::path::Path, extra: &[&str], what: &str) -> String {
    let mut args = vec!["apply", inventory.to_str().unwrap()];
    args.extend_from_slice(extra);
    let (out, wall, log) = run_while_probing(probed, &args);
    let applied = text(&out);
    assert_eq!(code(&out), 0, "{what}: {applied}");
    eprintln!(
        "{what}: wall {:.1}s; prober: {} samples, max down {}, >=2 down {}, longest leaderless {:.2}s",
        wall.as_secs_f64(),
        log.samples,
        log.max_down,
        log.two_down,
        log.longest_leaderless.as_secs_f64()
    );
    for line in applied
        .lines()
        .filter(|l| ["learner", "removed", "leadership", "gate passed", "snapshot saved"].iter().any(|k| l.contains(k)))
    {
        eprintln!("  {line}");
    }
    assert_eq!(log.two_down, 0, "{what}: two members were down at once: {log:?}");
    applied
}

/// 3 -> 4 -> 5 -> 3 members through the inventory alone: each new host joins as a learner
/// and is promoted without restarting anyone; dropping two hosts from the inventory is
/// refused without --yes, then removes them one after another (leadership moved first
/// when one leads), stops and disables their etcd and keeps their data aside; the data
/// written first is served throughout and `plan` is empty after each step.
#[test]
fn three_to_five_to_three_members_through_the_inventory_alone() {
    let lab = ensure_fresh_for_tests().expect("lab up");
    let base = lab.inventory.clone();
    let out = provision(&["apply", base.to_str().unwrap()]);
    assert_eq!(code(&out), 0, "apply: {}", text(&out));
    // Two more hosts, their keys pinned in the lab inventory's state dir (which the copies
    // below take): the 5 -> 3 apply runs with the lab inventory and retires node4/node5
    // over SSH although it no longer lists them.
    provision::lab::up(&Lab::system(), &UpOptions { hosts: 5, inventory: base.clone() }, &Progress::for_stderr())
        .expect("lab up --hosts 5");
    // One state dir for both (as an operator has): node4's certificates, issued for the
    // 4-member inventory, are the ones the 5-member one finds.
    let tmp = tempfile::tempdir().unwrap();
    let four = with_hosts(&lab, tmp.path(), &[4]);
    let five = with_hosts(&lab, tmp.path(), &[4, 5]);
    let (rt, mut client) = etcd_client_rt(&base);
    rt.block_on(client.put("membership/before", "kept", None)).unwrap();
    drop((client, rt));
    let starts: Vec<String> =
        (0..3).map(|i| unit_start(&lab, &lab.hosts[i].address.to_string(), "etcd.service")).collect();

    // 3 -> 4: a learner stage, the running members untouched.
    let (status, plan) = plan_json(four.to_str().unwrap());
    assert_eq!(status, 2, "{plan}");
    let stages = etcd_stages(&plan);
    assert_eq!(stages.len(), 1, "{stages:?}");
    assert_eq!((&stages[0]["host"], &stages[0]["add_learner"]), (&"node4".into(), &"https://127.0.1.4:2380".into()));
    assert_eq!(stages[0]["gate"]["gate"], "etcd-join");
    let applied = apply_probed(&base, &four, &[], "3 -> 4");
    assert!(applied.contains("etcd member node4 (https://127.0.1.4:2380) added as a learner"), "{applied}");
    assert_eq!(plan_json(four.to_str().unwrap()).0, 0, "converged at 4");
    assert_members(&four, 4);

    // 4 -> 5.
    apply_probed(&base, &five, &[], "4 -> 5");
    assert_eq!(plan_json(five.to_str().unwrap()).0, 0, "converged at 5");
    assert_members(&five, 5);
    let after: Vec<String> =
        (0..3).map(|i| unit_start(&lab, &lab.hosts[i].address.to_string(), "etcd.service")).collect();
    assert_eq!(starts, after, "a running member restarted for a join");

    // 5 -> 3: the plan shows both removals; without --yes nothing changes.
    let base_s = base.to_str().unwrap();
    let (status, plan) = plan_json(base_s);
    assert_eq!(status, 2, "{plan}");
    let stages = etcd_stages(&plan);
    let removed: Vec<(&str, &str)> = stages
        .iter()
        .map(|s| (s["host"].as_str().unwrap(), s["remove_member"]["why"].as_str().unwrap_or("")))
        .collect();
    assert_eq!(removed, vec![("node4", "not-in-inventory"), ("node5", "not-in-inventory")], "{stages:?}");
    let shown = text(&provision(&["plan", base_s]));
    assert!(shown.contains("etcd member remove node4") && shown.contains("apply needs --yes"), "{shown}");
    let refused = provision(&["apply", base_s]);
    assert_eq!(code(&refused), 1, "{}", text(&refused));
    assert!(text(&refused).contains("--yes"), "{}", text(&refused));
    assert_members(&five, 5);

    let applied = apply_probed(&base, &base, &["--yes"], "5 -> 3");
    assert!(applied.contains("etcd member node4") && applied.contains("removed from the cluster"), "{applied}");
    assert_eq!(plan_json(base_s).0, 0, "converged at 3");
    assert_members(&base, 3);
    for i in [4, 5] {
        let a = format!("127.0.1.{i}");
        let state = ssh(&lab, &a, "root", "systemctl is-active etcd.service; systemctl is-enabled etcd.service");
        let said = String::from_utf8_lossy(&state.stdout).into_owned();
        assert_eq!(said.split_whitespace().collect::<Vec<_>>(), ["inactive", "disabled"], "node{i}: {}", text(&state));
        let kept =
            ssh_ok(&lab, &a, "ls -d /var/lib/etcd/member.removed-*/snap; test ! -e /var/lib/etcd/member && echo gone");
        assert!(kept.contains("/snap") && kept.contains("gone"), "node{i}: {kept}");
    }
    provision::lab::destroy(&Lab::system(), false, &Progress::for_stderr()).expect("lab destroy");
}

/// A member whose data dir was wiped is replaced by the next apply: its stale id removed
/// (it is down already, so quorum is unchanged), added again as a learner, promoted. No
/// --yes: the inventory still lists it.
#[test]
fn a_member_whose_data_was_wiped_is_replaced_by_the_next_apply() {
    let lab = ensure_fresh_for_tests().expect("lab up");
    let inv = lab.inventory.to_str().unwrap();
    let out = provision(&["apply", inv]);
    assert_eq!(code(&out), 0, "apply: {}", text(&out));
    let (rt, mut client) = etcd_client_rt(&lab.inventory);
    rt.block_on(client.put("membership/before", "kept", None)).unwrap();
    drop((client, rt));
    let before = etcd_health(&lab.inventory);
    let leader = before.leader.clone().expect("a leader");
    let victim = lab.hosts.iter().find(|h| h.name != leader).unwrap();
    let old_id =
        before.members.iter().find(|m| m.name == victim.name).and_then(|m| m.status.as_ref()).unwrap().id.clone();
    let a = victim.address.to_string();
    ssh_ok(&lab, &a, "systemctl stop etcd.service && rm -rf /var/lib/etcd/member");

    let (status, plan) = plan_json(inv);
    assert_eq!(status, 2, "{plan}");
    let stages = etcd_stages(&plan);
    assert_eq!(stages.len(), 1, "{stages:?}");
    assert_eq!(stages[0]["host"], victim.name.as_str());
    assert_eq!(stages[0]["remove_member"]["why"], "replaced");
    assert_eq!(stages[0]["remove_member"]["id"], old_id.as_str());
    assert_eq!(stages[0]["gate"]["gate"], "etcd-join");

    let applied = apply_probed(&lab.inventory, &lab.inventory, &[], "wiped member replaced");
    assert!(applied.contains(&format!("({old_id}) removed from the cluster")), "{applied}");
    assert_eq!(plan_json(inv).0, 0, "converged after the replacement");
    assert_members(&lab.inventory, 3);
    let after = etcd_health(&lab.inventory);
    let new_id =
        after.members.iter().find(|m| m.name == victim.name).and_then(|m| m.status.as_ref()).unwrap().id.clone();
    assert_ne!(new_id, old_id, "a new member id");
    eprintln!("{}: member id {old_id} -> {new_id}", victim.name);
}
