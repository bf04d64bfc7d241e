//! Golden files: the rendered units and configuration files (not secrets, not
//! certificates) of every fixture inventory, under tests/golden/<inventory>/<host>/<path>.
//! `UPDATE_GOLDEN=1 cargo test --test golden` rewrites them; otherwise a difference fails
//! with a line diff.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::{INVENTORIES, fixture_pki, inventory};
use provision::render::{Templates, render};

fn golden_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

/// What the golden files cover: no secrets, no key material, no certificates.
fn covered(path: &str, secret: bool) -> bool {
    !secret && !path.ends_with(".crt") && !path.ends_with(".pub")
}

fn rendered(name: &str, templates: &Templates) -> BTreeMap<String, String> {
    let inv = inventory(name);
    let r = render(&inv, &fixture_pki(&inv), templates).unwrap();
    let mut out = BTreeMap::new();
    for h in &r.desired.hosts {
        for f in h.files.iter().filter(|f| covered(&f.path, f.secret)) {
            out.insert(format!("{}{}", h.host, f.path), String::from_utf8(f.content.to_vec()).unwrap());
        }
    }
    out
}

fn on_disk(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(p.strip_prefix(root).unwrap().display().to_string(), std::fs::read_to_string(&p).unwrap());
            }
        }
    }
    out
}

/// A line diff (longest common subsequence): "-" expected only, "+" rendered only.
fn diff(expected: &str, actual: &str) -> String {
    let (a, b): (Vec<&str>, Vec<&str>) = (expected.lines().collect(), actual.lines().collect());
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] { lcs[i + 1][j + 1] + 1 } else { lcs[i + 1][j].max(lcs[i][j + 1]) };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, String::new());
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            i += 1;
            j += 1;
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            out.push_str(&format!("-{}\n", a[i]));
            i += 1;
        } else {
            out.push_str(&format!("+{}\n", b[j]));
            j += 1;
        }
    }
    out
}

/// Differences between what `templates` render for inventory `name` and its golden files.
fn compare(name: &str, templates: &Templates) -> Vec<String> {
    let now = rendered(name, templates);
    assert!(!now.is_empty(), "{name}: nothing covered");
    let golden = on_disk(&golden_root().join(name));
    let mut problems = Vec::new();
    for (rel, text) in &now {
        match golden.get(rel) {
            None => problems.push(format!("{name}/{rel}: rendered but has no golden file")),
            Some(g) if g != text => problems.push(format!("{name}/{rel} differs:\n{}", diff(g, text))),
            Some(_) => {}
        }
    }
    for rel in golden.keys().filter(|k| !now.contains_key(*k)) {
        problems.push(format!("{name}/{rel}: golden file no longer rendered"));
    }
    problems
}

#[test]
fn rendered_files_match_the_golden_files() {
    let t = Templates::embedded().unwrap();
    if std::env::var("UPDATE_GOLDEN").is_ok_and(|v| v == "1") {
        for name in INVENTORIES {
            let root = golden_root().join(name);
            let _ = std::fs::remove_dir_all(&root);
            for (rel, text) in rendered(name, &t) {
                let p = root.join(rel);
                std::fs::create_dir_all(p.parent().unwrap()).unwrap();
                std::fs::write(&p, text).unwrap();
            }
        }
        return;
    }
    let problems: Vec<String> = INVENTORIES.iter().flat_map(|n| compare(n, &t)).collect();
    assert!(problems.is_empty(), "{}\n(run UPDATE_GOLDEN=1 cargo test --test golden to accept)", problems.join("\n"));
}

/// The comparison is not vacuous: a one-line template change is reported with its diff.
#[test]
fn a_template_change_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let text = Templates::embedded_text("kube-scheduler.yaml").unwrap().replace("enableProfiling: false", "enableProfiling: true");
    std::fs::write(dir.path().join("kube-scheduler.yaml"), text).unwrap();
    let problems = compare("ha", &Templates::with_overrides(dir.path()).unwrap());
    assert_eq!(problems.len(), 3, "{problems:#?}");
    assert!(problems.iter().all(|p| p.contains("kube-scheduler.yaml differs") && p.contains("-enableProfiling: false\n+enableProfiling: true")), "{problems:#?}");
}

#[test]
fn the_diff_shows_changed_lines() {
    let d = diff("a\nb\nc\n", "a\nB\nc\nd\n");
    assert_eq!(d, "-b\n+B\n+d\n");
}
