//! Reading an inventory: bytes -> text -> spanned TOML document -> checked sections
//! -> typed `Inventory`, collecting every problem on the way.

use std::borrow::Cow;
use std::io::Read;
use std::path::Path;

use serde::de::{DeserializeOwned, IntoDeserializer};
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::diagnostics::{Diagnostic, Diagnostics, Severity};
use super::locate::{KeyPath, LineIndex};
use super::report::Reporter;
use super::schema::{Host, Inventory};
use super::spec::{self, Section};
use super::validate::{self, Part, Sections};
use super::walk;

/// An inventory is a page of text; anything this large is a mistake (a wrong file),
/// and refusing it early keeps memory and time bounded.
pub const MAX_INVENTORY_BYTES: u64 = 1024 * 1024;

/// Reads the file, refusing what cannot be an inventory before parsing it.
pub fn read(path: &Path) -> Result<String, Diagnostics> {
    let whole_file = |message: String| Diagnostics::whole_file(path, message);
    // A named pipe would block the open (and the run) forever, a device like /dev/zero
    // never ends: anything but a regular file is refused before it is opened.
    let file = match crate::trust::open_regular(path, crate::trust::Follow::Links) {
        Ok(Some((file, _))) => file,
        Ok(None) => return Err(whole_file("cannot open the inventory: No such file or directory".into())),
        Err(crate::trust::TrustError::NotARegularFile { kind, .. }) => {
            return Err(whole_file(format!("is {kind}, not a regular file: give the path of the inventory file")));
        }
        Err(e) => return Err(whole_file(format!("cannot open the inventory: {e}"))),
    };
    let mut bytes = Vec::new();
    file.take(MAX_INVENTORY_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| whole_file(format!("cannot read the inventory: {e}")))?;
    if bytes.len() as u64 > MAX_INVENTORY_BYTES {
        return Err(whole_file(format!(
            "is larger than {MAX_INVENTORY_BYTES} bytes: not an inventory (check the file name)"
        )));
    }
    match String::from_utf8(bytes) {
        Ok(text) => Ok(text),
        Err(e) => {
            // Point at the first bad byte, counting lines in the valid part before it.
            let bytes = e.as_bytes();
            let good = e.utf8_error().valid_up_to();
            let prefix = std::str::from_utf8(&bytes[..good]).unwrap_or_default();
            let (line, column) = LineIndex::new(prefix).position(prefix, good);
            let mut d = whole_file(format!(
                "is not UTF-8 text (byte 0x{:02x}); save it as UTF-8",
                bytes.get(good).copied().unwrap_or(0)
            ));
            if let Some(first) = d.errors.first_mut() {
                first.line = Some(line);
                first.column = Some(column);
            }
            Err(d)
        }
    }
}

/// Parses and validates inventory `text`; `path` is what messages name.
pub fn parse_text(path: &Path, text: &str) -> Result<(Inventory, Vec<Diagnostic>), Diagnostics> {
    let (doc, syntax_errors) = DeTable::parse_recoverable(text);
    let mut rep = Reporter::new(path, text);
    if !syntax_errors.is_empty() {
        // A broken document would give misleading schema errors: report the syntax alone.
        for error in &syntax_errors {
            let span = error.span().unwrap_or(0..0);
            rep.at(Severity::Error, span, &KeyPath::root(), format!("TOML syntax: {}", error.message()));
        }
        return Err(rep.finish());
    }
    let root = doc.get_ref();
    let mut rep = rep.with_document(root);
    walk::check_top_level_keys(root, &mut rep);
    let (hosts, hosts_shape_ok) = host_section(root, &mut rep);
    let sections = Sections {
        cluster: table_section(root, &spec::CLUSTER, &mut rep),
        ssh: table_section(root, &spec::SSH, &mut rep),
        security: table_section(root, &spec::SECURITY, &mut rep),
        pki: table_section(root, &spec::PKI, &mut rep),
        etcd: table_section(root, &spec::ETCD, &mut rep),
        artifacts: table_section(root, &spec::ARTIFACTS, &mut rep),
        kubelet: table_section(root, &spec::KUBELET, &mut rep),
        hosts,
        hosts_shape_ok,
    };
    validate::run(&sections, &mut rep);
    if rep.error_count() > 0 {
        return Err(rep.finish());
    }
    let warnings = rep.finish().warnings;
    let Sections { cluster, ssh, security, pki, etcd, artifacts, kubelet, hosts, .. } = sections;
    match (cluster, ssh, security, pki, etcd, artifacts, kubelet) {
        (Some(cluster), Some(ssh), Some(security), Some(pki), Some(etcd), Some(artifacts), Some(kubelet)) => {
            // No errors were reported, so no part holds a stand-in.
            let hosts = hosts.into_iter().flatten().map(|h| h.value).collect();
            let inventory = Inventory {
                cluster: cluster.value,
                ssh: ssh.value,
                security: security.value,
                pki: pki.value,
                etcd: etcd.value,
                artifacts: artifacts.value,
                kubelet: kubelet.value,
                hosts,
            };
            Ok((inventory, warnings))
        }
        // Unreachable: a section is None only after an error was reported.
        _ => Err(Diagnostics::whole_file(
            path,
            "internal error: a section failed without a message (please report this)".into(),
        )),
    }
}

