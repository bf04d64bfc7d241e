//! A neutral view of one host for the CIS checks: which daemons run with which flags,
//! and which files and directories exist with which mode, owner and content.
//!
//! Two producers fill it: `HostView::from_desired` (the rendered host: ExecStart of
//! each rendered unit, metadata of each rendered file) and, on real hosts, the verify
//! step (argv from /proc/<pid>/cmdline via `add_process`, and stat over SSH). The checks
//! only ever see this view, so they cannot tell where it came from.

use std::collections::BTreeMap;
use std::fmt;

use anyhow::{Context as _, bail};

use crate::desired::DesiredHost;
use crate::render::paths;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    File,
    Dir,
}

#[derive(Clone, PartialEq, Eq)]
pub struct FileView {
    pub kind: FileKind,
    pub mode: u32,
    pub owner: String,
    pub group: String,
    /// Content when known (files only). May be a secret: never printed.
    pub content: Option<Vec<u8>>,
}

impl fmt::Debug for FileView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileView")
            .field("kind", &self.kind)
            .field("mode", &format_args!("{:04o}", self.mode))
            .field("owner", &self.owner)
            .field("group", &self.group)
            .field("content_len", &self.content.as_ref().map(|c| c.len()))
            .finish()
    }
}

impl FileView {
    pub fn describe(&self) -> String {
        format!("mode {:04o} {}:{}", self.mode, self.owner, self.group)
    }
}

#[derive(Debug, Clone, Default)]
pub struct HostView {
    pub host: String,
    /// Process name (the binary's base name: "kube-apiserver", "etcd") -> its flags in
    /// command-line order, `--name=value` as ("name", "value"), a bare `--name` as
    /// ("name", "true") (as kube-bench reads it).
    pub processes: BTreeMap<String, Vec<(String, String)>>,
    pub files: BTreeMap<String, FileView>,
}

impl HostView {
    pub fn new(host: &str) -> HostView {
        HostView { host: host.to_string(), ..Default::default() }
    }

    /// Records a running process from its argv (argv[0] is the binary).
    pub fn add_process(&mut self, argv: &[String]) -> anyhow::Result<()> {
        let bin = argv.first().context("empty command line")?;
        let name = bin.rsplit('/').next().unwrap_or(bin).to_string();
        self.processes.insert(name, parse_args(&argv[1..]));
        Ok(())
    }

    /// The view of a rendered host: every unit's ExecStart and every file and directory.
    pub fn from_desired(host: &DesiredHost) -> anyhow::Result<HostView> {
        let mut view = HostView::new(&host.host);
        for d in &host.dirs {
            view.files.insert(
                d.path.clone(),
                FileView { kind: FileKind::Dir, mode: d.mode, owner: d.owner.clone(), group: d.group.clone(), content: None },
            );
        }
        for f in &host.files {
            view.files.insert(
                f.path.clone(),
                FileView {
                    kind: FileKind::File,
                    mode: f.mode,
                    owner: f.owner.clone(),
                    group: f.group.clone(),
                    content: Some(f.content.as_ref().clone()),
                },
            );
        }
        for unit in &host.units {
            view.add_process(&rendered_argv(host, &unit.name)?)?;
        }
        Ok(view)
    }

    pub fn runs(&self, process: &str) -> bool {
        self.processes.contains_key(process)
    }

