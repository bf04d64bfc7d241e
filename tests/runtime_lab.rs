//! The runtime tier (issue #12) on the REAL lab hosts: Debian's containerd, runc and CNI
//! plugins (in the lab image) run with the configuration provision renders for the node,
//! and a container from a locally built image gets its address from the rendered CNI
//! config, in the node's pod slice. Holds the lab's test lock like every lab test.
//!
//! The files are installed by this test, not by `apply`: on these systemd-nspawn hosts
//! the runtime phase's kernel unit cannot load modules, and the pod routes would go into
//! this machine's own routing table (the hosts share its network namespace). So the
//! container's network is set up inside a network namespace of the test's own on node1
//! (what a real node's root namespace is), never in this machine's. docs/runtime.md says
//! what runs where.

#[path = "support/lab_cli.rs"]
mod lab_cli;

use std::path::Path;
use std::time::{Duration, Instant};

use lab_cli::*;
use provision::cri::{self, CriError};
use provision::lab::ensure_fresh_for_tests;
use provision::render::paths;
use provision::render::pod_network::PodNetworkCtx;
use provision::ssh::{Session, SshError, Target};
use provision::verify::Status;
use provision::verify::runtime;

/// Builds a one-layer OCI image from the host's static busybox and imports it
/// (`docker.io/provision/busybox:local`); the Vagrant test runs the same script on VMs.
const BUILD_IMAGE: &str = include_str!("fixtures/busybox-oci-image.sh");

/// runtime.pods on a lab host: everything but the pod egress masquerade is there.
const NO_MASQUERADE: &str =
    "no POSTROUTING jump from 10.200.0.0/16 to PROVISION-POD-MASQ: pod egress is not masqueraded";

