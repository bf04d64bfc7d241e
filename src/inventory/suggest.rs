//! "did you mean ...?": the known word closest to a misspelt key or value.

/// Names people bring from other tools, mapped to ours.
const ALIASES: &[(&str, &str)] = &[
    ("master", "control-plane"),
    ("ip", "address"),
    ("ssh_key", "private_key"),
    ("identity_file", "private_key"),
    ("key", "private_key"),
    ("hosts", "host"),
    ("nodes", "host"),
    ("node", "host"),
];

/// The candidate the operator most likely meant, if any is close enough to be a
/// plausible typo (case, '-' versus '_', a few edited letters, a missing prefix).
pub fn closest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let norm = normalize(word);
    if let Some((_, target)) = ALIASES.iter().find(|(alias, _)| *alias == norm)
        && let Some(c) = candidates.iter().find(|c| normalize(c) == normalize(target))
    {
        return Some(c);
    }
    let mut best: Option<(usize, &'a str)> = None;
    for &candidate in candidates {
        let cand = normalize(candidate);
        let distance = levenshtein(&norm, &cand);
        let budget = (cand.chars().count() / 3).max(1);
        let contained =
            norm.chars().count() >= 3 && (cand.starts_with(&norm) || cand.ends_with(&norm) || norm.contains(&cand));
        if distance <= budget || contained {
            // Containment counts as a distance just over the budget: typos win ties.
            let score = if distance <= budget { distance } else { budget + 1 };
            if best.is_none_or(|(b, _)| score < b) {
                best = Some((score, candidate));
            }
        }
    }
    best.map(|(_, c)| c)
}

fn normalize(word: &str) -> String {
    word.trim().to_lowercase().replace('_', "-")
}

/// Edit distance counting insertions, deletions, substitutions and swaps of two
/// neighbours ("naem" -> "name" is one edit). Inputs are cut at 64 characters so a
/// huge unknown key cannot cost quadratic time.
fn levenshtein(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().take(64).collect();
    let b: Vec<char> = b.chars().take(64).collect();
    // d[i][j]: distance between a[..i] and b[..j].
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    d[0] = (0..=b.len()).collect();
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1).min(d[i][j - 1] + 1).min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST_KEYS: &[&str] = &["name", "address", "roles", "ssh_port", "ssh_user"];

    #[test]
    fn finds_typos_and_missing_prefixes() {
        assert_eq!(closest("naem", HOST_KEYS), Some("name"));
        assert_eq!(closest("adress", HOST_KEYS), Some("address"));
        assert_eq!(closest("role", HOST_KEYS), Some("roles"));
        assert_eq!(closest("port", HOST_KEYS), Some("ssh_port"));
        assert_eq!(closest("user", HOST_KEYS), Some("ssh_user"));
        assert_eq!(closest("hostname", HOST_KEYS), Some("name"));
        assert_eq!(closest("control_plane", &["etcd", "control-plane", "worker"]), Some("control-plane"));
        assert_eq!(closest("Worker", &["etcd", "control-plane", "worker"]), Some("worker"));
    }

    #[test]
    fn maps_other_tools_words() {
        assert_eq!(closest("master", &["etcd", "control-plane", "worker"]), Some("control-plane"));
        assert_eq!(closest("ip", HOST_KEYS), Some("address"));
    }

    #[test]
    fn stays_quiet_when_nothing_is_close() {
        assert_eq!(closest("zone", HOST_KEYS), None);
        assert_eq!(closest("", HOST_KEYS), None);
        assert_eq!(closest(&"x".repeat(100_000), HOST_KEYS), None);
    }

    #[test]
    fn distance_counts_edits() {
        assert_eq!(levenshtein("kitten", "sitting"), 3);
        assert_eq!(levenshtein("", "abc"), 3);
        assert_eq!(levenshtein("same", "same"), 0);
        assert_eq!(levenshtein("naem", "name"), 1);
    }
}
