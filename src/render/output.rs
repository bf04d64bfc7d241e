//! Writing a render to a directory on the operator's machine: per host, the exact tree
//! apply installs (DIR/<host>/<absolute path>), plus DIR/<host>/manifest.json with every
//! file's mode, owner, group, sha256 and component. Deterministic: sorted, no timestamps.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component as PathPart, Path, PathBuf};

use anyhow::{Context as _, bail};
use serde::Serialize;

use super::Rendered;
use crate::desired::{Component, DesiredHost};

/// Marks a directory as written by `provision render` (so a re-render may replace it).
pub const MARKER: &str = ".provision-render";
pub const MANIFEST: &str = "manifest.json";

#[derive(Debug, Clone, Serialize)]
pub struct Manifest<'a> {
    pub host: &'a str,
    pub users: Vec<ManifestUser<'a>>,
    pub dirs: Vec<ManifestDir<'a>>,
    pub files: Vec<ManifestFile<'a>>,
    pub units: Vec<ManifestUnit<'a>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ManifestUser<'a> {
    pub name: &'a str,
    pub home: &'a str,
    pub component: Component,
}

#[derive(Debug, Clone, Serialize)]
pub struct ManifestDir<'a> {
    pub path: &'a str,
    /// Octal, as written by chmod ("0700").
    pub mode: String,
    pub owner: &'a str,
    pub group: &'a str,
    pub component: Component,
}

#[derive(Debug, Clone, Serialize)]
pub struct ManifestFile<'a> {
    pub path: &'a str,
    pub mode: String,
    pub owner: &'a str,
    pub group: &'a str,
    pub sha256: String,
    pub size: usize,
    pub secret: bool,
    pub component: Component,
}

#[derive(Debug, Clone, Serialize)]
pub struct ManifestUnit<'a> {
    pub name: &'a str,
    pub component: Component,
    pub watches: &'a [String],
}

pub fn manifest(h: &DesiredHost) -> Manifest<'_> {
    Manifest {
        host: &h.host,
        users: h.users.iter().map(|u| ManifestUser { name: &u.name, home: &u.home, component: u.component }).collect(),
        dirs: h
            .dirs
            .iter()
            .map(|d| ManifestDir {
                path: &d.path,
                mode: format!("{:04o}", d.mode),
                owner: &d.owner,
                group: &d.group,
                component: d.component,
            })
            .collect(),
        files: h
            .files
            .iter()
            .map(|f| ManifestFile {
                path: &f.path,
                mode: format!("{:04o}", f.mode),
                owner: &f.owner,
                group: &f.group,
                sha256: f.sha256_hex(),
                size: f.content.len(),
                secret: f.secret,
                component: f.component,
            })
            .collect(),
        units: h
            .units
            .iter()
            .map(|u| ManifestUnit { name: &u.name, component: u.component, watches: &u.watches })
            .collect(),
    }
}

/// Per-host counts, for the summary.
#[derive(Debug, Clone, Serialize)]
pub struct HostSummary {
    pub host: String,
    pub files: usize,
    pub secrets: usize,
    pub dirs: usize,
    pub units: Vec<String>,
}

