//! Starting a host: a small bash loop, in the host's own cgroup and its own session,
//! that runs systemd-nspawn and boots the host again when it rebooted itself (exit
//! status 133). The loop is detached (its parent exits at once, so init adopts it): it
//! outlives `provision lab up`, and no process of ours is left holding a zombie.

use std::fs::File;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::layout::{HostPaths, LabHost};
use super::{image, preflight, probe, procs};

/// $1 machine name, $2 root directory, $3 host directory, $4 systemd-nspawn.
/// `--register=no --keep-unit` because there is no systemd (and no machined) on this
/// machine to register with; without them nspawn fails with "Failed to open system bus".
/// So that a host can run containers (runc under containerd; issue #12, measured in
/// docs/runtime.md): `--system-call-filter=@keyring` (nspawn's seccomp filter otherwise
/// fails runc with "unable to join session keyring"), and `--capability=CAP_NET_ADMIN`
/// (nspawn drops it when the host shares this machine's network, and runc cannot then
/// bring up `lo` in a container's new network namespace). The hosts share this machine's
/// network namespace: what a test sets up for pods goes into a namespace of its own.
const LOOP: &str = r#"set -u
name=$1 root=$2 dir=$3 nspawn=$4
boot_loop() {
    while :; do
        date +%s > "$dir/started"
        "$nspawn" --boot --register=no --keep-unit --link-journal=no --console=read-only \
            --capability=CAP_NET_ADMIN --system-call-filter=@keyring \
            --machine="$name" --directory="$root"
        rc=$?
        echo "provision-lab: systemd-nspawn exited with status $rc"
        # 133: the host rebooted itself. `lab down` leaves a stop flag: stay off then.
        [ "$rc" -eq 133 ] && [ ! -e "$dir/stop" ] || break
    done
}
boot_loop </dev/null >>"$dir/console.log" 2>&1 &
echo "$!"
"#;

/// Starts the boot loop for `host`; returns the loop's pid. `cgroup_procs` are the host's
/// cgroup.procs files, opened for writing.
pub fn spawn(host: &LabHost, paths: &HostPaths, nspawn: &Path, bash: &Path, cgroup_procs: &[File]) -> Result<u32> {
    let fds: Vec<RawFd> = cgroup_procs.iter().map(|f| f.as_raw_fd()).collect();
    let mut cmd = Command::new(bash);
    cmd.arg("-c")
        .arg(LOOP)
        .arg("provision-lab-boot")
        .arg(&host.name)
        .arg(paths.root())
        .arg(&paths.dir)
        .arg(nspawn)
        .env_clear()
        .env("PATH", preflight::CHILD_PATH)
        .env("LANG", "C.UTF-8")
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: the closure runs between fork and exec and only makes async-signal-safe
    // system calls (write) on descriptors opened before the fork.
    unsafe {
        cmd.pre_exec(move || {
            // Writing "0" to cgroup.procs moves the writing process into that cgroup, so
            // the loop, nspawn and the whole host start inside the host's own cgroup.
            for &fd in &fds {
                if libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    // Its own session (a Ctrl-C or a closing terminal must not take the host down), and
    // none of our descriptors (the cgroup files above included) kept open.
    procs::detach(&mut cmd);
    let out = cmd.output().with_context(|| format!("starting the boot loop of {} ({})", host.name, bash.display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let pid: u32 = match (out.status.success(), stdout.trim().parse()) {
        (true, Ok(pid)) => pid,
        _ => bail!(
            "the boot loop of {} did not start ({}): {}",
            host.name,
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ),
    };
    super::fsutil::write_atomic(&paths.loop_pid(), format!("{pid}\n").as_bytes(), 0o644)?;
    Ok(pid)
}

/// Waits until sshd answers on the host's address; fails early (with the end of the
/// console log) when the boot loop ends instead.
pub fn wait_for_sshd(host: &LabHost, paths: &HostPaths, loop_pid: u32, timeout: Duration) -> Result<Duration> {
    let start = Instant::now();
    loop {
        if probe::ssh_banner(host.address.into(), Duration::from_millis(500)).is_some() {
            return Ok(start.elapsed());
        }
        if !procs::alive(loop_pid) {
            bail!(
                "{} stopped while booting; last lines of {}:\n{}",
                host.name,
                paths.console_log().display(),
                image::tail(&paths.console_log(), 20)
            );
        }
        if start.elapsed() > timeout {
            bail!(
                "{}: sshd did not answer on {}:22 within {}s; last lines of {}:\n{}",
                host.name,
                host.address,
                timeout.as_secs(),
                paths.console_log().display(),
                image::tail(&paths.console_log(), 20)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
