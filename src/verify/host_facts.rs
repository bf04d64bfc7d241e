//! What is really running and really on disk on one host, read over SSH in two round
//! trips: (1) each known unit's state and its main process's command line, read from
//! /proc/<MainPID>/cmdline; (2) type, mode and owner of every file the checks look at
//! (canonical paths, the PKI directories, every absolute path a running daemon's flags
//! name) and the content of the YAML configs and CA certificates the CIS checks parse.
//! Private keys and kubeconfigs are stat'ed, never read; the encryption config is read
//! (CIS 1.2.28 needs its provider order) and its keys are blanked before it is kept.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::cis::{FileKind, FileView, HostView};
use crate::inventory::{Host, Inventory, KubernetesSource, Role};
use crate::pki::runs_kubelet;
use crate::render::paths;
use crate::ssh::Session;
use crate::ssh::shell::quote;

/// The units provision installs, and the process each one runs.
pub const UNITS: [(&str, &str); 7] = [
    ("etcd.service", crate::cis::ETCD),
    ("kube-apiserver.service", crate::cis::APISERVER),
    ("kube-controller-manager.service", crate::cis::CONTROLLER_MANAGER),
    ("kube-scheduler.service", crate::cis::SCHEDULER),
    ("kubelet.service", crate::cis::KUBELET),
    ("kube-proxy.service", crate::cis::KUBE_PROXY),
    // The runtime tier's daemon (no CIS process checks of its own).
    (crate::render::runtime::CONTAINERD_UNIT, "containerd"),
];

pub fn unit_of(process: &str) -> Option<&'static str> {
    UNITS.iter().find(|(_, p)| *p == process).map(|(u, _)| *u)
}

/// The units render installs on `host` (same rule as render: roles, and no Kubernetes
/// tier when artifacts.kubernetes = "skip").
pub fn expected_units(inv: &Inventory, host: &Host) -> Vec<&'static str> {
    let mut units = Vec::new();
    if host.has(Role::Etcd) {
        units.push("etcd.service");
    }
    if inv.artifacts.kubernetes != KubernetesSource::Skip {
        if host.has(Role::ControlPlane) {
            units.extend(["kube-apiserver.service", "kube-controller-manager.service", "kube-scheduler.service"]);
        }
        if runs_kubelet(host) {
            units.extend(["kubelet.service", "kube-proxy.service"]);
        }
    }
    // containerd (a daemon); the kernel and pod-route units are oneshots, judged by
    // runtime.pods through what they set up.
    if runs_kubelet(host) && inv.artifacts.runtime_source() != crate::inventory::RuntimeSource::Skip {
        units.push(crate::render::runtime::CONTAINERD_UNIT);
    }
    units
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitState {
    /// systemd's ActiveState: active, inactive, failed, activating, ...
    pub active: String,
    pub main_pid: u32,
}

#[derive(Debug, Clone, Default)]
pub struct HostFacts {
    pub host: String,
    pub units: BTreeMap<String, UnitState>,
    /// Unit -> argv of its main process.
    pub argv: BTreeMap<String, Vec<String>>,
    pub files: BTreeMap<String, FileView>,
}

impl HostFacts {
    /// The neutral view the CIS checks read (same type render's output is checked with).
    pub fn view(&self) -> anyhow::Result<HostView> {
        let mut view = HostView::new(&self.host);
        for argv in self.argv.values() {
            view.add_process(argv)?;
        }
        view.files = self.files.clone();
        Ok(view)
    }

    pub fn flags(&self, unit: &str) -> Option<Vec<(String, String)>> {
        self.argv.get(unit).map(|a| crate::cis::view::parse_args(a.get(1..).unwrap_or_default()))
    }
}

