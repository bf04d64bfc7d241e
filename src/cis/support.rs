//! Small building blocks the checks are written with.

use serde_yaml_ng::Value;

use super::{FileKind, HostView, Outcome};

fn shown(name: &str, v: Option<&str>) -> String {
    match v {
        Some(v) => format!("--{name}={v}"),
        None => format!("--{name} is not set"),
    }
}

pub fn flag_is(view: &HostView, process: &str, name: &str, want: &str) -> Outcome {
    let v = view.flag(process, name);
    Outcome::when(v == Some(want), format!("{process}: {}", shown(name, v)))
}

pub fn flag_set(view: &HostView, process: &str, name: &str) -> Outcome {
    let v = view.flag(process, name);
    Outcome::when(v.is_some_and(|v| !v.is_empty()), format!("{process}: {}", shown(name, v)))
}

pub fn flag_unset(view: &HostView, process: &str, name: &str) -> Outcome {
    let v = view.flag(process, name);
    Outcome::when(v.is_none(), format!("{process}: {}", shown(name, v)))
}

/// Passes when the flag is absent (the default is good) or equals `want`.
pub fn flag_unset_or(view: &HostView, process: &str, name: &str, want: &str) -> Outcome {
    let v = view.flag(process, name);
    Outcome::when(v.is_none() || v == Some(want), format!("{process}: {}", shown(name, v)))
}

fn list(v: Option<&str>) -> Vec<&str> {
    v.map(|v| v.split(',').map(str::trim).filter(|s| !s.is_empty()).collect()).unwrap_or_default()
}

pub fn flag_list_has(view: &HostView, process: &str, name: &str, item: &str) -> Outcome {
    let v = view.flag(process, name);
    Outcome::when(list(v).contains(&item), format!("{process}: {}", shown(name, v)))
}

/// Passes when the list flag is absent or does not name `item`.
pub fn flag_list_lacks(view: &HostView, process: &str, name: &str, item: &str) -> Outcome {
    let v = view.flag(process, name);
    Outcome::when(!list(v).contains(&item), format!("{process}: {}", shown(name, v)))
}

pub fn flag_at_least(view: &HostView, process: &str, name: &str, min: i64) -> Outcome {
    let v = view.flag(process, name);
    let ok = v.and_then(|v| v.parse::<i64>().ok()).is_some_and(|n| n >= min);
    Outcome::when(ok, format!("{process}: {} (at least {min} required)", shown(name, v)))
}

/// The comma-separated cipher suites are all in `allowed` (and there is at least one).
pub fn suites_within(what: &str, value: Option<&str>, allowed: &[&str]) -> Outcome {
    let suites = list(value);
    let bad: Vec<&str> = suites.iter().copied().filter(|s| !allowed.contains(s)).collect();
    let shown = value.map(|v| format!("{what}={v}")).unwrap_or_else(|| format!("{what} is not set"));
    if suites.is_empty() {
        Outcome::fail(shown)
    } else if bad.is_empty() {
        Outcome::pass(shown)
    } else {
        Outcome::fail(format!("{shown}; not allowed: {}", bad.join(",")))
    }
}

/// The file's permission bits are a subset of `max` ("600 or more restrictive").
pub fn mode_at_most(view: &HostView, path: &str, max: u32) -> Outcome {
    match view.file(path) {
        Some(f) => Outcome::when(f.mode & 0o7777 & !max == 0, format!("{path}: {} (at most {max:04o})", f.describe())),
        None => Outcome::fail(format!("{path} does not exist")),
    }
}

pub fn owned_by(view: &HostView, path: &str, owner: &str, group: &str) -> Outcome {
    match view.file(path) {
        Some(f) => Outcome::when(f.owner == owner && f.group == group, format!("{path}: {}", f.describe())),
        None => Outcome::fail(format!("{path} does not exist")),
    }
}

/// Every file under `dir` (recursively, directories included) passes `each`; the
/// evidence lists the offenders. Fails when nothing is there.
pub fn all_under(view: &HostView, dir: &str, filter: impl Fn(&str) -> bool, each: impl Fn(&str) -> Outcome) -> Outcome {
    let prefix = format!("{}/", dir.trim_end_matches('/'));
    let mut seen = 0;
    let mut bad = Vec::new();
    for path in view.files.keys().filter(|p| p.starts_with(&prefix) || p.as_str() == dir) {
        if !filter(path) {
            continue;
        }
        seen += 1;
        let o = each(path);
        if !o.passed {
            bad.push(o.evidence);
        }
    }
    if seen == 0 {
        Outcome::fail(format!("nothing found under {dir}"))
    } else if bad.is_empty() {
        Outcome::pass(format!("{seen} paths under {dir} checked"))
    } else {
        Outcome::fail(bad.join("; "))
    }
}

/// The YAML (or JSON) document in file `path`.
pub fn yaml(view: &HostView, path: &str) -> Result<Value, Outcome> {
    let f = view.file(path).ok_or_else(|| Outcome::fail(format!("{path} does not exist")))?;
    if f.kind != FileKind::File {
        return Err(Outcome::fail(format!("{path} is not a file")));
    }
    let content = f.content.as_ref().ok_or_else(|| Outcome::fail(format!("{path}: content not available")))?;
    serde_yaml_ng::from_slice(content).map_err(|e| Outcome::fail(format!("{path} is not valid YAML: {e}")))
}

/// `doc["a"]["b"]...` for a dotted path.
pub fn get<'a>(doc: &'a Value, dotted: &str) -> Option<&'a Value> {
    dotted.split('.').try_fold(doc, |v, key| v.get(key))
}

/// A scalar as text ("true", "0", "5m0s"); None for missing, null or non-scalars.
pub fn scalar(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(s.clone()),
        _ => None,
    }
}

/// A kubelet setting: the command-line flag when given (it wins), else the field of
/// the config file.
pub fn kubelet_setting(view: &HostView, flag: &str, field: &str, config: &Result<Value, Outcome>) -> (Option<String>, String) {
    if let Some(v) = view.flag(super::KUBELET, flag) {
        return (Some(v.to_string()), format!("kubelet --{flag}={v}"));
    }
    match config {
        Ok(doc) => {
            let v = scalar(get(doc, field));
            let ev = match &v {
                Some(v) => format!("kubelet config {field}: {v}"),
                None => format!("kubelet config {field} is not set"),
            };
            (v, ev)
        }
        Err(o) => (None, o.evidence.clone()),
    }
}
