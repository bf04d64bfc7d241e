//! POSIX shell quoting and the short command form used in messages.

/// Quotes `s` as one word for a POSIX shell: `'...'` with embedded `'` as `'\''`.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        if c == '\'' {
            out.push_str("'\\''");
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    out
}

/// Runs `command` with `sh`, whatever the login shell is.
pub fn under_sh(command: &str) -> String {
    format!("sh -c {}", quote(command))
}

/// Runs `command` as root through sudo, without a password and without a terminal
/// (`-n`: fail instead of prompting). `--` ends sudo's options.
pub fn under_sudo(command: &str) -> String {
    format!("sudo -n -- sh -c {}", quote(command))
}

const SHORT_MAX: usize = 80;

/// The first line of `command`, at most 80 characters, marked with `…` when cut.
/// Messages show this form only: long scripts stay readable, and nothing beyond the
/// first line (e.g. a here-document) leaks into logs.
pub fn short(command: &str) -> String {
    let trimmed = command.trim();
    let first = trimmed.lines().next().unwrap_or("").trim_end();
    let cut_lines = first.len() < trimmed.len();
    if first.chars().count() > SHORT_MAX {
        let head: String = first.chars().take(SHORT_MAX).collect();
        format!("{head}…")
    } else if cut_lines {
        format!("{first} …")
    } else {
        first.to_string()
    }
}

/// The last `max_lines` lines of `stderr` (lossy UTF-8), at most 2000 bytes.
pub fn tail(stderr: &[u8], max_lines: usize) -> String {
    let text = String::from_utf8_lossy(stderr);
    let lines: Vec<&str> = text.trim_end().lines().collect();
    let start = lines.len().saturating_sub(max_lines);
    let mut out = lines[start..].join("\n");
    if out.len() > 2000 {
        let mut cut = out.len() - 2000;
        while !out.is_char_boundary(cut) {
            cut += 1;
        }
        out = format!("…{}", &out[cut..]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn quoting_survives_a_real_shell() {
        for s in ["plain", "it's", "a b\tc\nd", "$(echo no) `no` \\ \" ''", "", "*"] {
            let out = Command::new("sh").arg("-c").arg(format!("printf %s {}", quote(s))).output().unwrap();
            assert_eq!(String::from_utf8(out.stdout).unwrap(), s);
        }
    }

    #[test]
    fn sudo_wrapping_keeps_the_command_one_word() {
        assert_eq!(under_sudo("echo 'x'"), "sudo -n -- sh -c 'echo '\\''x'\\'''");
    }

    #[test]
    fn short_form() {
        assert_eq!(short("systemctl is-active etcd"), "systemctl is-active etcd");
        assert_eq!(short("set -eu\nsecret stuff"), "set -eu …");
        let long = "x".repeat(100);
        assert_eq!(short(&long).chars().count(), 81);
    }

    #[test]
    fn tail_keeps_last_lines() {
        assert_eq!(tail(b"1\n2\n3\n4\n", 2), "3\n4");
        assert_eq!(tail(b"", 5), "");
        assert!(tail(&vec![b'e'; 5000], 5).len() <= 2004);
    }
}