/// Round 1: state and command line of every known unit.
pub fn units_script() -> String {
    let units: Vec<String> = UNITS.iter().map(|(u, _)| quote(u)).collect();
    format!(
        r#"emit() {{
  if [ -n "$id" ]; then
    printf 'unit\t%s\t%s\t%s\n' "$id" "${{st:-unknown}}" "${{pid:-0}}"
    if [ "${{pid:-0}}" -gt 0 ] 2>/dev/null && [ -r "/proc/$pid/cmdline" ]; then
      printf 'argv\t%s\t' "$id"; base64 -w0 < "/proc/$pid/cmdline"; printf '\n'
    fi
  fi
  id=; st=; pid=0
}}
id=; st=; pid=0
{{ LC_ALL=C systemctl show -p Id -p ActiveState -p MainPID -- {units} 2>/dev/null; echo; }} | {{
  while IFS= read -r line; do
    case $line in
      Id=*) id=${{line#Id=}} ;;
      ActiveState=*) st=${{line#ActiveState=}} ;;
      MainPID=*) pid=${{line#MainPID=}} ;;
      '') emit ;;
    esac
  done
  emit
}}
"#,
        units = units.join(" ")
    )
}

pub fn parse_units(host: &str, stdout: &str) -> anyhow::Result<HostFacts> {
    let mut facts = HostFacts { host: host.to_string(), ..Default::default() };
    for line in stdout.lines() {
        let fields: Vec<&str> = line.split('\t').collect();
        match fields.as_slice() {
            ["unit", id, state, pid] => {
                let main_pid = pid.trim().parse().unwrap_or(0);
                facts.units.insert(id.to_string(), UnitState { active: state.to_string(), main_pid });
            }
            ["argv", id, b64] => {
                let raw =
                    STANDARD.decode(b64.trim()).with_context(|| format!("{host}: {id}: command line is not base64"))?;
                let argv: Vec<String> = raw
                    .split(|&b| b == 0)
                    .filter(|a| !a.is_empty())
                    .map(|a| String::from_utf8_lossy(a).into_owned())
                    .collect();
                if !argv.is_empty() {
                    facts.argv.insert(id.to_string(), argv);
                }
            }
            _ => {}
        }
    }
    if facts.units.is_empty() {
        bail!("{host}: systemctl reported no unit (is systemd running on this host?)");
    }
    Ok(facts)
}

/// What round 2 looks at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileQuery {
    /// Stat'ed themselves (directories are not descended).
    pub paths: BTreeSet<String>,
    /// Listed one level deep.
    pub shallow: BTreeSet<String>,
    /// Listed recursively.
    pub deep: BTreeSet<String>,
    /// Read (small configs and CA certificates).
    pub contents: BTreeSet<String>,
}

/// The paths the checks need on a host running what `facts` saw.
pub fn file_query(inv: &Inventory, facts: &HostFacts) -> FileQuery {
    let mut q = FileQuery::default();
    for (unit, _) in UNITS {
        q.paths.insert(paths::unit_path(unit));
    }
    q.paths.insert(inv.etcd.data_dir.clone());
    for dir in [paths::KUBERNETES_DIR, paths::ETCD_DIR, paths::KUBELET_DIR, paths::KUBE_PROXY_DIR] {
        q.shallow.insert(dir.to_string());
    }
    for dir in [paths::PKI_DIR, paths::ETCD_PKI_DIR, paths::KUBELET_PKI_DIR, paths::CNI_CONF_DIR] {
        q.deep.insert(dir.to_string());
    }
    for p in [
        paths::CA_CRT,
        paths::ETCD_CA_CRT,
        paths::ADMISSION_CONFIG,
        paths::EVENT_RATE_LIMIT_CONFIG,
        paths::ENCRYPTION_CONFIG,
        paths::SCHEDULER_CONFIG,
        paths::KUBELET_CONFIG,
        paths::KUBE_PROXY_CONFIG,
    ] {
        q.contents.insert(p.to_string());
    }
    for unit in facts.argv.keys() {
        for (_, value) in facts.flags(unit).unwrap_or_default() {
            if value.starts_with('/') && !value.contains('\n') {
                if is_readable_config(&value) {
                    q.contents.insert(value.clone());
                }
                q.paths.insert(value);
            }
        }
    }
    q
}