/// Writes `r` under `out`. `out` must be empty, missing, or an earlier render's output
/// (which is replaced). Files keep their rendered mode, secrets 0600 whatever happens;
/// directories are 0700 (the tree holds keys).
pub fn write_tree(r: &Rendered, out: &Path) -> anyhow::Result<Vec<HostSummary>> {
    prepare(out, r)?;
    let mut summary = Vec::new();
    // Directories already created: creating files costs far more than computing them, so
    // skip the redundant mkdir calls.
    let mut made = std::collections::BTreeSet::new();
    let mut ensure_dir = |p: &Path| -> anyhow::Result<()> {
        if made.insert(p.to_path_buf()) { mkdir(p) } else { Ok(()) }
    };
    for h in &r.desired.hosts {
        let root = out.join(&h.host);
        ensure_dir(&root)?;
        for d in &h.dirs {
            ensure_dir(&under(&root, &d.path)?)?;
        }
        for f in &h.files {
            let dest = under(&root, &f.path)?;
            if let Some(parent) = dest.parent() {
                ensure_dir(parent)?;
            }
            let mode = if f.secret { 0o600 } else { f.mode & 0o644 };
            write_file(&dest, &f.content, mode)?;
        }
        let mut json = serde_json::to_vec_pretty(&manifest(h)).context("cannot encode the manifest")?;
        json.push(b'\n');
        write_file(&root.join(MANIFEST), &json, 0o644)?;
        summary.push(HostSummary {
            host: h.host.clone(),
            files: h.files.len(),
            secrets: h.files.iter().filter(|f| f.secret).count(),
            dirs: h.dirs.len(),
            units: h.units.iter().map(|u| u.name.clone()).collect(),
        });
    }
    let hosts: Vec<&str> = r.desired.hosts.iter().map(|h| h.host.as_str()).collect();
    write_file(&out.join(MARKER), format!("{}\n", hosts.join("\n")).as_bytes(), 0o644)?;
    Ok(summary)
}

/// Checks `out` may be written, and removes what an earlier render left there.
fn prepare(out: &Path, r: &Rendered) -> anyhow::Result<()> {
    if !out.exists() {
        return mkdir(out);
    }
    if !out.is_dir() {
        bail!("--out {}: exists and is not a directory", out.display());
    }
    let marker = out.join(MARKER);
    let mut entries: Vec<PathBuf> = fs::read_dir(out)
        .with_context(|| format!("cannot read {}", out.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .with_context(|| format!("cannot read {}", out.display()))?;
    if entries.is_empty() {
        return Ok(());
    }
    if !marker.exists() {
        bail!(
            "--out {}: not empty and not the output of an earlier `provision render`; \
             give an empty or new directory",
            out.display()
        );
    }
    let previous = fs::read_to_string(&marker).with_context(|| format!("cannot read {}", marker.display()))?;
    let ours: Vec<&str> = previous.lines().chain(r.desired.hosts.iter().map(|h| h.host.as_str())).collect();
    entries.sort();
    for e in entries {
        let name = e.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if name == MARKER {
            continue;
        }
        if !e.is_dir() || !ours.contains(&name.as_str()) {
            bail!("--out {}: {} was not written by `provision render`; remove it or pick another directory", out.display(), e.display());
        }
        fs::remove_dir_all(&e).with_context(|| format!("cannot remove the earlier render {}", e.display()))?;
    }
    fs::remove_file(&marker).with_context(|| format!("cannot remove {}", marker.display()))
}

/// `root` joined with the absolute host path `p`, refusing anything that could leave `root`.
fn under(root: &Path, p: &str) -> anyhow::Result<PathBuf> {
    let rel = Path::new(p).strip_prefix("/").with_context(|| format!("{p} is not an absolute path"))?;
    if rel.components().any(|c| !matches!(c, PathPart::Normal(_))) {
        bail!("{p}: only plain path components are allowed");
    }
    Ok(root.join(rel))
}

fn mkdir(p: &Path) -> anyhow::Result<()> {
    fs::DirBuilder::new().recursive(true).mode(0o700).create(p).with_context(|| format!("cannot create {}", p.display()))
}

fn write_file(dest: &Path, content: &[u8], mode: u32) -> anyhow::Result<()> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(dest)
        .with_context(|| format!("cannot create {}", dest.display()))?;
    f.write_all(content).with_context(|| format!("cannot write {}", dest.display()))?;
    // The umask may have taken bits away from a non-secret file; set the intended mode.
    fs::set_permissions(dest, fs::Permissions::from_mode(mode)).with_context(|| format!("cannot chmod {}", dest.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_under_the_host_root() {
        let root = Path::new("/out/h");
        assert_eq!(under(root, "/etc/kubernetes/a").unwrap(), PathBuf::from("/out/h/etc/kubernetes/a"));
        assert!(under(root, "/etc/../../x").is_err());
        assert!(under(root, "relative").is_err());
    }
}
