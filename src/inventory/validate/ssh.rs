//! [ssh]: the login user and the optional jump host.

use std::net::Ipv6Addr;

use super::Part;
use super::names::{check_ip_or_dns_name, is_user_name};
use crate::inventory::diagnostics::quoted;
use crate::inventory::locate::KeyPath;
use crate::inventory::report::Reporter;
use crate::inventory::schema::SshSettings;

/// A bastion written `[user@]host[:port]` (an IPv6 address with a port in brackets:
/// `[fd00::1]:22`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JumpHost {
    pub user: Option<String>,
    /// An IP address or a DNS name, without brackets.
    pub host: String,
    pub port: Option<u16>,
}

impl JumpHost {
    /// Parses `[user@]host[:port]`; the error says what is wrong.
    pub fn parse(text: &str) -> Result<JumpHost, String> {
        let (user, rest) = match text.split_once('@') {
            Some((user, rest)) => {
                if !is_user_name(user) {
                    return Err(format!("{} is not a valid user name", quoted(user)));
                }
                (Some(user.to_string()), rest)
            }
            None => (None, text),
        };
        let (host, port) = if let Some(inner) = rest.strip_prefix('[') {
            let (address, after) = inner.split_once(']').ok_or("a '[' without its closing ']'")?;
            if address.parse::<Ipv6Addr>().is_err() {
                return Err(format!("{} is not an IPv6 address", quoted(address)));
            }
            match after {
                "" => (address, None),
                _ => (address, Some(after.strip_prefix(':').ok_or("expected ':port' after ']'")?)),
            }
        } else if rest.parse::<Ipv6Addr>().is_ok() {
            (rest, None)
        } else {
            match rest.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (rest, None),
            }
        };
        check_ip_or_dns_name(host)?;
        let port = match port {
            None => None,
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n > 0 => Some(n),
                _ => return Err(format!("{} is not a port from 1 to 65535", quoted(p))),
            },
        };
        Ok(JumpHost { user, host: host.to_string(), port })
    }
}

pub fn check(part: &Part<SshSettings>, rep: &mut Reporter<'_>) {
    let s = &part.value;
    let at = |name: &str| KeyPath::root().key("ssh").key(name);
    if part.ok("user") && !is_user_name(&s.user) {
        rep.error(
            &at("user"),
            format!("{} is not a valid user name (expected root, or a user with passwordless sudo)", quoted(&s.user)),
        );
    }
    if let Some(jump) = s.jump_host.as_ref().filter(|_| part.ok("jump_host"))
        && let Err(problem) = JumpHost::parse(jump)
    {
        rep.error(
            &at("jump_host"),
            format!("{} is not [user@]host[:port]: {problem} (e.g. admin@bastion.example.com:22)", quoted(jump)),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::validate::testing::{diagnose, only_error, with};

    #[test]
    fn jump_host_forms() {
        let parse = |s: &str| JumpHost::parse(s);
        assert_eq!(parse("bastion").unwrap(), JumpHost { user: None, host: "bastion".into(), port: None });
        assert_eq!(
            parse("admin@10.0.0.1:2222").unwrap(),
            JumpHost { user: Some("admin".into()), host: "10.0.0.1".into(), port: Some(2222) }
        );
        assert_eq!(parse("[fd00::1]:22").unwrap().host, "fd00::1");
        assert_eq!(parse("fd00::1").unwrap().port, None);
        assert_eq!(parse("ops@Bastion.Example.com").unwrap().host, "Bastion.Example.com");
        for bad in [
            "",
            "@host",
            "a b@host",
            "host:",
            "host:0",
            "host:70000",
            "host:22:22",
            "[fd00::1",
            "[10.0.0.1]:22",
            "ho st",
            "[fd00::1]22",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn jump_host_is_checked() {
        let e = only_error(&with("[ssh]\njump_host = \"admin@bastion:99999\""));
        assert!(e.contains("ssh.jump_host: \"admin@bastion:99999\" is not [user@]host[:port]: \"99999\" is not a port from 1 to 65535 (e.g. admin@bastion.example.com:22)"), "{e}");
        assert!(diagnose(&with("[ssh]\njump_host = \"admin@bastion.example.com:22\"")).0.is_empty());
        let e = only_error(&with("[ssh]\njump_host = \"admin@300.1.2.3:22\""));
        assert!(e.contains("\"300.1.2.3\" looks like an IPv4 address but is not one: 300 is more than 255"), "{e}");
    }

    #[test]
    fn user_is_a_user_name() {
        assert!(
            only_error(&with("[ssh]\nuser = \"Administrator\""))
                .contains("ssh.user: \"Administrator\" is not a valid user name")
        );
    }

    #[test]
    fn timeouts_are_positive() {
        assert!(
            only_error(&with("[ssh]\nconnect_timeout_secs = 0"))
                .contains("ssh.connect_timeout_secs: 0 is out of range (expected 1 to 86400)")
        );
        assert!(
            only_error(&with("[ssh]\ncommand_timeout_secs = -5"))
                .contains("ssh.command_timeout_secs: -5 is out of range")
        );
    }
}