/// Configs and certificates may be read; keys, kubeconfigs and anything else are not.
fn is_readable_config(path: &str) -> bool {
    [".yaml", ".yml", ".crt", ".pem"].iter().any(|ext| path.ends_with(ext)) && !path.ends_with("-key.pem")
}

/// Round 2: `find -printf` records (S, type, mode, user, group, path), then
/// (C, path, base64 content), all NUL-separated so any path is safe.
pub fn files_script(q: &FileQuery) -> String {
    let list = |s: &BTreeSet<String>| s.iter().map(|p| quote(p)).collect::<Vec<_>>().join(" ");
    let fmt = r"'S\0%y\0%m\0%u\0%g\0%p\0'";
    let mut script = String::from("LC_ALL=C; export LC_ALL\n");
    if !q.paths.is_empty() {
        script.push_str(&format!("find -L {} -maxdepth 0 -printf {fmt} 2>/dev/null\n", list(&q.paths)));
    }
    if !q.shallow.is_empty() {
        script.push_str(&format!("find -L {} -maxdepth 1 -printf {fmt} 2>/dev/null\n", list(&q.shallow)));
    }
    if !q.deep.is_empty() {
        script.push_str(&format!("find -L {} -printf {fmt} 2>/dev/null\n", list(&q.deep)));
    }
    if !q.contents.is_empty() {
        script.push_str(&format!(
            "for f in {}; do if [ -f \"$f\" ] && [ -r \"$f\" ]; then printf 'C\\0%s\\0' \"$f\"; head -c 1048576 -- \"$f\" | base64 -w0; printf '\\0'; fi; done\n",
            list(&q.contents)
        ));
    }
    script.push_str("exit 0\n");
    script
}

pub fn parse_files(host: &str, stdout: &[u8], facts: &mut HostFacts) -> anyhow::Result<()> {
    let fields: Vec<&[u8]> = stdout.split(|&b| b == 0).collect();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let mut i = 0;
    let mut contents = BTreeMap::new();
    while i < fields.len() {
        match fields[i] {
            b"S" if i + 5 < fields.len() => {
                let (kind, mode, user, group, path) = (
                    text(fields[i + 1]),
                    text(fields[i + 2]),
                    text(fields[i + 3]),
                    text(fields[i + 4]),
                    text(fields[i + 5]),
                );
                i += 6;
                let kind = match kind.as_str() {
                    "f" => FileKind::File,
                    "d" => FileKind::Dir,
                    _ => continue, // sockets, broken links: not files the checks judge
                };
                let mode = u32::from_str_radix(&mode, 8).with_context(|| format!("{host}: {path}: mode {mode:?}"))?;
                facts.files.insert(path, FileView { kind, mode, owner: user, group, content: None });
            }
            b"C" if i + 2 < fields.len() => {
                let path = text(fields[i + 1]);
                let content =
                    STANDARD.decode(fields[i + 2]).with_context(|| format!("{host}: {path}: content is not base64"))?;
                contents.insert(path, content);
                i += 3;
            }
            b"" => i += 1,
            other => bail!("{host}: unexpected output from the file listing: {:?}", String::from_utf8_lossy(other)),
        }
    }
    for (path, content) in contents {
        let content = if path == paths::ENCRYPTION_CONFIG || looks_like_encryption_config(&content) {
            redact_secrets(&content)
        } else {
            content
        };
        if let Some(f) = facts.files.get_mut(&path) {
            f.content = Some(content);
        }
    }
    Ok(())
}

fn looks_like_encryption_config(content: &[u8]) -> bool {
    String::from_utf8_lossy(content).contains("EncryptionConfiguration")
}