#[test]
fn containerd_runs_a_local_image_with_the_rendered_runtime_and_cni_config() {
    let lab = ensure_fresh_for_tests().expect("lab up");
    let tmp = tempfile::tempdir().unwrap();
    let inv = inventory_copy(&lab, tmp.path(), |t| {
        // Line start only: the comments mention the key too.
        t.replace("\nkubernetes = \"skip\"", "\nkubernetes = \"skip\"\nruntime = \"preinstalled\"")
    });
    // The plan names each node's slice, the same the rendered CNI config uses.
    let out = provision(&["--output", "json", "plan", inv.to_str().unwrap()]);
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
    let node1 = &lab.hosts[0];
    let slice =
        plan["hosts"].as_array().unwrap().iter().find(|h| h["host"] == node1.name.as_str()).unwrap()["pod_cidr"]
            .as_str()
            .expect("node1's pod slice in the plan")
            .to_string();
    let phases: Vec<&str> = plan["phases"].as_array().unwrap().iter().map(|p| p["phase"].as_str().unwrap()).collect();
    assert!(phases.contains(&"runtime"), "{phases:?}");

    // node1's rendered runtime files, installed as apply would (0600 conflist, root units).
    let desired = desired(&inv);
    let host = desired.hosts.iter().find(|h| h.host == node1.name).unwrap();
    let a = node1.address.to_string();
    for path in [paths::CONTAINERD_CONFIG, "/etc/systemd/system/containerd.service", paths::CNI_CONFLIST] {
        let f = host.files.iter().find(|f| f.path == path).unwrap_or_else(|| panic!("{path} rendered"));
        let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, f.content.as_slice());
        ssh_ok(
            &lab,
            &a,
            &format!(
                "mkdir -p \"$(dirname {path})\" && echo {b64} | base64 -d > {path}.tmp && chmod {:o} {path}.tmp && mv {path}.tmp {path}",
                f.mode
            ),
        );
    }
    let conflist = String::from_utf8_lossy(&host.files.iter().find(|f| f.path == paths::CNI_CONFLIST).unwrap().content)
        .into_owned();
    assert!(conflist.contains(&format!("\"subnet\": \"{slice}\"")), "{conflist}");

    // containerd from the rendered unit and config: active, its socket root-only, CRI loaded.
    let t = std::time::Instant::now();
    // The lab host's root is itself an overlayfs, and overlayfs cannot take its upper dir
    // there ("failed to mount ...: invalid argument"): containerd's state goes on a tmpfs,
    // as a real node's would be on ext4 or xfs, so the rendered overlayfs snapshotter runs.
    ssh_ok(
        &lab,
        &a,
        "mkdir -p /var/lib/containerd && (mountpoint -q /var/lib/containerd || mount -t tmpfs -o mode=0711 tmpfs \
         /var/lib/containerd) && systemctl daemon-reload && systemctl restart containerd.service",
    );
    let version = ssh_ok(&lab, &a, "systemctl is-active containerd.service && ctr version");
    eprintln!("containerd active in {:.2}s:\n{version}", t.elapsed().as_secs_f64());
    assert!(version.contains("Server:") && version.contains("Version:"), "{version}");
    let socket = ssh_ok(&lab, &a, &format!("stat -c '%a %U:%G' {}", paths::CONTAINERD_SOCKET));
    assert_eq!(socket.trim(), "660 root:root");
    let plugins = ssh_ok(&lab, &a, "ctr plugins ls");
    let cri = plugins.lines().find(|l| l.split_whitespace().nth(1) == Some("cri")).unwrap_or_default();
    assert_eq!(cri.split_whitespace().last(), Some("ok"), "the CRI plugin loaded with the rendered config: {plugins}");
    // The CRI plugin read the rendered settings (its start line in the journal).
    let cri_config = ssh_ok(
        &lab,
        &a,
        "journalctl -u containerd.service --no-pager | grep 'Start cri plugin with config' | tail -n 1",
    );
    for want in
        ["Options:map[SystemdCgroup:true]", "NetworkPluginBinDir:/usr/lib/cni", "SandboxImage:registry.k8s.io/pause:"]
    {
        assert!(cri_config.contains(want), "{want} in {cri_config}");
    }

    cri_answers_over_ssh(&inv, &node1.name, &slice);

    // A local image, then a container whose network comes from the rendered conflist,
    // set up inside node1's own pod network namespace (never this machine's).
    let imported = ssh_ok(&lab, &a, BUILD_IMAGE);
    assert_eq!(imported.trim(), "docker.io/provision/busybox:local");
    ssh_ok(
        &lab,
        &a,
        "ip netns add provision-pods 2>/dev/null || true; ip -n provision-pods link set lo up; \
         mkdir -p /opt/cni && ln -sfn /usr/lib/cni /opt/cni/bin",
    );
    let t = std::time::Instant::now();
    let run = ssh(
        &lab,
        &a,
        "root",
        // nspawn mounts /proc/sys read-only; `ip netns exec` runs in a mount namespace of
        // its own, where the bridge plugin may set this namespace's ip_forward.
        "ip netns exec provision-pods sh -c 'mount -o remount,bind,rw /proc/sys && exec \"$0\" \"$@\"' \
         ctr -n k8s.io run --rm --cni --runc-systemd-cgroup \
         --cgroup system.slice:provision-test:c1 docker.io/provision/busybox:local c1 \
         /bin/sh -c 'ip -4 -o addr show eth0; ip route; ping -c 1 -W 2 \"$(ip route | sed -n \"s/^default via \\([0-9.]*\\).*/\\1/p\")\"'",
    );
    let said = String::from_utf8_lossy(&run.stdout).into_owned();
    eprintln!("container run in {:.2}s:\n{said}{}", t.elapsed().as_secs_f64(), String::from_utf8_lossy(&run.stderr));
    assert!(run.status.success(), "{}", text(&run));
    let address = said
        .split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .unwrap_or_else(|| panic!("no address on eth0: {said}"))
        .to_string();
    let ip: std::net::Ipv4Addr = address.split('/').next().unwrap().parse().unwrap();
    let net: ipnet::Ipv4Net = slice.parse().unwrap();
    assert!(net.contains(&ip), "{ip} is not in node1's slice {slice}");
    assert!(said.contains("1 packets received"), "the container reached its gateway: {said}");
    // --rm released the address (host-local keeps none) and left no task behind.
    let left = ssh_ok(
        &lab,
        &a,
        "ls /var/lib/cni/networks/provision-bridge/ | grep -c '^10\\.' || true; ctr -n k8s.io tasks ls -q",
    );
    assert_eq!(left.trim(), "0", "{left}");
    ssh_ok(&lab, &a, "systemctl stop containerd.service; ip netns del provision-pods; umount /var/lib/containerd");
}

