//! Walks the parsed (span-carrying) document against `spec.rs` and reports every
//! unknown key, wrong type, missing required key and malformed value, each at the
//! place it was written. Semantic rules (overlaps, counts, ...) come later, in
//! `validate/`, on the typed values.

use std::net::IpAddr;

use ipnet::IpNet;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::diagnostics::{Severity, quoted};
use super::locate::KeyPath;
use super::report::Reporter;
use super::spec::{self, Field, Kind, ROLES, SECTIONS, Section, Shape};
use super::suggest::closest;

type Value<'i> = Spanned<DeValue<'i>>;

/// The value of a top-level key, if written.
pub fn top_level<'r, 'i>(root: &'r DeTable<'i>, name: &str) -> Option<&'r Value<'i>> {
    root.iter().find(|(k, _)| k.get_ref() == name).map(|(_, v)| v)
}

/// Reports top-level keys that are not a section.
pub fn check_top_level_keys(root: &DeTable<'_>, rep: &mut Reporter<'_>) {
    let section_names: Vec<&str> = SECTIONS.iter().map(|s| s.name).collect();
    for (key, value) in root.iter() {
        let name = key.get_ref().as_ref();
        if spec::section(name).is_some() {
            continue;
        }
        let what = match value.get_ref() {
            DeValue::Table(_) => format!("unknown section [{name}]"),
            DeValue::Array(a) if a.iter().all(|e| e.get_ref().is_table()) && !a.is_empty() => {
                format!("unknown section [[{name}]]")
            }
            _ => format!("unknown top-level key {}", quoted(name)),
        };
        let hint = if let Some(near) = closest(name, &section_names).and_then(spec::section) {
            format!("did you mean {}?", header(near))
        } else if let Some(owner) = SECTIONS.iter().find(|s| s.field(name).is_some()) {
            format!("{name} belongs in {}", header(owner))
        } else {
            format!("expected one of: {}", SECTIONS.iter().map(|s| header(s)).collect::<Vec<_>>().join(", "))
        };
        rep.at(Severity::Error, key.span(), &KeyPath::root().key(name), format!("{what} ({hint})"));
    }
}

/// `[name]` or `[[name]]`, as the operator writes the section's header.
pub fn header(section: &Section) -> String {
    match section.shape {
        Shape::Table => format!("[{}]", section.name),
        Shape::ArrayOfTables => format!("[[{}]]", section.name),
    }
}

/// A checked table and the fields whose values cannot be used: malformed, or
/// required and missing. Semantic rules skip what depends on them.
pub type Checked<'r, 'i> = (&'r DeTable<'i>, Vec<&'static str>);

/// Checks a `[section]` written once; returns its table when it is one.
pub fn check_table_section<'r, 'i>(
    section: &Section,
    value: &'r Value<'i>,
    rep: &mut Reporter<'_>,
) -> Option<Checked<'r, 'i>> {
    let path = KeyPath::root().key(section.name);
    match value.get_ref() {
        DeValue::Table(table) => Some((table, check_table(section, table, value.span(), &path, rep))),
        DeValue::Array(_) => {
            let message =
                format!("{} is written once, as {} (not [[{}]])", section.name, header(section), section.name);
            rep.at(Severity::Error, value.span(), &path, message);
            None
        }
        other => {
            let message = format!(
                "expected a table (a line {} followed by its keys), found {}",
                header(section),
                describe(other)
            );
            rep.at(Severity::Error, value.span(), &path, message);
            None
        }
    }
}

/// Checks the shape of a `[[section]]` and returns its elements when it is an array.
pub fn array_section_elements<'r, 'i>(
    section: &Section,
    value: &'r Value<'i>,
    rep: &mut Reporter<'_>,
) -> Option<&'r [Value<'i>]> {
    let path = KeyPath::root().key(section.name);
    match value.get_ref() {
        DeValue::Array(elements) => Some(&elements[..]),
        DeValue::Table(_) => {
            let message = format!(
                "write {} (an array of tables, one per {}), not [{}]",
                header(section),
                section.name,
                section.name
            );
            rep.at(Severity::Error, value.span(), &path, message);
            None
        }
        other => {
            let message = format!("expected tables written {}, found {}", header(section), describe(other));
            rep.at(Severity::Error, value.span(), &path, message);
            None
        }
    }
}