    /// The value of `--name` for `process` (the last occurrence wins, as in pflag).
    pub fn flag(&self, process: &str, name: &str) -> Option<&str> {
        self.processes.get(process)?.iter().rev().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    pub fn file(&self, path: &str) -> Option<&FileView> {
        self.files.get(path)
    }
}

/// The argv of a unit file's ExecStart= (continuation lines joined, systemd's `-@+!:`
/// prefixes removed, double and single quotes honoured).
pub fn exec_start_argv(unit: &str) -> anyhow::Result<Vec<String>> {
    let mut joined = String::new();
    let mut in_exec = false;
    for line in unit.lines() {
        let trimmed = line.trim();
        if !in_exec {
            if let Some(rest) = trimmed.strip_prefix("ExecStart=") {
                in_exec = true;
                joined.push_str(rest);
            } else {
                continue;
            }
        } else {
            joined.push(' ');
            joined.push_str(trimmed);
        }
        if joined.ends_with('\\') {
            joined.pop();
        } else {
            break;
        }
    }
    if !in_exec {
        bail!("no ExecStart= line");
    }
    let mut argv = split_words(&joined)?;
    if let Some(first) = argv.first_mut() {
        *first = first.trim_start_matches(['-', '@', '+', '!', ':']).to_string();
    }
    if argv.first().is_none_or(|a| a.is_empty()) {
        bail!("ExecStart= names no program");
    }
    Ok(argv)
}

/// The argv systemd will start `unit` of a rendered host with: its ExecStart= with the
/// `$VARIABLES` of its rendered drop-ins expanded.
pub fn rendered_argv(host: &DesiredHost, unit: &str) -> anyhow::Result<Vec<String>> {
    let path = paths::unit_path(unit);
    let file = host.file(&path).with_context(|| format!("host {}: unit {unit} has no unit file {path}", host.host))?;
    let text = std::str::from_utf8(&file.content).with_context(|| format!("host {}: {path} is not UTF-8", host.host))?;
    let argv = exec_start_argv(text).with_context(|| format!("host {}: {path}", host.host))?;
    Ok(expand_env(argv, &dropin_environment(host, unit)?))
}

/// `Environment=` assignments of `unit`'s rendered drop-ins (`<unit>.d/*.conf`, in name
/// order, later wins as in systemd), so the view shows the flags the process will get.
fn dropin_environment(host: &DesiredHost, unit: &str) -> anyhow::Result<BTreeMap<String, String>> {
    let prefix = format!("{}.d/", paths::unit_path(unit));
    let mut dropins: Vec<_> =
        host.files.iter().filter(|f| f.path.starts_with(&prefix) && f.path.ends_with(".conf")).collect();
    dropins.sort_by(|a, b| a.path.cmp(&b.path));
    let mut env = BTreeMap::new();
    for f in dropins {
        let what = || format!("host {}: {}", host.host, f.path);
        let text = std::str::from_utf8(&f.content).with_context(what)?;
        for line in text.lines() {
            let Some(rest) = line.trim().strip_prefix("Environment=") else { continue };
            for word in split_words(rest).with_context(what)? {
                if let Some((k, v)) = word.split_once('=') {
                    env.insert(k.to_string(), v.to_string());
                }
            }
        }
    }
    Ok(env)
}

/// systemd's expansion of ExecStart words: `$NAME` alone becomes the value split at
/// whitespace (an unset one: no word), `${NAME}` the value as one word.
fn expand_env(argv: Vec<String>, env: &BTreeMap<String, String>) -> Vec<String> {
    let is_name = |n: &&str| !n.is_empty() && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    let mut out = Vec::with_capacity(argv.len());
    for word in argv {
        if let Some(name) = word.strip_prefix("${").and_then(|w| w.strip_suffix('}')) {
            out.push(env.get(name).cloned().unwrap_or_default());
        } else if let Some(name) = word.strip_prefix('$').filter(is_name) {
            out.extend(env.get(name).into_iter().flat_map(|v| v.split_whitespace().map(str::to_string)));
        } else {
            out.push(word);
        }
    }
    out
}

fn split_words(s: &str) -> anyhow::Result<Vec<String>> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut in_word = false;
    for ch in s.chars() {
        match quote {
            Some(q) if ch == q => quote = None,
            Some(_) => cur.push(ch),
            None if ch == '"' || ch == '\'' => {
                quote = Some(ch);
                in_word = true;
            }
            None if ch.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            None => {
                cur.push(ch);
                in_word = true;
            }
        }
    }
    if quote.is_some() {
        bail!("unterminated quote in ExecStart=");
    }
    if in_word {
        words.push(cur);
    }
    Ok(words)
}

/// Flags from arguments (without argv[0]). Non-flag arguments are ignored.
pub fn parse_args(args: &[String]) -> Vec<(String, String)> {
    args.iter()
        .filter_map(|a| {
            let body = a.strip_prefix("--").or_else(|| a.strip_prefix('-'))?;
            if body.is_empty() {
                return None;
            }
            Some(match body.split_once('=') {
                Some((n, v)) => (n.to_string(), v.to_string()),
                None => (body.to_string(), "true".to_string()),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_start_with_continuations() {
        let unit = "[Service]\nType=notify\nExecStart=-/usr/bin/etcd \\\n  --name=n1 \\\n  --logger=zap\nRestart=always\n";
        let argv = exec_start_argv(unit).unwrap();
        assert_eq!(argv, vec!["/usr/bin/etcd", "--name=n1", "--logger=zap"]);
    }

    #[test]
    fn quotes_and_bare_flags() {
        let argv = exec_start_argv("ExecStart=/bin/x --a=\"b c\" --profiling -v=2\n").unwrap();
        assert_eq!(
            parse_args(&argv[1..]),
            vec![
                ("a".to_string(), "b c".to_string()),
                ("profiling".to_string(), "true".to_string()),
                ("v".to_string(), "2".to_string())
            ]
        );
    }

    #[test]
    fn last_flag_wins_and_process_name_is_basename() {
        let mut v = HostView::new("h");
        let argv: Vec<String> = ["/usr/local/bin/kube-apiserver", "--profiling=true", "--profiling=false"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        v.add_process(&argv).unwrap();
        assert_eq!(v.flag("kube-apiserver", "profiling"), Some("false"));
        assert!(v.runs("kube-apiserver"));
    }

    #[test]
    fn environment_words_expand_like_systemd() {
        let env = BTreeMap::from([("F".to_string(), "--a=1 --b=2".to_string()), ("G".to_string(), "x y".to_string())]);
        let argv: Vec<String> = ["/bin/etcd", "$F", "${G}", "$UNSET", "--c=3"].iter().map(|s| s.to_string()).collect();
        assert_eq!(expand_env(argv, &env), vec!["/bin/etcd", "--a=1", "--b=2", "x y", "--c=3"]);
    }

    #[test]
    fn missing_exec_start_is_an_error() {
        assert!(exec_start_argv("[Service]\nType=simple\n").is_err());
        assert!(exec_start_argv("ExecStart=/bin/x --a=\"open\n").is_err());
    }

    #[test]
    fn debug_never_shows_content() {
        let f = FileView {
            kind: FileKind::File,
            mode: 0o600,
            owner: "root".into(),
            group: "root".into(),
            content: Some(b"SECRET-KEY-MATERIAL".to_vec()),
        };
        let dbg = format!("{f:?}");
        assert!(!dbg.contains("SECRET"), "{dbg}");
        assert!(dbg.contains("0600"));
    }
}
