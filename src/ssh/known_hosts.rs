//! OpenSSH known_hosts files: reading, matching a host's offered key, pinning new keys.
//!
//! Our own parser rather than russh's helper because we need what OpenSSH does and the
//! helper does not: tab separators, `@revoked` / `@cert-authority` markers, wildcard and
//! negated patterns, skipping (not failing on) lines we cannot parse, and the file and
//! line of every entry so a changed-key message can say exactly what to remove.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use russh::keys::ssh_key::{Algorithm, HashAlg, PublicKey};

/// The name a host is recorded under: `addr` on port 22, `[addr]:port` otherwise (as OpenSSH).
pub fn lookup_name(address: &str, port: u16) -> String {
    if port == 22 { address.to_string() } else { format!("[{address}]:{port}") }
}

/// `SHA256:...`, as `ssh-keygen -lf` prints it.
pub fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

/// `ssh-ed25519`, `ecdsa-sha2-nistp256`, `ssh-rsa`, ...
pub fn key_type(key: &PublicKey) -> String {
    key.algorithm().as_str().to_string()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Marker {
    None,
    Revoked,
    CertAuthority,
}

#[derive(Debug, Clone)]
enum HostField {
    Patterns(Vec<String>),
    Hashed { salt: Vec<u8>, hash: Vec<u8> },
}

#[derive(Debug, Clone)]
struct Entry {
    file: PathBuf,
    line: usize,
    marker: Marker,
    hosts: HostField,
    key: PublicKey,
}

/// The outcome of checking an offered host key.
#[derive(Debug, Clone)]
pub enum Verdict {
    /// A known_hosts entry for this host holds exactly this key.
    Trusted,
    /// No entry for this host at all.
    Unknown,
    /// The host is known, with a different key: `expected` at `file:line`.
    Changed { expected: PublicKey, file: PathBuf, line: usize },
    /// The key is marked `@revoked` for this host.
    Revoked { file: PathBuf, line: usize },
}

/// All entries of the known_hosts files consulted for a connection.
#[derive(Debug, Clone, Default)]
pub struct KnownHosts {
    entries: Vec<Entry>,
}

impl KnownHosts {
    /// Reads `files` in order; missing files count as empty. Unparsable lines are skipped,
    /// as OpenSSH does (a key type we do not know must not make the whole file unusable).
    pub fn load(files: &[PathBuf]) -> Result<KnownHosts, (PathBuf, io::Error)> {
        let mut entries = Vec::new();
        for file in files {
            match fs::read_to_string(file) {
                Ok(text) => entries.extend(parse(&text, file)),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err((file.clone(), e)),
            }
        }
        Ok(KnownHosts { entries })
    }

    /// What the files say about `offered` for the host recorded as `lookup`.
    pub fn check(&self, lookup: &str, offered: &PublicKey) -> Verdict {
        let for_host: Vec<&Entry> = self.entries.iter().filter(|e| e.matches(lookup)).collect();
        let same_key = |e: &&&Entry| e.key.key_data() == offered.key_data();
        if let Some(e) = for_host.iter().filter(|e| e.marker == Marker::Revoked).find(same_key) {
            return Verdict::Revoked { file: e.file.clone(), line: e.line };
        }
        let plain: Vec<&Entry> = for_host.into_iter().filter(|e| e.marker == Marker::None).collect();
        if plain.iter().any(|e| e.key.key_data() == offered.key_data()) {
            return Verdict::Trusted;
        }
        // Cite the pinned key of the same type if there is one: that is the key that changed.
        let cited = plain.iter().find(|e| e.key.algorithm() == offered.algorithm()).or(plain.first());
        match cited {
            Some(e) => Verdict::Changed { expected: e.key.clone(), file: e.file.clone(), line: e.line },
            None => Verdict::Unknown,
        }
    }

    /// Host key algorithms to ask the server for, known types first, so a host with
    /// several keys presents the one we pinned (as OpenSSH orders its proposal).
    pub fn preferred_algorithms(&self, lookup: &str, defaults: &[Algorithm]) -> Vec<Algorithm> {
        let mut order: Vec<Algorithm> = Vec::new();
        for e in self.entries.iter().filter(|e| e.marker == Marker::None && e.matches(lookup)) {
            let algs = match e.key.algorithm() {
                Algorithm::Rsa { .. } => vec![
                    Algorithm::Rsa { hash: Some(HashAlg::Sha512) },
                    Algorithm::Rsa { hash: Some(HashAlg::Sha256) },
                    Algorithm::Rsa { hash: None },
                ],
                other => vec![other],
            };
            for a in algs {
                if defaults.contains(&a) && !order.contains(&a) {
                    order.push(a);
                }
            }
        }
        for a in defaults {
            if !order.contains(a) {
                order.push(a.clone());
            }
        }
        order
    }
}

impl Entry {
    fn matches(&self, lookup: &str) -> bool {
        let lookup = lookup.to_ascii_lowercase();
        match &self.hosts {
            HostField::Hashed { salt, hash } => {
                let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, salt);
                ring::hmac::verify(&key, lookup.as_bytes(), hash).is_ok()
            }
            HostField::Patterns(patterns) => {
                let mut matched = false;
                for p in patterns {
                    if let Some(negated) = p.strip_prefix('!') {
                        if glob_match(&negated.to_ascii_lowercase(), &lookup) {
                            return false; // a negated match excludes the line, whatever else matches
                        }
                    } else if glob_match(&p.to_ascii_lowercase(), &lookup) {
                        matched = true;
                    }
                }
                matched
            }
        }
    }
}