/// Checks one element of a `[[section]]` array.
pub fn check_array_element<'r, 'i>(
    section: &Section,
    index: usize,
    value: &'r Value<'i>,
    rep: &mut Reporter<'_>,
) -> Option<Checked<'r, 'i>> {
    let path = KeyPath::root().key(section.name).index(index);
    match value.get_ref().as_table() {
        Some(table) => Some((table, check_table(section, table, value.span(), &path, rep))),
        None => {
            let message = format!("expected a table written {}, found {}", header(section), describe(value.get_ref()));
            rep.at(Severity::Error, value.span(), &path, message);
            None
        }
    }
}

/// Reports every problem in one table; returns the fields that cannot be used.
fn check_table(
    section: &Section,
    table: &DeTable<'_>,
    span: std::ops::Range<usize>,
    path: &KeyPath,
    rep: &mut Reporter<'_>,
) -> Vec<&'static str> {
    let mut unusable = Vec::new();
    for (key, value) in table.iter() {
        let name = key.get_ref().as_ref();
        let key_path = path.key(name);
        match section.field(name) {
            Some(field) => {
                if !check_value(field, value, &key_path, rep) {
                    unusable.push(field.name);
                }
            }
            None => rep.at(Severity::Error, key.span(), &key_path, unknown_key(section, name)),
        }
    }
    for field in section.fields.iter().filter(|f| f.required) {
        if !table.iter().any(|(k, _)| k.get_ref() == field.name) {
            let message = format!(
                "required key is missing (add e.g. {} = {} under {})",
                field.name,
                field.example,
                header(section)
            );
            rep.at(Severity::Error, span.clone(), &path.key(field.name), message);
            unusable.push(field.name);
        }
    }
    unusable
}

fn unknown_key(section: &Section, name: &str) -> String {
    let known: Vec<&str> = section.field_names().collect();
    let hint = if let Some(near) = closest(name, &known) {
        format!("did you mean {}?", quoted(near))
    } else if let Some(other) = spec::section(name) {
        // Keys after a [header] belong to it: a section written below another table
        // by mistake lands inside that table.
        format!("{} is a section of its own: start it with a line {}", name, header(other))
    } else if let Some(owner) = SECTIONS.iter().find(|s| s.name != section.name && s.field(name).is_some()) {
        format!("{name} belongs in {}", header(owner))
    } else {
        format!("expected one of: {}", known.join(", "))
    };
    format!("unknown key {} in {} ({hint})", quoted(name), header(section))
}

/// Reports what is wrong with one value; true when it is usable.
fn check_value(field: &Field, value: &Value<'_>, path: &KeyPath, rep: &mut Reporter<'_>) -> bool {
    if let Some(message) = value_problem(field, value.get_ref()) {
        rep.at(Severity::Error, value.span(), path, message);
        return false;
    }
    let mut usable = true;
    // An array of roles: each element is checked where it was written.
    if let (Kind::Roles, DeValue::Array(roles)) = (field.kind, value.get_ref()) {
        for (i, role) in roles.iter().enumerate() {
            if let Some(message) = choice_problem(ROLES, role.get_ref(), "a role") {
                rep.at(Severity::Error, role.span(), &path.index(i), message);
                usable = false;
            }
        }
    }
    usable
}

