//! Name rules shared by several checks: DNS labels and names, user names, versions.

/// RFC 1123 label, lower case: 1-63 of a-z, 0-9, '-', starting and ending with a
/// letter or digit. Kubernetes node names and our cluster names follow it.
pub fn is_dns_label(s: &str) -> bool {
    let bytes = s.as_bytes();
    (1..=63).contains(&bytes.len())
        && bytes.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
}

/// RFC 1123 subdomain (e.g. `lb.example.com`): labels joined by '.', at most 253
/// characters, with at least one letter in the last label (RFC 1123 2.1 / RFC 3696 2: a
/// top-level label is never all-numeric, which is what keeps `300.1.2.3` from passing as
/// a name). Upper case is accepted (DNS ignores case) unless `lower_only`.
pub fn is_dns_name(s: &str, lower_only: bool) -> bool {
    let s = if lower_only { s.to_string() } else { s.to_ascii_lowercase() };
    s.len() <= 253
        && s.split('.').all(is_dns_label)
        && s.rsplit('.').next().is_some_and(|last| last.bytes().any(|b| b.is_ascii_lowercase()))
}

/// The one rule for every field that takes "an IP address or a DNS name" (api_endpoint,
/// ssh.jump_host): a valid IP address, or a valid DNS name; anything made of digits and
/// dots must be a valid IPv4 address. Err says what is wrong, in words.
pub fn check_ip_or_dns_name(s: &str) -> Result<(), String> {
    use std::net::IpAddr;
    if s.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    if s.contains('.') && s.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(format!("{s:?} looks like an IPv4 address but is not one: {}", why_not_ipv4(s)));
    }
    if is_dns_name(s, false) {
        return Ok(());
    }
    Err(format!("{s:?} is not an IP address or DNS name"))
}

/// Why a string of digits and dots is no IPv4 address.
fn why_not_ipv4(s: &str) -> String {
    let parts: Vec<&str> = s.split('.').collect();
    if parts.len() != 4 {
        return format!("an IPv4 address has 4 numbers joined by '.', this has {}", parts.len());
    }
    for p in parts {
        if p.is_empty() {
            return "one of its 4 numbers is empty".into();
        }
        if p.len() > 1 && p.starts_with('0') {
            return format!("{p} has a leading zero (read as octal by some tools; write it without)");
        }
        if p.parse::<u32>().map_or(true, |n| n > 255) {
            return format!("{p} is more than 255");
        }
    }
    "not a valid IPv4 address".into()
}

/// A nearby valid label for a near miss such as "Node_1" -> "node-1".
pub fn label_suggestion(s: &str) -> Option<String> {
    let fixed: String =
        s.chars().take(63).map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).collect();
    let fixed = fixed.trim_matches('-').to_string();
    (fixed != s && is_dns_label(&fixed)).then_some(fixed)
}

/// A login name as useradd accepts it: a lower-case letter or '_', then up to 31 of
/// a-z, 0-9, '_', '-' (these names end up on command lines and in sudo checks).
pub fn is_user_name(s: &str) -> bool {
    let bytes = s.as_bytes();
    (1..=32).contains(&bytes.len())
        && bytes.first().is_some_and(|b| b.is_ascii_lowercase() || *b == b'_')
        && bytes.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_' || *b == b'-')
}

/// "X.Y.Z" with decimal numbers (no leading "v", no pre-release suffix).
pub fn parse_release(s: &str) -> Option<(u64, u64, u64)> {
    let mut parts = s.split('.');
    let mut number = || -> Option<u64> {
        let part = parts.next()?;
        if part.is_empty() || part.len() > 9 || !part.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        part.parse().ok()
    };
    let version = (number()?, number()?, number()?);
    parts.next().is_none().then_some(version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_labels() {
        for ok in ["node1", "a", "n-1", &"a".repeat(63)] {
            assert!(is_dns_label(ok), "{ok}");
        }
        for bad in ["", "-a", "a-", "Node1", "node_1", "a.b", &"a".repeat(64), "nöde"] {
            assert!(!is_dns_label(bad), "{bad}");
        }
    }

    #[test]
    fn dns_names() {
        assert!(is_dns_name("lb.example.com", true));
        assert!(is_dns_name("LB.Example.com", false));
        assert!(!is_dns_name("LB.Example.com", true));
        assert!(!is_dns_name("lb..example.com", false));
        assert!(!is_dns_name("lb.example.com.", false));
        assert!(!is_dns_name("lb example.com", false));
        assert!(!is_dns_name(&format!("{}.com", "a.".repeat(130)), false));
    }

    #[test]
    fn suggestions_fix_near_misses_only() {
        assert_eq!(label_suggestion("Node_1").as_deref(), Some("node-1"));
        assert_eq!(label_suggestion("node1"), None);
        assert_eq!(label_suggestion("___"), None);
    }

    #[test]
    fn user_names() {
        assert!(is_user_name("root"));
        assert!(is_user_name("_svc-1"));
        assert!(!is_user_name(""));
        assert!(!is_user_name("Admin"));
        assert!(!is_user_name("a b"));
        assert!(!is_user_name("-x"));
    }

    #[test]
    fn releases() {
        assert_eq!(parse_release("1.34.2"), Some((1, 34, 2)));
        for bad in ["v1.34.2", "1.34", "1.34.2.1", "1.34.x", "1.34.2-rc.1", "", "1..2", "1.34.99999999999"] {
            assert_eq!(parse_release(bad), None, "{bad}");
        }
    }
}
