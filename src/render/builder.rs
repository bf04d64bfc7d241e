//! Collects one host's files, directories, users and units, refusing two different
//! contents for one path, and hands back a DesiredHost in a stable (sorted) order so
//! that two renders of the same state are byte-identical.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{Context as _, bail};

use super::paths;
use crate::desired::{Component, DesiredHost, ManagedDir, ManagedFile, ManagedUnit, SystemUser};
use crate::pki::{CertId, Pki};

/// Directories the OS provides; a managed file may live directly in one of them.
/// (modules-load.d and sysctl.d come with systemd and kmod: never created nor removed.)
const OS_DIRS: &[&str] = &[
    "/etc",
    "/etc/systemd/system",
    "/etc/modules-load.d",
    "/etc/sysctl.d",
    "/var/lib",
    "/var/log",
    "/var/backups",
    "/usr/local/bin",
    "/usr/local/sbin",
];

pub struct HostBuilder {
    host: String,
    files: BTreeMap<String, ManagedFile>,
    dirs: BTreeMap<String, ManagedDir>,
    users: BTreeMap<String, SystemUser>,
    units: BTreeMap<String, ManagedUnit>,
}

/// Owner, group and mode of a file or directory.
#[derive(Clone, Copy)]
pub struct Perm {
    pub owner: &'static str,
    pub group: &'static str,
    pub mode: u32,
}

pub const ROOT_0644: Perm = Perm { owner: "root", group: "root", mode: 0o644 };
pub const ROOT_0600: Perm = Perm { owner: "root", group: "root", mode: 0o600 };
pub const ROOT_0700: Perm = Perm { owner: "root", group: "root", mode: 0o700 };
pub const ROOT_0755: Perm = Perm { owner: "root", group: "root", mode: 0o755 };
pub const ETCD_0600: Perm = Perm { owner: "etcd", group: "etcd", mode: 0o600 };
pub const ETCD_0700: Perm = Perm { owner: "etcd", group: "etcd", mode: 0o700 };

impl HostBuilder {
    pub fn new(host: &str) -> HostBuilder {
        HostBuilder {
            host: host.to_string(),
            files: BTreeMap::new(),
            dirs: BTreeMap::new(),
            users: BTreeMap::new(),
            units: BTreeMap::new(),
        }
    }

    /// Adds a file. The same path added twice with the same content and permissions is
    /// kept once (under the earliest component, which apply installs first); anything
    /// else is a bug in render and an error.
    pub fn file(&mut self, path: &str, perm: Perm, content: Vec<u8>, secret: bool, component: Component) -> anyhow::Result<()> {
        let new = ManagedFile {
            path: path.to_string(),
            mode: perm.mode,
            owner: perm.owner.to_string(),
            group: perm.group.to_string(),
            content: Arc::new(content),
            secret,
            component,
            only_while_missing: None,
        };
        match self.files.get_mut(path) {
            None => {
                self.files.insert(path.to_string(), new);
            }
            Some(old) => {
                let same = old.content == new.content
                    && old.mode == new.mode
                    && old.owner == new.owner
                    && old.group == new.group
                    && old.secret == new.secret;
                if !same {
                    bail!("host {}: two different contents rendered for {path}", self.host);
                }
                old.component = old.component.min(component);
            }
        }
        Ok(())
    }

    pub fn text(&mut self, path: &str, perm: Perm, content: String, component: Component) -> anyhow::Result<()> {
        self.file(path, perm, content.into_bytes(), false, component)
    }

    /// A file written only while `guard` is missing on the host (see
    /// `ManagedFile::only_while_missing`): e.g. etcd's bootstrap flags, guarded by its data.
    pub fn text_until(
        &mut self,
        path: &str,
        perm: Perm,
        content: String,
        component: Component,
        guard: &str,
    ) -> anyhow::Result<()> {
        self.text(path, perm, content, component)?;
        if let Some(f) = self.files.get_mut(path) {
            f.only_while_missing = Some(guard.to_string());
        }
        Ok(())
    }

    pub fn secret(&mut self, path: &str, perm: Perm, content: &str, component: Component) -> anyhow::Result<()> {
        self.file(path, perm, content.as_bytes().to_vec(), true, component)
    }

    pub fn dir(&mut self, path: &str, perm: Perm, component: Component) {
        let new = ManagedDir {
            path: path.to_string(),
            mode: perm.mode,
            owner: perm.owner.to_string(),
            group: perm.group.to_string(),
            component,
        };
        self.dirs
            .entry(path.to_string())
            .and_modify(|d| d.component = d.component.min(component))
            .or_insert(new);
    }