/// A `[section]` as its typed value. An absent optional section takes its defaults;
/// a section with problems is still typed, from its usable keys (see [`typed_part`]).
fn table_section<T: DeserializeOwned>(
    root: &DeTable<'_>,
    section: &Section,
    rep: &mut Reporter<'_>,
) -> Option<Part<T>> {
    let path = KeyPath::root().key(section.name);
    let Some(value) = walk::top_level(root, section.name) else {
        if section.required {
            let message = format!("required section {} is missing (see docs/inventory.md)", walk::header(section));
            rep.at(Severity::Error, 0..0, &path, message);
            return None;
        }
        return typed_part(section, &DeTable::new(), 0..0, Vec::new(), &path, rep);
    };
    let (table, unusable) = walk::check_table_section(section, value, rep)?;
    typed_part(section, table, value.span(), unusable, &path, rep)
}

/// Every `[[host]]` (None for an element that is not a table at all), and whether
/// `host` itself had the right shape (so that the number of hosts is known).
fn host_section(root: &DeTable<'_>, rep: &mut Reporter<'_>) -> (Vec<Option<Part<Host>>>, bool) {
    let Some(value) = walk::top_level(root, spec::HOST.name) else { return (Vec::new(), true) };
    let Some(elements) = walk::array_section_elements(&spec::HOST, value, rep) else { return (Vec::new(), false) };
    let hosts = elements
        .iter()
        .enumerate()
        .map(|(i, element)| {
            let (table, unusable) = walk::check_array_element(&spec::HOST, i, element, rep)?;
            typed_part(&spec::HOST, table, element.span(), unusable, &KeyPath::host(i), rep)
        })
        .collect();
    (hosts, true)
}

/// Types a checked table from its usable keys only: unknown and malformed keys are
/// left out (optional ones take their defaults) and a required key that is missing
/// or malformed gets its documented example as a stand-in. The `unusable` list goes
/// with the value so that no rule reports anything about a stand-in or a default
/// the operator did not choose.
fn typed_part<T: DeserializeOwned>(
    section: &Section,
    table: &DeTable<'_>,
    span: std::ops::Range<usize>,
    unusable: Vec<&'static str>,
    path: &KeyPath,
    rep: &mut Reporter<'_>,
) -> Option<Part<T>> {
    let mut usable = DeTable::new();
    for (key, value) in table.iter() {
        if section.field(key.get_ref()).is_some_and(|f| !unusable.contains(&f.name)) {
            usable.insert(key.clone(), value.clone());
        }
    }
    for field in section.fields.iter().filter(|f| f.required && unusable.contains(&f.name)) {
        match DeValue::parse(field.example) {
            Ok(stand_in) => {
                usable.insert(Spanned::new(0..0, Cow::Borrowed(field.name)), stand_in);
            }
            Err(_) => return None,
        }
    }
    let value = deserialize(&Spanned::new(span, DeValue::Table(usable)), path, rep)?;
    Some(Part { value, unusable })
}

