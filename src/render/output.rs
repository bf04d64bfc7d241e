//! Writing a render to a directory on the operator's machine: per host, the exact tree
//! apply installs (DIR/<host>/<absolute path>), plus DIR/<host>/manifest.json with every
//! file's mode, owner, group, sha256 and component. Deterministic: sorted, no timestamps.

use std::collections::BTreeSet;
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

/// Writes `r` under `out`. `out` must be empty, missing, or an earlier render's output,
/// which is brought up to date: a file whose bytes and mode already match is left alone
/// (a warm re-render writes nothing), a changed one is replaced atomically (temp file +
/// rename), and what the previous render's manifest listed that this render no longer
/// holds is removed; nothing else is ever deleted. `out` must be a directory of ours (no
/// link, nobody else can write to it: see crate::trust), and so must every host tree in
/// it. Secrets are 0600 whatever happens; directories are 0700 (the tree holds keys).
pub fn write_tree(r: &Rendered, out: &Path) -> anyhow::Result<Vec<HostSummary>> {
    crate::trust::owned_dir(out).with_context(|| format!("--out {}", out.display()))?;
    let kept_hosts = prepare(out, r)?;
    let mut summary = Vec::new();
    for h in &r.desired.hosts {
        let root = out.join(&h.host);
        let previous = Previous::read(&root)?;
        let mut existing = Existing::scan(&root)?;
        existing.ensure_dir(&root)?;
        for d in &h.dirs {
            existing.ensure_dir(&under(&root, &d.path)?)?;
        }
        for f in &h.files {
            let dest = under(&root, &f.path)?;
            if let Some(parent) = dest.parent() {
                existing.ensure_dir(parent)?;
            }
            let mode = if f.secret { 0o600 } else { f.mode & 0o644 };
            let existed = existing.claim_file(&dest);
            sync_file(&dest, &f.content, mode, existed)?;
        }
        let mut json = serde_json::to_vec_pretty(&manifest(h)).context("cannot encode the manifest")?;
        json.push(b'\n');
        let manifest_path = root.join(MANIFEST);
        let existed = existing.claim_file(&manifest_path);
        sync_file(&manifest_path, &json, 0o644, existed)?;
        existing.remove_leftovers(&previous)?;
        summary.push(HostSummary {
            host: h.host.clone(),
            files: h.files.len(),
            secrets: h.files.iter().filter(|f| f.secret).count(),
            dirs: h.dirs.len(),
            units: h.units.iter().map(|u| u.name.clone()).collect(),
        });
    }
    let mut hosts: Vec<&str> = r.desired.hosts.iter().map(|h| h.host.as_str()).collect();
    hosts.extend(kept_hosts.iter().map(String::as_str));
    let marker = out.join(MARKER);
    let existed = fs::symlink_metadata(&marker).is_ok();
    sync_file(&marker, format!("{}\n", hosts.join("\n")).as_bytes(), 0o644, existed)?;
    Ok(summary)
}

/// What the previous render's manifest of one host listed: the only files and
/// directories a render may delete.
#[derive(Default)]
struct Previous {
    files: BTreeSet<PathBuf>,
    dirs: BTreeSet<PathBuf>,
}

impl Previous {
    fn read(root: &Path) -> anyhow::Result<Previous> {
        let path = root.join(MANIFEST);
        let Some(bytes) = crate::trust::read_ours(&path)? else {
            return Ok(Previous::default());
        };
        let value: serde_json::Value = serde_json::from_slice(&bytes).with_context(|| {
            format!(
                "{} is not a manifest written by `provision render`, so what it may replace is unknown: \
                 remove {} and render again",
                path.display(),
                root.display()
            )
        })?;
        let paths = |key: &str| -> anyhow::Result<BTreeSet<PathBuf>> {
            let list = value[key].as_array().map(Vec::as_slice).unwrap_or_default();
            list.iter().filter_map(|e| e["path"].as_str()).map(|p| under(root, p)).collect()
        };
        let mut previous = Previous { files: paths("files")?, dirs: paths("dirs")? };
        // The parents of listed files were made by the render too.
        let parents: Vec<PathBuf> = previous
            .files
            .iter()
            .flat_map(|f| f.ancestors().skip(1).take_while(|a| a.starts_with(root) && *a != root))
            .map(Path::to_path_buf)
            .collect();
        previous.dirs.extend(parents);
        previous.files.insert(path);
        Ok(previous)
    }
}

