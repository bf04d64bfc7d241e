//! Facts about processes read from /proc, and signals sent by pid. The lab only ever
//! signals pids it found in its own cgroups.

use std::time::{Duration, Instant};

/// True when `pid` exists and is not a zombie.
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat_state(&stat).is_some_and(|s| s != 'Z' && s != 'X'),
        Err(_) => false,
    }
}

/// The state letter of a /proc/PID/stat line. The command name may contain spaces and
/// parentheses, so the state is the first field after the LAST ')'.
fn stat_state(stat: &str) -> Option<char> {
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().next()?.chars().next()
}

pub fn comm(pid: u32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/comm")).ok().map(|s| s.trim_end().to_string())
}

/// The pid's path in the named systemd hierarchy (cgroup v1) or the unified one.
pub fn cgroup_paths(pid: u32) -> Vec<String> {
    std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .map(|s| s.lines().filter_map(|l| l.splitn(3, ':').nth(2)).map(str::to_string).collect())
        .unwrap_or_default()
}

/// True when `pid` is PID 1 of a PID namespace below ours: a container's init.
pub fn is_container_init(pid: u32) -> bool {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else { return false };
    status
        .lines()
        .find_map(|l| l.strip_prefix("NSpid:"))
        .map(|ids| {
            let ids: Vec<&str> = ids.split_whitespace().collect();
            ids.len() > 1 && ids.last() == Some(&"1")
        })
        .unwrap_or(false)
}

/// Resident memory of `pid` in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    kib_field(&status, "VmRSS:")
}

/// Proportional set size of `pid` in KiB: its resident memory with every shared page
/// divided among the processes sharing it. The lab hosts share one image (the same
/// files, the same page cache), so summing RSS would count libc once per process.
pub fn pss_kib(pid: u32) -> Option<u64> {
    let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    kib_field(&rollup, "Pss:")
}

fn kib_field(text: &str, name: &str) -> Option<u64> {
    text.lines().find_map(|l| l.strip_prefix(name)).and_then(|v| v.split_whitespace().next()?.parse().ok())
}

pub fn signal(pid: u32, sig: i32) -> std::io::Result<()> {
    let pid = libc::pid_t::try_from(pid).map_err(|_| std::io::Error::from_raw_os_error(libc::ESRCH))?;
    // SAFETY: kill has no memory-safety preconditions.
    if unsafe { libc::kill(pid, sig) } == 0 {
        return Ok(());
    }
    let err = std::io::Error::last_os_error();
    // Already gone: that is what we wanted.
    if err.raw_os_error() == Some(libc::ESRCH) { Ok(()) } else { Err(err) }
}

/// systemd powers off cleanly on SIGRTMIN+4.
pub fn sig_poweroff() -> i32 {
    libc::SIGRTMIN() + 4
}

/// Makes `cmd` start in its own session with no descriptor above stderr inherited: for
/// processes that outlive `provision` (a lock file or a test harness's pipe held open for
/// days would be a bug). Runs after any pre_exec registered earlier.
pub fn detach(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: only async-signal-safe system calls between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            libc::syscall(libc::SYS_close_range, 3 as libc::c_uint, libc::c_uint::MAX, 0 as libc::c_uint);
            Ok(())
        });
    }
}

/// Polls `done` every 50 ms until it returns true or `timeout` passes.
pub fn wait_until(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_state_survives_odd_command_names() {
        assert_eq!(stat_state("42 (a) b) S 1 2 3"), Some('S'));
        assert_eq!(stat_state("42 (bash) Z 1"), Some('Z'));
        assert_eq!(stat_state("garbage"), None);
    }

    #[test]
    fn this_process_is_alive_and_no_container_init() {
        let me = std::process::id();
        assert!(alive(me));
        assert!(!is_container_init(me));
        assert!(rss_kib(me).is_some_and(|k| k > 0));
        let (pss, rss) = (pss_kib(me).unwrap(), rss_kib(me).unwrap());
        assert!(pss > 0 && pss <= rss + 4, "pss {pss} rss {rss}");
        assert!(!alive(u32::MAX - 1));
    }

    #[test]
    fn signalling_a_missing_pid_is_not_an_error() {
        // pid_max is at most 2^22, so this pid cannot exist.
        signal(4_194_304 + 7, libc::SIGTERM).unwrap();
    }
}