/// Blanks every `secret:` value (encryption keys), keeping the structure the checks read.
pub fn redact_secrets(content: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(content);
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let trimmed = line.trim_start();
        let body = trimmed.strip_prefix("- ").unwrap_or(trimmed);
        if let Some(rest) = body.strip_prefix("secret:")
            && !rest.trim().is_empty()
        {
            let indent = &line[..line.len() - trimmed.len()];
            let dash = if trimmed.starts_with("- ") { "- " } else { "" };
            out.push_str(&format!("{indent}{dash}secret: REDACTED\n"));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    out.into_bytes()
}

/// Both round trips.
pub async fn gather(session: &Session, inv: &Inventory) -> anyhow::Result<HostFacts> {
    let host = session.host().to_string();
    let out = session.exec_checked(&units_script(), None).await?;
    let mut facts = parse_units(&host, &out.stdout_text())?;
    let query = file_query(inv, &facts);
    let out = session.exec_checked(&files_script(&query), None).await?;
    parse_files(&host, &out.stdout, &mut facts)?;
    Ok(facts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_and_command_lines_parse() {
        let argv = STANDARD.encode(b"/usr/bin/etcd\0--name=node1\0--client-cert-auth=true\0");
        let out = format!(
            "unit\tetcd.service\tactive\t812\nargv\tetcd.service\t{argv}\nunit\tkubelet.service\tinactive\t0\n"
        );
        let f = parse_units("node1", &out).unwrap();
        assert_eq!(f.units["etcd.service"], UnitState { active: "active".into(), main_pid: 812 });
        assert_eq!(f.units["kubelet.service"].active, "inactive");
        assert_eq!(f.argv["etcd.service"], vec!["/usr/bin/etcd", "--name=node1", "--client-cert-auth=true"]);
        let view = f.view().unwrap();
        assert_eq!(view.flag("etcd", "client-cert-auth"), Some("true"));
        assert!(parse_units("node1", "").is_err());
    }

    #[test]
    fn file_records_and_contents_parse() {
        let mut f = HostFacts { host: "h".into(), ..Default::default() };
        let mut out = Vec::new();
        for rec in [
            ["S", "d", "700", "etcd", "etcd", "/var/lib/etcd"],
            ["S", "f", "600", "root", "root", paths::ENCRYPTION_CONFIG],
        ] {
            for field in rec {
                out.extend_from_slice(field.as_bytes());
                out.push(0);
            }
        }
        let config = b"kind: EncryptionConfiguration\n      - aescbc:\n          keys:\n            - name: key1\n              secret: c2VjcmV0\n";
        out.extend_from_slice(format!("C\0{}\0{}\0", paths::ENCRYPTION_CONFIG, STANDARD.encode(config)).as_bytes());
        parse_files("h", &out, &mut f).unwrap();
        assert_eq!(f.files["/var/lib/etcd"].kind, FileKind::Dir);
        assert_eq!(f.files["/var/lib/etcd"].mode, 0o700);
        let kept = String::from_utf8(f.files[paths::ENCRYPTION_CONFIG].content.clone().unwrap()).unwrap();
        assert!(
            kept.contains("- aescbc:") && kept.contains("secret: REDACTED") && !kept.contains("c2VjcmV0"),
            "{kept}"
        );
        assert!(parse_files("h", b"garbage\0", &mut f).is_err());
    }

    #[test]
    fn the_query_follows_the_flags_and_never_reads_keys() {
        let mut facts = HostFacts::default();
        facts.argv.insert(
            "kube-apiserver.service".into(),
            [
                "/usr/local/bin/kube-apiserver",
                "--tls-private-key-file=/etc/kubernetes/pki/apiserver.key",
                "--encryption-provider-config=/srv/enc.yaml",
                "--secure-port=6443",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        );
        let inv: Inventory = toml::from_str(
            "[cluster]\nname='x'\nkubernetes_version='1.34.2'\netcd_version='3.5.21'\napi_endpoint='10.0.0.1'\nservice_cidr='10.32.0.0/24'\npod_cidr='10.200.0.0/16'\n",
        )
        .unwrap();
        let q = file_query(&inv, &facts);
        assert!(q.paths.contains("/etc/kubernetes/pki/apiserver.key"));
        assert!(!q.contents.contains("/etc/kubernetes/pki/apiserver.key"));
        assert!(q.contents.contains("/srv/enc.yaml"));
        assert!(q.paths.contains("/var/lib/etcd"));
        let script = files_script(&q);
        assert!(script.contains("find -L") && script.contains("'/srv/enc.yaml'"), "{script}");
    }
}
