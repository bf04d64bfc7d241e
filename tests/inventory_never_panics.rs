//! Whatever bytes an inventory file holds, the loader answers with diagnostics (or an
//! inventory) and never panics: arbitrary bytes, random mutations of a valid
//! inventory, and the classic parser killers (deep nesting, NUL, huge lines).

use std::path::Path;

use proptest::prelude::*;
use provision::inventory::{self, Diagnostics};

const EXAMPLE: &str = include_str!("../inventories/example-ha.toml");

/// Loads `bytes` from a real file and checks the answer is well formed.
fn load_bytes(bytes: &[u8]) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().map_err(|e| TestCaseError::fail(e.to_string()))?;
    let path = dir.path().join("inventory.toml");
    std::fs::write(&path, bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let first = inventory::load(&path);
    if let Err(problems) = &first {
        check_well_formed(&path, bytes, problems)?;
    }
    // Deterministic: the same file gives the same answer.
    let second = inventory::load(&path);
    prop_assert_eq!(first.as_ref().err(), second.as_ref().err());
    Ok(())
}

fn check_well_formed(path: &Path, bytes: &[u8], problems: &Diagnostics) -> Result<(), TestCaseError> {
    prop_assert!(!problems.errors.is_empty(), "an Err without errors");
    let lines = bytes.iter().filter(|b| **b == b'\n').count() + 1;
    for d in problems.errors.iter().chain(&problems.warnings) {
        prop_assert_eq!(&d.file, path);
        prop_assert!(!d.message.is_empty());
        if let (Some(line), Some(column)) = (d.line, d.column) {
            prop_assert!(line >= 1 && line <= lines, "line {} of {}: {}", line, lines, d);
            prop_assert!(column >= 1, "{}", d);
        }
        // Messages are one line each: user text is escaped before it is shown.
        prop_assert!(!d.to_string().contains('\n'), "{:?}", d.to_string());
    }
    Ok(())
}

/// Pieces that make TOML parsers and our checks take unusual paths.
fn fragment() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(b"[".to_vec()),
        Just(b"]".to_vec()),
        Just(b"[[host]]\n".to_vec()),
        Just(b"[cluster]\n".to_vec()),
        Just(b"\"".to_vec()),
        Just(b"'''".to_vec()),
        Just(b" = ".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"\0".to_vec()),
        Just(b"\xff\xfe".to_vec()),
        Just("\u{feff}".as_bytes().to_vec()),
        Just("é".as_bytes().to_vec()),
        Just(b"{ a = 1 }".to_vec()),
        Just(b"99999999999999999999999".to_vec()),
        Just(b"-0x7f".to_vec()),
        Just(b"1979-05-27T07:32:00Z".to_vec()),
        Just(b"nan".to_vec()),
        Just(b"roles = []\n".to_vec()),
        Just(b"address = \"::ffff:10.0.0.11\"\n".to_vec()),
        Just(b"service_cidr = \"0.0.0.0/0\"\n".to_vec()),
        Just(b"heartbeat_interval_ms = 4294967295\n".to_vec()),
        prop::collection::vec(any::<u8>(), 0..16),
    ]
}

#[derive(Debug, Clone)]
enum Mutation {
    Delete { at: usize, len: usize },
    Insert { at: usize, bytes: Vec<u8> },
    Duplicate { at: usize, len: usize },
    Flip { at: usize, byte: u8 },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let at = 0..EXAMPLE.len() + 64;
    prop_oneof![
        (at.clone(), 1..200usize).prop_map(|(at, len)| Mutation::Delete { at, len }),
        (at.clone(), fragment()).prop_map(|(at, bytes)| Mutation::Insert { at, bytes }),
        (at.clone(), 1..400usize).prop_map(|(at, len)| Mutation::Duplicate { at, len }),
        (at, any::<u8>()).prop_map(|(at, byte)| Mutation::Flip { at, byte }),
    ]
}

fn apply(text: &mut Vec<u8>, m: &Mutation) {
    let clamp = |at: usize, text: &Vec<u8>| at.min(text.len());
    match m {
        Mutation::Delete { at, len } => {
            let start = clamp(*at, text);
            let end = clamp(start + len, text);
            text.drain(start..end);
        }
        Mutation::Insert { at, bytes } => {
            let at = clamp(*at, text);
            text.splice(at..at, bytes.iter().copied());
        }
        Mutation::Duplicate { at, len } => {
            let start = clamp(*at, text);
            let end = clamp(start + len, text);
            let copy = text[start..end].to_vec();
            text.splice(end..end, copy);
        }
        Mutation::Flip { at, byte } => {
            if !text.is_empty() {
                let at = *at % text.len();
                text[at] = *byte;
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        load_bytes(&bytes)?;
    }

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,600}") {
        load_bytes(text.as_bytes())?;
    }

    #[test]
    fn mutated_valid_inventories_never_panic(mutations in prop::collection::vec(mutation(), 1..8)) {
        let mut text = EXAMPLE.as_bytes().to_vec();
        for m in &mutations {
            apply(&mut text, m);
        }
        load_bytes(&text)?;
    }
}

#[test]
fn the_unmutated_example_is_valid() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("example.toml");
    std::fs::write(&path, EXAMPLE).unwrap();
    assert!(inventory::load(&path).is_ok());
}

#[test]
fn parser_killers_are_refused_cleanly() {
    let deep_arrays = format!("a = {}{}", "[".repeat(100_000), "]".repeat(100_000));
    let deep_tables = format!("a = {}1{}", "{ b = ".repeat(10_000), " }".repeat(10_000));
    let deep_dotted = format!("{} = 1", vec!["a"; 10_000].join("."));
    let long_line = format!("[cluster]\nname = \"{}\"", "x".repeat(900_000));
    let many_hosts = "[[host]]\nname = \"n\"\naddress = \"10.0.0.1\"\nroles = [\"etcd\"]\n".repeat(2_000);
    let nul = "[cluster]\0name = \"lab\"\n".to_string();
    for case in [deep_arrays, deep_tables, deep_dotted, long_line, many_hosts, nul] {
        let result = load_bytes(case.as_bytes());
        assert!(result.is_ok(), "{result:?}");
    }
    // Above the size limit: refused before parsing.
    let huge = vec![b'a'; inventory::MAX_INVENTORY_BYTES as usize + 1];
    assert!(load_bytes(&huge).is_ok());
}