/// What is wrong with `value` for `field`, if anything (the whole value; the
/// elements of a role list are checked by the caller).
pub fn value_problem(field: &Field, value: &DeValue<'_>) -> Option<String> {
    let example = field.example;
    let bare = example.trim_matches('"');
    match (field.kind, value) {
        (Kind::Text, DeValue::String(s)) => control_character(s),
        (Kind::Path, DeValue::String(s)) if s.is_empty() => Some(format!("is empty (expected a path, e.g. {example})")),
        (Kind::Path, DeValue::String(s)) => control_character(s),
        (Kind::Text | Kind::Path, other) => {
            Some(format!("expected a string (e.g. {example}), found {}", describe(other)))
        }
        (Kind::Bool, DeValue::Boolean(_)) => None,
        (Kind::Bool, DeValue::String(s)) if s == "true" || s == "false" => {
            Some(format!("expected true or false without quotes, found string {}", quoted(s)))
        }
        (Kind::Bool, other) => Some(format!("expected true or false, found {}", describe(other))),
        (Kind::Int { min, max }, DeValue::Integer(n)) => {
            let parsed = i128::from_str_radix(n.as_str(), n.radix()).ok();
            match parsed {
                Some(v) if (min..=max).contains(&v) => None,
                _ => Some(format!("{n} is out of range (expected {min} to {max})")),
            }
        }
        (Kind::Int { .. }, DeValue::String(s)) if s.trim().parse::<i128>().is_ok() => {
            Some(format!("expected an integer without quotes (e.g. {example}), found string {}", quoted(s)))
        }
        (Kind::Int { min, max }, other) => {
            Some(format!("expected an integer from {min} to {max} (e.g. {example}), found {}", describe(other)))
        }
        (Kind::Choice(values), other) => choice_problem(values, other, "a valid value"),
        (Kind::Ip, DeValue::String(s)) => match s.parse::<IpAddr>() {
            Ok(_) => None,
            Err(_) if s.parse::<IpNet>().is_ok() => {
                Some(format!("{} is a CIDR range, not an address (write the address alone, e.g. {bare})", quoted(s)))
            }
            Err(_) => Some(format!("{} is not an IP address (expected e.g. {bare})", quoted(s))),
        },
        (Kind::Cidr, DeValue::String(s)) => match s.parse::<IpNet>() {
            Ok(_) => None,
            Err(_) if s.parse::<IpAddr>().is_ok() => {
                Some(format!("{} is an address, not a CIDR range (add the prefix length, e.g. {bare})", quoted(s)))
            }
            Err(_) => Some(format!("{} is not a CIDR range (expected e.g. {bare})", quoted(s))),
        },
        (Kind::Ip | Kind::Cidr, other) => {
            Some(format!("expected a quoted string (e.g. {example}), found {}", describe(other)))
        }
        (Kind::Roles, DeValue::Array(_)) => None,
        (Kind::Roles, other) => Some(format!("expected an array of roles (e.g. {example}), found {}", describe(other))),
    }
}

fn choice_problem(values: &[&str], value: &DeValue<'_>, what: &str) -> Option<String> {
    let expected = values.join(", ");
    match value {
        DeValue::String(s) if values.contains(&s.as_ref()) => None,
        DeValue::String(s) => {
            let hint = closest(s, values).map(|near| format!("; did you mean {}?", quoted(near))).unwrap_or_default();
            Some(format!("{} is not {what} (expected one of: {expected}{hint})", quoted(s)))
        }
        other => Some(format!("expected one of: {expected} (as a quoted string), found {}", describe(other))),
    }
}

/// Control characters would end up inside unit files, flags and config files (a
/// newline could inject a directive), so no value may contain one.
fn control_character(s: &str) -> Option<String> {
    let c = s.chars().find(|c| c.is_control())?;
    Some(format!(
        "{} contains the control character U+{:04X} (write the value on one line, without control characters)",
        quoted(s),
        c as u32
    ))
}