/// What an earlier render left under one host's root (read with lstat: a link is an
/// entry, never followed): what this render keeps is ticked off.
#[derive(Default)]
struct Existing {
    files: BTreeSet<PathBuf>,
    dirs: BTreeSet<PathBuf>,
    kept_dirs: BTreeSet<PathBuf>,
}

impl Existing {
    fn scan(root: &Path) -> anyhow::Result<Existing> {
        let mut e = Existing::default();
        if fs::symlink_metadata(root).is_err() {
            return Ok(e);
        }
        let mut stack = vec![root.to_path_buf()];
        while let Some(dir) = stack.pop() {
            e.dirs.insert(dir.clone());
            for entry in fs::read_dir(&dir).with_context(|| format!("cannot read {}", dir.display()))? {
                let entry = entry.with_context(|| format!("cannot read {}", dir.display()))?;
                let kind = entry.file_type().with_context(|| format!("cannot stat {}", entry.path().display()))?;
                if kind.is_dir() {
                    stack.push(entry.path());
                } else {
                    e.files.insert(entry.path());
                }
            }
        }
        Ok(e)
    }

    /// `p` and its ancestors stay; `p` is created unless it was there or already made
    /// this run (creating files costs far more than computing them, so no redundant mkdir).
    fn ensure_dir(&mut self, p: &Path) -> anyhow::Result<()> {
        let first_time = !self.kept_dirs.contains(p);
        for a in p.ancestors() {
            if !self.kept_dirs.insert(a.to_path_buf()) {
                break;
            }
        }
        if first_time && !self.dirs.contains(p) { mkdir(p) } else { Ok(()) }
    }

    /// True when `p` existed (and is now claimed by this render).
    fn claim_file(&mut self, p: &Path) -> bool {
        self.files.remove(p)
    }

    /// Removes what the previous render listed and this one did not write; a file the
    /// render never wrote is left alone (and so is the directory holding it).
    fn remove_leftovers(self, previous: &Previous) -> anyhow::Result<()> {
        for f in self.files.iter().filter(|f| previous.files.contains(*f)) {
            fs::remove_file(f).with_context(|| format!("cannot remove the stale {}", f.display()))?;
        }
        // Deepest first, so a stale parent is empty when its turn comes.
        for d in self.dirs.iter().rev().filter(|d| !self.kept_dirs.contains(*d) && previous.dirs.contains(*d)) {
            remove_dir_if_empty(d)?;
        }
        Ok(())
    }
}

fn remove_dir_if_empty(d: &Path) -> anyhow::Result<()> {
    match fs::remove_dir(d) {
        Ok(()) => Ok(()),
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOTEMPTY) | Some(libc::EEXIST)) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("cannot remove the stale {}", d.display())),
    }
}