fn parse(text: &str, file: &Path) -> Vec<Entry> {
    text.lines().enumerate().filter_map(|(i, line)| parse_line(line, file, i + 1)).collect()
}

fn parse_line(line: &str, file: &Path, number: usize) -> Option<Entry> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let mut fields = line.split_whitespace();
    let mut first = fields.next()?;
    let marker = match first {
        "@revoked" => Marker::Revoked,
        "@cert-authority" => Marker::CertAuthority,
        m if m.starts_with('@') => return None,
        _ => Marker::None,
    };
    if marker != Marker::None {
        first = fields.next()?;
    }
    let _key_type = fields.next()?;
    let blob = fields.next()?;
    let key = russh::keys::parse_public_key_base64(blob).ok()?;
    let hosts = if let Some(hashed) = first.strip_prefix("|1|") {
        let (salt, hash) = hashed.split_once('|')?;
        HostField::Hashed { salt: STANDARD.decode(salt).ok()?, hash: STANDARD.decode(hash).ok()? }
    } else {
        HostField::Patterns(first.split(',').filter(|p| !p.is_empty()).map(str::to_string).collect())
    };
    Some(Entry { file: file.to_path_buf(), line: number, marker, hosts, key })
}

/// OpenSSH-style glob: `*` any run of characters, `?` one character.
fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(&c) if c == '?' || c == t[ti] => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// What [`pin`] did.
#[derive(Debug)]
pub enum PinOutcome {
    Added,
    /// Someone (another host's connection, another run) pinned the same key meanwhile.
    AlreadyPresent,
    /// The file now pins a different (or revokes this) key for the host: refuse.
    Conflict(Verdict),
}