    pub fn user(&mut self, name: &str, home: &str, component: Component) {
        self.users.entry(name.to_string()).or_insert(SystemUser {
            name: name.to_string(),
            home: home.to_string(),
            component,
        });
    }

    /// Adds the unit file of `name` without managing the unit itself (a service that only
    /// a timer starts). Unit files carry no secrets, but CIS 1.1.1-1.1.8 / 4.1.1 want them
    /// 0600 root:root.
    pub fn unit_file(&mut self, name: &str, unit_text: String, component: Component) -> anyhow::Result<()> {
        self.text(&paths::unit_path(name), ROOT_0600, unit_text, component)
    }

    /// Adds unit `name` whose rendered unit file is `unit_text`; the unit is restarted
    /// when its unit file or any of `watches` changes.
    pub fn unit(&mut self, name: &str, unit_text: String, component: Component, watches: &[&str]) -> anyhow::Result<()> {
        let path = paths::unit_path(name);
        self.unit_file(name, unit_text, component)?;
        let mut w: Vec<String> = watches.iter().map(|s| s.to_string()).collect();
        w.push(path);
        w.sort();
        w.dedup();
        self.units.insert(
            name.to_string(),
            ManagedUnit { name: name.to_string(), component, watches: w },
        );
        Ok(())
    }

    /// Places the certificate (and, when `key` is given, the private key) of `id`.
    pub fn cert(
        &mut self,
        pki: &Pki,
        id: &CertId,
        crt: &str,
        crt_perm: Perm,
        key: Option<(&str, Perm)>,
        component: Component,
    ) -> anyhow::Result<()> {
        let issued = pki.get(id).with_context(|| format!("the PKI holds no {} certificate", describe(id)))?;
        self.text(crt, crt_perm, issued.cert_pem.clone(), component)?;
        if let Some((path, perm)) = key {
            self.secret(path, perm, issued.key_pem.as_str(), component)?;
        }
        Ok(())
    }

    /// The finished host. Fails if a file lives in a directory nobody creates.
    pub fn finish(self) -> anyhow::Result<DesiredHost> {
        for f in self.files.keys() {
            let parent = match f.rsplit_once('/') {
                Some((p, _)) if !p.is_empty() => p,
                _ => "/",
            };
            if !self.dirs.contains_key(parent) && !OS_DIRS.contains(&parent) {
                bail!("host {}: {f} is rendered but its directory {parent} is not managed", self.host);
            }
        }
        for (name, unit) in &self.units {
            for w in &unit.watches {
                if !self.files.contains_key(w) {
                    bail!("host {}: unit {name} watches {w}, which is not rendered for this host", self.host);
                }
            }
        }
        Ok(DesiredHost {
            host: self.host,
            users: self.users.into_values().collect(),
            dirs: self.dirs.into_values().collect(),
            files: self.files.into_values().collect(),
            units: self.units.into_values().collect(),
        })
    }
}

pub fn describe(id: &CertId) -> String {
    match id {
        CertId::EtcdServer(h) => format!("etcd server ({h})"),
        CertId::EtcdPeer(h) => format!("etcd peer ({h})"),
        CertId::Kubelet(h) => format!("kubelet ({h})"),
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_path_twice_is_merged_or_refused() {
        let mut b = HostBuilder::new("n1");
        b.dir("/etc/kubernetes", ROOT_0755, Component::Base);
        b.text("/etc/kubernetes/a", ROOT_0644, "x".into(), Component::Kubelet).unwrap();
        b.text("/etc/kubernetes/a", ROOT_0644, "x".into(), Component::Base).unwrap();
        let err = b.text("/etc/kubernetes/a", ROOT_0644, "y".into(), Component::Base).unwrap_err();
        assert!(err.to_string().contains("/etc/kubernetes/a"));
        let h = b.finish().unwrap();
        assert_eq!(h.files.len(), 1);
        assert_eq!(h.files[0].component, Component::Base);
    }

    #[test]
    fn file_in_unmanaged_dir_is_refused() {
        let mut b = HostBuilder::new("n1");
        b.text("/opt/thing/x", ROOT_0644, "x".into(), Component::Base).unwrap();
        assert!(b.finish().unwrap_err().to_string().contains("/opt/thing"));
    }

    #[test]
    fn unit_watching_missing_file_is_refused() {
        let mut b = HostBuilder::new("n1");
        b.unit("x.service", "[Unit]\n".into(), Component::Etcd, &["/etc/nope"]).unwrap();
        assert!(b.finish().unwrap_err().to_string().contains("/etc/nope"));
    }
}