/// Checks `out` may be written, and removes what an earlier render wrote for the hosts
/// it had and this one has not (per their manifests). Returns those earlier hosts whose
/// tree still holds files the render did not write (kept, and still listed as ours).
fn prepare(out: &Path, r: &Rendered) -> anyhow::Result<Vec<String>> {
    let marker = out.join(MARKER);
    let mut entries: Vec<PathBuf> = fs::read_dir(out)
        .with_context(|| format!("cannot read {}", out.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .with_context(|| format!("cannot read {}", out.display()))?;
    if entries.is_empty() {
        return Ok(Vec::new());
    }
    let Some(previous) = crate::trust::read_ours(&marker)? else {
        bail!(
            "--out {}: not empty and not the output of an earlier `provision render`; \
             give an empty or new directory",
            out.display()
        );
    };
    let previous = String::from_utf8_lossy(&previous).into_owned();
    let current: Vec<&str> = r.desired.hosts.iter().map(|h| h.host.as_str()).collect();
    let ours: Vec<&str> = previous.lines().chain(current.iter().copied()).collect();
    entries.sort();
    let mut kept = Vec::new();
    for e in entries {
        let name = e.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if name == MARKER {
            continue;
        }
        let meta = fs::symlink_metadata(&e).with_context(|| format!("cannot read {}", e.display()))?;
        if !meta.is_dir() || !ours.contains(&name.as_str()) {
            bail!(
                "--out {}: {} ({}) was not written by `provision render`; remove it or pick another directory",
                out.display(),
                e.display(),
                crate::trust::kind(&meta)
            );
        }
        crate::trust::check_ours(&e, &meta)?;
        if !current.contains(&name.as_str()) {
            let previous = Previous::read(&e)?;
            let mut existing = Existing::scan(&e)?;
            existing.kept_dirs.clear();
            existing.remove_leftovers(&previous)?;
            remove_dir_if_empty(&e)?;
            if fs::symlink_metadata(&e).is_ok() {
                kept.push(name);
            }
        }
    }
    Ok(kept)
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

/// Leaves `dest` alone when it already holds `content` with `mode`; otherwise writes it.
fn sync_file(dest: &Path, content: &[u8], mode: u32, existed: bool) -> anyhow::Result<()> {
    if !existed {
        return create_file(dest, content, mode);
    }
    let same_mode = fs::symlink_metadata(dest).map(|m| m.is_file() && m.permissions().mode() & 0o7777 == mode);
    if matches!(same_mode, Ok(true)) && fs::read(dest).is_ok_and(|old| old == content) {
        return Ok(());
    }
    replace_file(dest, content, mode)
}

/// A new file, created with its mode (a key is never readable by others, not even for a
/// moment). An interrupted write leaves a short file the next render replaces.
fn create_file(dest: &Path, content: &[u8], mode: u32) -> anyhow::Result<()> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(dest)
        .with_context(|| format!("cannot create {}", dest.display()))?;
    f.write_all(content).with_context(|| format!("cannot write {}", dest.display()))?;
    // The umask may have taken bits away from a non-secret file; set the intended mode
    // (on the open file: no second path lookup).
    f.set_permissions(fs::Permissions::from_mode(mode)).with_context(|| format!("cannot chmod {}", dest.display()))
}

/// An existing file replaced atomically (a reader sees the old file or the new one).
fn replace_file(dest: &Path, content: &[u8], mode: u32) -> anyhow::Result<()> {
    crate::fsutil::write_atomic(dest, content, mode)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leftovers_are_only_what_the_previous_manifest_listed() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("h");
        fs::create_dir_all(root.join("etc/a")).unwrap();
        fs::create_dir_all(root.join("etc/mine")).unwrap();
        fs::write(root.join("etc/a/listed"), "x").unwrap();
        fs::write(root.join("etc/mine/notes"), "x").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", root.join("etc/link")).unwrap();
        let manifest =
            r#"{"files": [{"path": "/etc/a/listed"}, {"path": "/etc/link"}], "dirs": [{"path": "/etc/mine"}]}"#;
        fs::write(root.join(MANIFEST), manifest).unwrap();
        let previous = Previous::read(&root).unwrap();
        let mut existing = Existing::scan(&root).unwrap();
        existing.kept_dirs.insert(root.clone());
        existing.remove_leftovers(&previous).unwrap();
        assert!(!root.join("etc/a").exists(), "listed file and its emptied parent removed");
        assert!(fs::symlink_metadata(root.join("etc/link")).is_err(), "a listed link is removed, not followed");
        assert!(fs::metadata("/etc/passwd").is_ok());
        assert_eq!(fs::read_to_string(root.join("etc/mine/notes")).unwrap(), "x", "not listed: kept");
        assert!(!root.join(MANIFEST).exists(), "the old manifest is the render's own");
        // A manifest naming a path outside the host root is refused.
        fs::write(root.join(MANIFEST), r#"{"files": [{"path": "/../../x"}]}"#).unwrap();
        assert!(Previous::read(&root).is_err());
    }

    #[test]
    fn paths_stay_under_the_host_root() {
        let root = Path::new("/out/h");
        assert_eq!(under(root, "/etc/kubernetes/a").unwrap(), PathBuf::from("/out/h/etc/kubernetes/a"));
        assert!(under(root, "/etc/../../x").is_err());
        assert!(under(root, "relative").is_err());
    }
}