/// verify's CRI client against the real containerd: gRPC `runtime.v1.RuntimeService`
/// Version and Status through an SSH channel to the root-only socket. As root it answers
/// (NetworkReady following the conflist: moved away and back); as the sudo user `ops`,
/// sshd cannot open the socket for it, which verify reports as its reason to fall back.
fn cri_answers_over_ssh(inv: &Path, host: &str, slice: &str) {
    let loaded = provision::inventory::load(inv).expect("inventory");
    let state = loaded.state_dir();
    let h = loaded.inventory.host(host).expect("host");
    let mut target = Target::for_host(&loaded.inventory, h, &state, inv.parent().unwrap()).expect("target");
    assert_eq!(target.user, "root");
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let limit = Duration::from_secs(5);
    rt.block_on(async {
        let root = Session::connect(&target).await.expect("ssh as root");
        let t = Instant::now();
        let answer = cri::ask(&root, paths::CONTAINERD_SOCKET, limit).await.expect("CRI answers");
        eprintln!("CRI over SSH in {:.3}s: {answer:?}\n  {}", t.elapsed().as_secs_f64(), answer.summary());
        assert_eq!((answer.runtime_name.as_str(), answer.api_version.as_str()), ("containerd", "v1"));
        assert!(answer.runtime_version.starts_with("1.6."), "{answer:?}");
        assert!(answer.failures().is_empty() && answer.network_not_ready().is_none(), "{}", answer.summary());

        // NetworkReady is the runtime's view of the CNI config: gone, then back.
        let conflist = paths::CNI_CONFLIST;
        root.exec_checked(&format!("mv {conflist} /root/conflist.away"), None).await.unwrap();
        let away = poll(&root, limit, |a| a.network_not_ready().is_some()).await;
        eprintln!("without the conflist: {}", away.summary());
        // Written back in place (create + write events): containerd 1.6 on these overlayfs
        // hosts did not reload after a plain `mv` back (no event logged).
        root.exec_checked(&format!("cp -p /root/conflist.away {conflist} && rm /root/conflist.away"), None)
            .await
            .unwrap();
        let back = poll(&root, limit, |a| a.network_not_ready().is_none()).await;
        eprintln!("conflist back: {}", back.summary());

        // containerd without its CRI plugin: the channel opens, gRPC answers Unimplemented,
        // which verify reports as a failure (not as a reason to fall back).
        let config = paths::CONTAINERD_CONFIG;
        let restart = "systemctl restart containerd.service && for i in $(seq 50); do [ -S /run/containerd/containerd.sock ] && break; sleep 0.1; done";
        root.exec_checked(
            &format!(
                "cp -p {config} /root/config.toml.kept && \
                 sed -i 's/^disabled_plugins = \\[\\]/disabled_plugins = [\"io.containerd.grpc.v1.cri\"]/' {config} && \
                 grep -q 'grpc.v1.cri\"]' {config} && {restart}"
            ),
            None,
        )
        .await
        .unwrap();
        let off = cri::ask(&root, paths::CONTAINERD_SOCKET, limit).await;
        eprintln!("CRI plugin disabled: {off:?}");
        root.exec_checked(&format!("mv /root/config.toml.kept {config} && {restart}"), None).await.unwrap();
        match off {
            Err(CriError::Status { code: tonic::Code::Unimplemented, .. }) => {}
            other => panic!("without the CRI plugin: {other:?}"),
        }
        poll(&root, limit, |a| a.network_not_ready().is_none()).await;

        // verify's runtime.pods for this host (its slice; no other node's routes: those
        // would go into this machine's routing table), as root and as the sudo user.
        let net = PodNetworkCtx { slice: slice.to_string(), default_route: "0.0.0.0/0", routes: Vec::new() };
        // The pod egress masquerade is not installed on the lab hosts (it would go into this
        // machine's nat table, docs/runtime.md): that is the one part runtime.pods misses.
        let pod_cidr: ipnet::IpNet = "10.200.0.0/16".parse().unwrap();
        let o = runtime::check_host(&root, &net, &pod_cidr, limit).await;
        eprintln!("runtime.pods as root: {o:?}");
        assert_eq!(o.status, Status::Fail, "{o:?}");
        assert!(
            o.evidence.starts_with(&format!("{NO_MASQUERADE} (fine: CRI v1 containerd 1.6.20~ds1, RuntimeReady, NetworkReady; runc version")),
            "{o:?}"
        );
        root.close().await;

        target.user = "ops".into();
        let ops = Session::connect(&target).await.expect("ssh as ops");
        let o = runtime::check_host(&ops, &net, &pod_cidr, limit).await;
        eprintln!("runtime.pods as ops: {o:?}");
        assert_eq!(o.status, Status::Fail, "{o:?}");
        assert!(o.evidence.starts_with(NO_MASQUERADE), "{o:?}");
        assert!(
            o.evidence
                .contains("answers (CRI not asked: login is 'ops', the socket is root-only, no crictl on the host)"),
            "{o:?}"
        );
        match cri::ask(&ops, paths::CONTAINERD_SOCKET, limit).await {
            Err(CriError::NoChannel(SshError::StreamLocalRefused { reason, .. })) => {
                eprintln!("as ops: {reason}")
            }
            other => panic!("ops may not open the root-only socket: {other:?}"),
        }
        ops.close().await;
    });
}

/// Asks until `until` holds (containerd reloads CNI configs on a file watch), at most 20 s.
async fn poll(session: &Session, limit: Duration, until: impl Fn(&cri::CriAnswer) -> bool) -> cri::CriAnswer {
    let t = Instant::now();
    loop {
        let a = cri::ask(session, paths::CONTAINERD_SOCKET, limit).await.expect("CRI answers");
        if until(&a) {
            eprintln!("  after {:.2}s", t.elapsed().as_secs_f64());
            return a;
        }
        assert!(t.elapsed() < Duration::from_secs(20), "still: {}", a.summary());
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