/// Appends `lookup key` to `file`, atomically (temp file + fsync + rename + fsync dir) and
/// under an exclusive lock on `<file>.lock`, so parallel connections and concurrent runs
/// never lose each other's pins. Blocking: call it from `spawn_blocking`.
pub fn pin(file: &Path, lookup: &str, key: &PublicKey) -> io::Result<PinOutcome> {
    let dir = file.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    // The state dir holds the pins: refuse one another user prepared (see crate::trust).
    crate::trust::private_dir(dir).map_err(io::Error::other)?;
    let lock_path = lock_path(file);
    let lock = crate::trust::open_own_file(&lock_path).map_err(io::Error::other)?;
    lock.lock()?;

    let old = match fs::read_to_string(file) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e),
    };
    let current = KnownHosts { entries: parse(&old, file) };
    match current.check(lookup, key) {
        Verdict::Trusted => return Ok(PinOutcome::AlreadyPresent),
        Verdict::Unknown => {}
        conflict => return Ok(PinOutcome::Conflict(conflict)),
    }

    let bare = PublicKey::new(key.key_data().clone(), "");
    let openssh = bare.to_openssh().map_err(|e| io::Error::other(e.to_string()))?;
    let mut new = old;
    if !new.is_empty() && !new.ends_with('\n') {
        new.push('\n');
    }
    new.push_str(&format!("{lookup} {openssh}\n"));

    let tmp = dir.join(format!(
        ".{}.tmp.{}",
        file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "known_hosts".into()),
        std::process::id()
    ));
    let result = (|| {
        let _ = fs::remove_file(&tmp);
        let mut f = OpenOptions::new().create_new(true).write(true).mode(0o644).open(&tmp)?;
        f.write_all(new.as_bytes())?;
        f.sync_all()?;
        fs::rename(&tmp, file)?;
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map(|_| PinOutcome::Added)
}

fn lock_path(file: &Path) -> PathBuf {
    let mut name = file.file_name().map(|n| n.to_os_string()).unwrap_or_else(|| "known_hosts".into());
    name.push(".lock");
    file.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ED_A: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIJdD7y3aLq454yWBdwLWbieU1ebz9/cu7/QEXn9OIeZJ";
    const ED_B: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIN+Wjn4+4Fcvl2JlKpggT+wCRxpSvtqqpVrQrKN1/A22";

    fn key(b64: &str) -> PublicKey {
        russh::keys::parse_public_key_base64(b64).unwrap()
    }

    fn hosts(text: &str) -> KnownHosts {
        KnownHosts { entries: parse(text, Path::new("/kh")) }
    }

    #[test]
    fn lookup_names_follow_openssh() {
        assert_eq!(lookup_name("10.0.0.1", 22), "10.0.0.1");
        assert_eq!(lookup_name("10.0.0.1", 2222), "[10.0.0.1]:2222");
    }

    #[test]
    fn plain_bracketed_and_tab_separated_entries() {
        let kh = hosts(&format!("# comment\n\n[10.0.0.1]:2222\tssh-ed25519\t{ED_A} c\nnode2,10.0.0.2 ssh-ed25519 {ED_B}\n"));
        assert!(matches!(kh.check("[10.0.0.1]:2222", &key(ED_A)), Verdict::Trusted));
        assert!(matches!(kh.check("10.0.0.1", &key(ED_A)), Verdict::Unknown), "port 22 is a different entry");
        assert!(matches!(kh.check("10.0.0.2", &key(ED_B)), Verdict::Trusted));
        match kh.check("[10.0.0.1]:2222", &key(ED_B)) {
            Verdict::Changed { expected, line, .. } => {
                assert_eq!(line, 3);
                assert_eq!(expected.key_data(), key(ED_A).key_data());
            }
            other => panic!("expected Changed, got {other:?}"),
        }
    }

    #[test]
    fn wildcards_negation_and_case() {
        let kh = hosts(&format!("*.example.org,!bad.example.org ssh-ed25519 {ED_A}\n10.0.0.? ssh-ed25519 {ED_B}\n"));
        assert!(matches!(kh.check("Node.Example.org", &key(ED_A)), Verdict::Trusted));
        assert!(matches!(kh.check("bad.example.org", &key(ED_A)), Verdict::Unknown));
        assert!(matches!(kh.check("10.0.0.7", &key(ED_B)), Verdict::Trusted));
        assert!(matches!(kh.check("10.0.0.17", &key(ED_B)), Verdict::Unknown));
    }

    #[test]
    fn hashed_entries_match_their_host_only() {
        // The same construction as `ssh-keygen -H` (the end-to-end tests use the real tool).
        let salt = [7u8; 20];
        let k = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, &salt);
        let tag = ring::hmac::sign(&k, b"[127.0.2.1]:2201");
        let line = format!("|1|{}|{} ssh-ed25519 {ED_A}\n", STANDARD.encode(salt), STANDARD.encode(tag.as_ref()));
        let kh = hosts(&line);
        assert!(matches!(kh.check("[127.0.2.1]:2201", &key(ED_A)), Verdict::Trusted));
        assert!(matches!(kh.check("[127.0.2.1]:2202", &key(ED_A)), Verdict::Unknown));
    }

    #[test]
    fn revoked_beats_trusted_and_garbage_lines_are_skipped() {
        let kh = hosts(&format!(
            "garbage\n@weird x ssh-ed25519 {ED_A}\nh ssh-ed25519 !!notbase64\nh ssh-ed25519 {ED_A}\n@revoked * ssh-ed25519 {ED_A}\n"
        ));
        assert!(matches!(kh.check("h", &key(ED_A)), Verdict::Revoked { line: 5, .. }));
        assert!(matches!(kh.check("h", &key(ED_B)), Verdict::Changed { line: 4, .. }));
    }

    #[test]
    fn cert_authority_lines_do_not_pin_keys() {
        let kh = hosts(&format!("@cert-authority * ssh-ed25519 {ED_A}\n"));
        assert!(matches!(kh.check("h", &key(ED_B)), Verdict::Unknown));
    }

    #[test]
    fn known_types_come_first() {
        let kh = hosts(&format!("h ssh-ed25519 {ED_A}\n"));
        let defaults = vec![Algorithm::Rsa { hash: Some(HashAlg::Sha512) }, Algorithm::Ed25519];
        assert_eq!(kh.preferred_algorithms("h", &defaults), vec![Algorithm::Ed25519, Algorithm::Rsa { hash: Some(HashAlg::Sha512) }]);
        assert_eq!(kh.preferred_algorithms("other", &defaults), defaults);
    }

    #[test]
    fn glob() {
        assert!(glob_match("*", ""));
        assert!(glob_match("a*c", "abbbc"));
        assert!(glob_match("[10.0.0.1]:*", "[10.0.0.1]:22"));
        assert!(!glob_match("a?c", "ac"));
        assert!(glob_match("*.*.org", "a.b.org"));
        assert!(!glob_match("*.org", "org"));
    }

    #[test]
    fn pin_appends_keeps_old_lines_and_detects_conflicts() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("state/known_hosts");
        assert!(matches!(pin(&file, "[h]:2", &key(ED_A)).unwrap(), PinOutcome::Added));
        assert!(matches!(pin(&file, "[h]:2", &key(ED_A)).unwrap(), PinOutcome::AlreadyPresent));
        assert!(matches!(pin(&file, "other", &key(ED_B)).unwrap(), PinOutcome::Added));
        assert!(matches!(pin(&file, "[h]:2", &key(ED_B)).unwrap(), PinOutcome::Conflict(Verdict::Changed { line: 1, .. })));
        let text = fs::read_to_string(&file).unwrap();
        assert_eq!(text, format!("[h]:2 ssh-ed25519 {ED_A}\nother ssh-ed25519 {ED_B}\n"));
        let leftovers: Vec<_> = fs::read_dir(file.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".tmp."))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[test]
    fn parallel_pins_are_all_kept() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("known_hosts");
        std::thread::scope(|s| {
            for i in 0..16 {
                let file = file.clone();
                s.spawn(move || pin(&file, &format!("host{i}"), &key(if i % 2 == 0 { ED_A } else { ED_B })).unwrap());
            }
        });
        let kh = KnownHosts::load(std::slice::from_ref(&file)).unwrap();
        for i in 0..16 {
            let k = key(if i % 2 == 0 { ED_A } else { ED_B });
            assert!(matches!(kh.check(&format!("host{i}"), &k), Verdict::Trusted), "host{i} lost");
        }
    }
}