/// A value as a message shows it: its type, and the value when it is short.
pub fn describe(value: &DeValue<'_>) -> String {
    match value {
        DeValue::String(s) => format!("string {}", quoted(s)),
        DeValue::Integer(n) => format!("integer {n}"),
        DeValue::Float(f) => format!("float {f}"),
        DeValue::Boolean(b) => format!("boolean {b}"),
        DeValue::Datetime(d) => format!("datetime {d}"),
        DeValue::Array(_) => "an array".to_string(),
        DeValue::Table(_) => "a table".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::spec::{CLUSTER, HOST, SSH};

    fn problem(section: &Section, key: &str, toml_value: &str) -> Option<String> {
        let text = format!("v = {toml_value}");
        let doc = DeTable::parse(&text).unwrap();
        let value = top_level(doc.get_ref(), "v").unwrap();
        value_problem(section.field(key).unwrap(), value.get_ref())
    }

    #[test]
    fn ip_addresses() {
        assert_eq!(problem(&HOST, "address", "\"10.0.0.3\""), None);
        assert_eq!(problem(&HOST, "address", "\"fd00::3\""), None);
        assert_eq!(
            problem(&HOST, "address", "\"10.0.0.300\"").unwrap(),
            "\"10.0.0.300\" is not an IP address (expected e.g. 10.0.0.3)"
        );
        assert!(problem(&HOST, "address", "\"10.0.0.3/24\"").unwrap().contains("is a CIDR range, not an address"));
        assert!(problem(&HOST, "address", "10").unwrap().contains("found integer 10"));
    }

    #[test]
    fn cidr_ranges() {
        assert_eq!(problem(&CLUSTER, "service_cidr", "\"10.32.0.0/24\""), None);
        assert!(problem(&CLUSTER, "service_cidr", "\"10.32.0.0\"").unwrap().contains("add the prefix length"));
        assert!(problem(&CLUSTER, "pod_cidr", "\"10.200.0.0/33\"").unwrap().contains("is not a CIDR range"));
    }

    #[test]
    fn integers_in_range() {
        assert_eq!(problem(&SSH, "port", "22"), None);
        assert_eq!(problem(&SSH, "port", "0x16"), None);
        assert_eq!(problem(&SSH, "port", "0").unwrap(), "0 is out of range (expected 1 to 65535)");
        assert!(problem(&SSH, "port", "70000").unwrap().contains("out of range"));
        assert!(problem(&SSH, "port", "99999999999999999999999999999999999999999").unwrap().contains("out of range"));
        assert!(problem(&SSH, "port", "\"22\"").unwrap().contains("without quotes"));
        assert!(problem(&SSH, "port", "22.0").unwrap().contains("found float"));
        assert!(problem(&SSH, "connect_timeout_secs", "0").unwrap().contains("expected 1 to 86400"));
    }

    #[test]
    fn choices_suggest_the_closest() {
        assert_eq!(problem(&SSH, "host_keys", "\"accept-new\""), None);
        let message = problem(&SSH, "host_keys", "\"accept_new\"").unwrap();
        assert_eq!(
            message,
            "\"accept_new\" is not a valid value (expected one of: strict, accept-new; did you mean \"accept-new\"?)"
        );
        assert!(problem(&SSH, "host_keys", "true").unwrap().contains("found boolean true"));
    }

    #[test]
    fn strings_refuse_control_characters() {
        assert!(problem(&CLUSTER, "name", "\"lab\\nExecStart=/bin/sh\"").unwrap().contains("U+000A"));
        assert!(problem(&CLUSTER, "name", "\"a\\u0000\"").unwrap().contains("U+0000"));
        assert!(problem(&SSH, "private_key", "\"\"").unwrap().contains("is empty"));
        assert!(problem(&CLUSTER, "name", "[\"lab\"]").unwrap().contains("found an array"));
    }

    #[test]
    fn a_section_inside_another_table_is_explained() {
        assert_eq!(
            unknown_key(&CLUSTER, "host"),
            "unknown key \"host\" in [cluster] (host is a section of its own: start it with a line [[host]])"
        );
        assert_eq!(unknown_key(&CLUSTER, "user"), "unknown key \"user\" in [cluster] (user belongs in [ssh])");
    }

    #[test]
    fn booleans() {
        let security = crate::inventory::spec::SECURITY;
        assert_eq!(problem(&security, "audit_log", "false"), None);
        assert!(problem(&security, "audit_log", "\"true\"").unwrap().contains("without quotes"));
        assert!(problem(&security, "audit_log", "1").unwrap().contains("found integer 1"));
    }

    #[test]
    fn role_lists_are_arrays() {
        assert_eq!(problem(&HOST, "roles", "[\"etcd\"]"), None);
        assert!(problem(&HOST, "roles", "\"etcd\"").unwrap().contains("expected an array of roles"));
        assert!(
            choice_problem(ROLES, &DeValue::String("master".into()), "a role")
                .unwrap()
                .contains("did you mean \"control-plane\"")
        );
    }
}
