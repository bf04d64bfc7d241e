//! Shared test support: the fixture inventories and their PKI.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use provision::inventory::Inventory;
use provision::pki::Pki;
use provision::state::StateDir;

pub const INVENTORIES: &[&str] = &["lab", "vagrant", "ha"];

pub fn fixture_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(format!("{name}.toml"))
}

pub fn inventory(name: &str) -> Inventory {
    let text = std::fs::read_to_string(fixture_path(name)).expect("fixture exists");
    toml::from_str(&text).unwrap_or_else(|e| panic!("fixture {name}: {e}"))
}

/// The inventory with the Kubernetes tier switched on (the lab skips it).
pub fn with_kubernetes(mut inv: Inventory) -> Inventory {
    inv.artifacts.kubernetes = provision::inventory::KubernetesSource::Download;
    inv
}

/// The real PKI for `inv`, from `pki::ensure` in a fresh state directory.
pub fn fixture_pki(inv: &Inventory) -> Pki {
    let dir = tempfile::tempdir().expect("temp state dir");
    provision::pki::ensure(inv, &StateDir::at(dir.path())).unwrap_or_else(|e| panic!("pki::ensure: {e:#}"))
}