/// serde on a value the walker accepted. It succeeds whenever `spec.rs` matches
/// `schema.rs` (a test keeps them in step); if it ever fails, the error is reported.
fn deserialize<T: DeserializeOwned>(value: &Spanned<DeValue<'_>>, path: &KeyPath, rep: &mut Reporter<'_>) -> Option<T> {
    match T::deserialize(value.clone().into_deserializer()) {
        Ok(typed) => Some(typed),
        Err(e) => {
            let span = e.span().unwrap_or(value.span());
            rep.at(Severity::Error, span, path, e.message().to_string());
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::inventory::validate::testing::{VALID, diagnose, only_error, replaced, with};

    #[test]
    fn every_syntax_error_is_reported_with_its_position() {
        let (errors, _) = diagnose("[cluster]\nname = \"lab\nport = = 1\n[bad\n");
        assert!(errors.len() >= 3, "{errors:#?}");
        assert!(errors.iter().all(|e| e.contains(": TOML syntax: ")), "{errors:#?}");
        assert!(errors.iter().any(|e| e.starts_with("test.toml:3:8: ")), "{errors:#?}");
        let (errors, _) = diagnose("[cluster]\nname = 'a'\nname = 'b'\n");
        assert!(errors[0].starts_with("test.toml:3:1: TOML syntax: duplicate key"), "{errors:#?}");
    }

    #[test]
    fn problems_in_every_section_are_reported_together() {
        let text = replaced("name = \"lab\"", "nmae = \"lab\"")
            .replace("\"10.200.0.0/16\"", "\"10.32.0.0/16\"")
            .replace("\"10.0.0.12\"", "\"10.0.0.300\"")
            + "\n[etcd]\nheartbeat_interval_ms = 500\n[ssh]\nport = 0\n[pki]\nleaf_validity_days = 5000\n";
        let (errors, _) = diagnose(&text);
        let keys: Vec<&str> = errors.iter().map(|e| e.split(": ").nth(1).unwrap_or_default()).collect();
        assert_eq!(
            keys,
            [
                "cluster.name",
                "cluster.nmae",
                "cluster.pod_cidr",
                "host[1].address",
                "etcd.heartbeat_interval_ms",
                "ssh.port",
                "pki.leaf_validity_days"
            ],
            "{errors:#?}"
        );
    }

    #[test]
    fn stand_ins_for_missing_keys_raise_nothing_themselves() {
        // The stand-in service_cidr (the documented example) must not be compared with anything.
        let text = replaced("service_cidr = \"10.32.0.0/24\"\n", "").replace("\"10.200.0.0/16\"", "\"10.32.0.0/16\"");
        let e = only_error(&text);
        assert!(e.contains("cluster.service_cidr: required key is missing (add e.g. service_cidr = \"10.32.0.0/24\" under [cluster])"), "{e}");
        // A malformed heartbeat is not replaced by the default and compared with the timeout.
        let e = only_error(&with("[etcd]\nheartbeat_interval_ms = \"fast\"\nelection_timeout_ms = 200"));
        assert!(e.contains("etcd.heartbeat_interval_ms: expected an integer"), "{e}");
    }

    #[test]
    fn unknown_roles_do_not_fake_a_role_count() {
        // With node1's roles unusable, "no control-plane host" would be a guess: not reported.
        let text = VALID.replace("[\"etcd\", \"control-plane\"]", "[\"etcd\", \"master\"]");
        let (errors, warnings) = diagnose(&text);
        assert_eq!(errors.len(), 3, "{errors:#?}");
        assert!(errors.iter().all(|e| e.contains("\"master\" is not a role")));
        assert!(warnings.is_empty());
    }

    #[test]
    fn wrong_shapes_are_explained() {
        let e = only_error(&VALID.replace("[cluster]", "[[cluster]]"));
        assert!(e.contains("cluster: cluster is written once, as [cluster] (not [[cluster]])"), "{e}");
        let one_host = format!(
            "{}[host]\nname = \"n\"\naddress = \"10.0.0.1\"\nroles = [\"etcd\"]\n",
            VALID.split("[[host]]").next().unwrap_or_default()
        );
        let e = only_error(&one_host);
        assert!(e.contains("host: write [[host]] (an array of tables, one per host), not [host]"), "{e}");
        let (errors, _) = diagnose("cluster = \"lab\"\nhost = [1]\n");
        assert!(
            errors[0]
                .contains("cluster: expected a table (a line [cluster] followed by its keys), found string \"lab\""),
            "{errors:#?}"
        );
        assert!(errors[1].contains("host[0]: expected a table written [[host]], found integer 1"), "{errors:#?}");
    }

    #[test]
    fn unknown_top_level_keys_and_sections() {
        let e = only_error(&with("[clutser]\nx = 1"));
        assert!(e.contains("clutser: unknown section [clutser] (did you mean [cluster]?)"), "{e}");
        let e = only_error(&format!("api_port = 6443\n{VALID}"));
        assert!(
            e.starts_with(
                "test.toml:1:1: api_port: unknown top-level key \"api_port\" (api_port belongs in [cluster])"
            ),
            "{e}"
        );
        let e = only_error(&with("[[nodes]]\nname = \"x\""));
        assert!(e.contains("unknown section [[nodes]] (did you mean [[host]]?)"), "{e}");
    }

    #[test]
    fn an_empty_file_names_what_is_needed() {
        let (errors, _) = diagnose("");
        assert_eq!(errors.len(), 2, "{errors:#?}");
        assert!(errors[0].contains("cluster: required section [cluster] is missing"));
        assert!(errors[1].contains("host: no hosts"));
    }
}
