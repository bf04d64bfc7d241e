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
#[path = "support/runtime_trixie.rs"]
mod runtime_trixie;

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
    let (_, plan) = plan_json(inv.to_str().unwrap());
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
    for want in [
        "Options:map[BinaryName:/usr/sbin/runc SystemdCgroup:true]",
        "NetworkPluginBinDir:/usr/lib/cni",
        "SandboxImage:registry.k8s.io/pause:",
    ] {
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
        let expected = runtime::Expected::of(&loaded.inventory);
        let o = runtime::check_host(&root, &net, &expected, limit).await;
        eprintln!("runtime.pods as root: {o:?}");
        assert_eq!(o.status, Status::Fail, "{o:?}");
        assert!(
            o.evidence.starts_with(&format!("{NO_MASQUERADE} (fine: CRI v1 containerd 1.6.20~ds1, RuntimeReady, NetworkReady; runc version")),
            "{o:?}"
        );
        root.close().await;

        target.user = "ops".into();
        let ops = Session::connect(&target).await.expect("ssh as ops");
        let o = runtime::check_host(&ops, &net, &expected, limit).await;
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

/// Debian trixie's containerd 1.7.24, runc 1.1.15 and CNI plugins 1.1.1 (extracted, with
/// their .sha256 files) as an `artifacts.runtime = "directory"` source in `dir`, plus
/// crictl's place taken by a STAND-IN: Debian's static busybox renamed, without a checksum
/// file. Debian has no crictl; the stand-in only lets the directory hold every runtime
/// binary. Nothing in this test runs it.
fn trixie_runtime_dir(dir: &std::path::Path) -> std::path::PathBuf {
    let trixie = runtime_trixie::fetch();
    let bin = dir.join("bin");
    std::fs::create_dir_all(bin.join("cni")).unwrap();
    for rel in [
        "containerd",
        "containerd-shim-runc-v2",
        "ctr",
        "runc",
        "cni/bridge",
        "cni/host-local",
        "cni/loopback",
        "cni/portmap",
    ] {
        for f in [rel.to_string(), format!("{rel}.sha256")] {
            std::fs::copy(trixie.join(&f), bin.join(&f)).unwrap_or_else(|e| panic!("{f}: {e}"));
        }
    }
    std::fs::copy(trixie.join("stand-in/busybox"), bin.join("crictl")).unwrap();
    bin
}

/// On these nspawn hosts the kernel unit cannot load modules and the pod routes would go
/// into THIS machine's routing table (the hosts share its network namespace): a drop-in of
/// the test's own makes both oneshots no-ops, so that apply's runtime phase can run here.
/// Real nodes run them (the Vagrant test). containerd's state goes on a tmpfs (overlayfs
/// cannot nest on the hosts' overlayfs root, see the test above).
const LAB_ONLY: &str = "for u in provision-k8s-kernel provision-pod-routes; do \
    mkdir -p /etc/systemd/system/$u.service.d && \
    printf '[Service]\\nExecStart=\\nExecStart=/bin/true\\n' > /etc/systemd/system/$u.service.d/lab-noop.conf; done; \
    systemctl daemon-reload; mkdir -p /var/lib/containerd && (mountpoint -q /var/lib/containerd || \
    mount -t tmpfs -o mode=0711 tmpfs /var/lib/containerd)";

/// (host, action, unit-or-path) of a plan's actions.
type Actions = Vec<(String, String, String)>;

/// The actions of the runtime phase's rolling stages, and of its start-together step.
fn runtime_phase(plan: &serde_json::Value) -> (Actions, Actions) {
    let phase = plan["phases"].as_array().unwrap().iter().find(|p| p["phase"] == "runtime");
    let list = |key: &str| -> Actions {
        let mut out = Vec::new();
        for h in phase.and_then(|p| p[key].as_array()).into_iter().flatten() {
            for a in h["actions"].as_array().unwrap() {
                let target = ["unit", "path"].iter().find_map(|k| a[*k].as_str()).unwrap_or("");
                out.push((h["host"].as_str().unwrap().into(), a["action"].as_str().unwrap().into(), target.into()));
            }
        }
        out
    };
    (list("stages"), list("hosts"))
}

#[test]
fn trixie_containerd_from_a_directory_is_applied_converges_and_restarts_one_host_at_a_time() {
    let tmp = tempfile::tempdir().unwrap();
    let bin = trixie_runtime_dir(tmp.path());
    let lab = ensure_fresh_for_tests().expect("lab up");
    let inv = inventory_copy(&lab, tmp.path(), |t| {
        t.replace(
            "\nkubernetes = \"skip\"",
            &format!(
                "\nkubernetes = \"skip\"\nruntime = \"directory\"\ndirectory = \"{}\"\ncontainerd_version = \"{}\"\n\
                 runc_version = \"{}\"\ncni_plugins_version = \"{}\"\ncrictl_version = \"1.34.0\"",
                bin.display(),
                runtime_trixie::CONTAINERD,
                runtime_trixie::RUNC,
                runtime_trixie::CNI
            ),
        )
    });
    let inv_s = inv.to_str().unwrap();
    for h in &lab.hosts {
        ssh_ok(&lab, &h.address.to_string(), LAB_ONLY);
    }

    let t = std::time::Instant::now();
    let out = provision(&["apply", "--no-verify", inv_s]);
    eprintln!("apply (base, etcd, runtime from the directory) in {:.1}s", t.elapsed().as_secs_f64());
    assert_eq!(code(&out), 0, "apply: {}", text(&out));
    for h in &lab.hosts {
        let a = h.address.to_string();
        let got = ssh_ok(
            &lab,
            &a,
            "readlink /proc/$(systemctl show -p MainPID --value containerd.service)/exe; \
             ctr version | sed -n '/^Server:/,$p' | sed -n 's/^ *Version: *//p'; \
             sed -n 's/^version = //p' /etc/containerd/config.toml; \
             grep -c 'bin_dir = \"/opt/cni/bin\"' /etc/containerd/config.toml; \
             grep -c 'BinaryName = \"/usr/local/bin/runc\"' /etc/containerd/config.toml; \
             stat -c '%a %U:%G %n' /usr/local/bin/containerd /usr/local/bin/runc /opt/cni/bin/bridge /etc/crictl.yaml; \
             sha256sum /usr/local/bin/containerd | cut -d' ' -f1",
        );
        let want_sha = std::fs::read_to_string(bin.join("containerd.sha256")).unwrap();
        assert_eq!(
            got,
            format!(
                "/usr/local/bin/containerd\n1.7.24~ds1\n2\n1\n1\n755 root:root /usr/local/bin/containerd\n755 root:root /usr/local/bin/runc\n\
                 755 root:root /opt/cni/bin/bridge\n644 root:root /etc/crictl.yaml\n{}\n",
                want_sha.split_whitespace().next().unwrap()
            ),
            "{}",
            h.name
        );
        // The CRI plugin loaded with the rendered settings: the CNI plugins from /opt/cni/bin.
        let cri = ssh_ok(
            &lab,
            &a,
            "journalctl -u containerd.service --no-pager | grep 'Start cri plugin with config' | tail -n 1",
        );
        assert!(
            cri.contains("NetworkPluginBinDir:/opt/cni/bin") && cri.contains("SystemdCgroup:true"),
            "{}: {cri}",
            h.name
        );
    }

    // verify's runtime.pods judges the directory's binaries at their paths. On these hosts it
    // fails for exactly the lab's reasons, which it names: trixie's runc needs glibc 2.38
    // (bookworm has 2.36), and the pod routes unit (routes and egress masquerade) was made a
    // no-op. What it does NOT report is the point: the running containerd is
    // /usr/local/bin/containerd, its CRI answers (over SSH: the crictl stand-in is not run),
    // and the CNI plugins are in /opt/cni/bin.
    let out = provision(&["--output", "json", "verify", inv_s]);
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
    let pods =
        report["checks"].as_array().unwrap().iter().find(|c| c["check"] == "runtime.pods").expect("runtime.pods");
    let evidence = pods["evidence"].as_str().unwrap();
    for expected in [
        "GLIBC_2.38' not found",
        "no route to 10.200.",
        "no POSTROUTING jump from 10.200.0.0/16",
        "(fine: CRI v1 containerd 1.7.24~ds1, RuntimeReady",
    ] {
        assert!(evidence.contains(expected), "{expected}: {evidence}");
    }
    for never in ["containerd.service runs", "containerd does not answer", "CNI plugins missing", "has subnet"] {
        assert!(!evidence.contains(never), "{never}: {evidence}");
    }

    // Converged: the second plan has nothing to do.
    let (status, plan) = plan_json(inv_s);
    assert_eq!(status, 0, "re-plan after apply: {plan}");

    // A changed containerd (4 KiB appended: a different, still runnable binary, with its new
    // checksum): written everywhere, containerd restarted in stages, one host each.
    let mut containerd = std::fs::read(bin.join("containerd")).unwrap();
    containerd.extend(std::iter::repeat_n(0u8, 4096));
    std::fs::write(bin.join("containerd"), &containerd).unwrap();
    std::fs::write(
        bin.join("containerd.sha256"),
        format!("{}  containerd\n", provision::artifacts::sha256_hex(&containerd)),
    )
    .unwrap();
    let (status, plan) = plan_json(inv_s);
    assert_eq!(status, 2, "{plan}");
    let (stages, together) = runtime_phase(&plan);
    let stage_hosts: Vec<&str> =
        stages.iter().filter(|(_, _, u)| u == "containerd.service").map(|(h, _, _)| h.as_str()).collect();
    assert_eq!(stage_hosts, ["node1", "node2", "node3"], "one stage per host: {stages:?}");
    assert!(!together.iter().any(|(_, _, u)| u == "containerd.service"), "no restart outside the stages: {together:?}");
    let starts: Vec<String> =
        lab.hosts.iter().map(|h| unit_start(&lab, &h.address.to_string(), "containerd.service")).collect();
    let out = provision(&["apply", "--no-verify", inv_s]);
    assert_eq!(code(&out), 0, "apply: {}", text(&out));
    let mut restarted_at = Vec::new();
    for (h, before) in lab.hosts.iter().zip(&starts) {
        let a = h.address.to_string();
        let now = unit_start(&lab, &a, "containerd.service");
        assert_ne!(&now, before, "containerd on {} was not restarted", h.name);
        let sha = ssh_ok(
            &lab,
            &a,
            "sha256sum /proc/$(systemctl show -p MainPID --value containerd.service)/exe | cut -d' ' -f1",
        );
        assert_eq!(sha.trim(), provision::artifacts::sha256_hex(&containerd), "{} runs the new binary", h.name);
        // The hosts share this machine's monotonic clock: the restarts are in stage order.
        restarted_at.push(now.split_whitespace().nth(1).and_then(|t| t.parse::<u64>().ok()).unwrap_or_default());
    }
    assert!(restarted_at.windows(2).all(|w| w[0] < w[1]), "restarts out of order: {restarted_at:?}");
    assert_eq!(plan_json(inv_s).0, 0, "converged again");

    // Back to the host's own packages: the unit and config name Debian's paths again, and
    // the running containerd restarts in stages onto /usr/bin/containerd.
    let text_now =
        std::fs::read_to_string(&inv).unwrap().replace("\nruntime = \"directory\"", "\nruntime = \"preinstalled\"");
    std::fs::write(&inv, text_now).unwrap();
    let (status, plan) = plan_json(inv_s);
    assert_eq!(status, 2, "{plan}");
    let (stages, _) = runtime_phase(&plan);
    let stage_hosts: Vec<&str> =
        stages.iter().filter(|(_, _, u)| u == "containerd.service").map(|(h, _, _)| h.as_str()).collect();
    assert_eq!(stage_hosts, ["node1", "node2", "node3"], "{stages:?}");
    let out = provision(&["apply", "--no-verify", inv_s]);
    assert_eq!(code(&out), 0, "apply: {}", text(&out));
    for h in &lab.hosts {
        let got = ssh_ok(
            &lab,
            &h.address.to_string(),
            "readlink /proc/$(systemctl show -p MainPID --value containerd.service)/exe; \
             ctr version | sed -n '/^Server:/,$p' | sed -n 's/^ *Version: *//p'",
        );
        assert!(got.starts_with("/usr/bin/containerd\n1.6."), "{}: {got}", h.name);
    }
    assert_eq!(plan_json(inv_s).0, 0, "converged on the packages");

    // reset removes what the inventory manages now; the binaries of the earlier "directory"
    // source are no longer in it (switching sources leaves them, unused): removed by hand.
    let out = provision(&["reset", "--yes", inv_s]);
    assert_eq!(code(&out), 0, "reset: {}", text(&out));
    for h in &lab.hosts {
        ssh_ok(
            &lab,
            &h.address.to_string(),
            "systemctl stop containerd.service 2>/dev/null; cd /usr/local/bin && rm -f containerd \
             containerd-shim-runc-v2 ctr runc crictl; rm -rf /opt/cni /etc/systemd/system/provision-k8s-kernel.service.d \
             /etc/systemd/system/provision-pod-routes.service.d; systemctl daemon-reload; umount /var/lib/containerd || true",
        );
    }
}
