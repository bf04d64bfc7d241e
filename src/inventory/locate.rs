//! From a key path (`host[1].address`) to the place in the file it was written,
//! as a 1-based line and column, so every message points at the spot to edit.

use std::fmt;
use std::ops::Range;

use toml::de::{DeTable, DeValue};

/// A path into the document: keys and array indexes, e.g. `host[1].roles[0]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyPath(Vec<Segment>);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Key(String),
    Index(usize),
}

impl KeyPath {
    /// The document itself (prints as the empty string).
    pub fn root() -> KeyPath {
        KeyPath::default()
    }

    pub fn key(&self, key: &str) -> KeyPath {
        let mut next = self.clone();
        next.0.push(Segment::Key(key.to_string()));
        next
    }

    pub fn index(&self, index: usize) -> KeyPath {
        let mut next = self.clone();
        next.0.push(Segment::Index(index));
        next
    }

    /// The `i`th `[[host]]` table.
    pub fn host(i: usize) -> KeyPath {
        KeyPath::root().key("host").index(i)
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, segment) in self.0.iter().enumerate() {
            match segment {
                Segment::Index(n) => write!(f, "[{n}]")?,
                Segment::Key(k) => {
                    if i > 0 {
                        f.write_str(".")?;
                    }
                    if is_bare_key(k) {
                        f.write_str(k)?;
                    } else {
                        // Quoted like TOML would, so odd keys cannot blur the path.
                        write!(f, "{k:?}")?;
                    }
                }
            }
        }
        Ok(())
    }
}

fn is_bare_key(key: &str) -> bool {
    !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// The span of the value at `path`, or of its nearest ancestor that exists (a key the
/// operator left out is reported at the table that should hold it). The root table's
/// span is empty at offset 0, i.e. line 1, column 1.
pub fn find_span(root: &DeTable<'_>, path: &KeyPath) -> Range<usize> {
    walk_path(root, path).0
}

/// The span of the value at `path`, only if it was written.
pub fn find_exact(root: &DeTable<'_>, path: &KeyPath) -> Option<Range<usize>> {
    let (span, complete) = walk_path(root, path);
    complete.then_some(span)
}

/// Follows `path` as far as it exists: the last span found, and whether it got to the end.
fn walk_path(root: &DeTable<'_>, path: &KeyPath) -> (Range<usize>, bool) {
    let mut best = 0..0;
    let mut table = Some(root);
    let mut array: Option<&[toml::Spanned<DeValue<'_>>]> = None;
    for segment in &path.0 {
        let found = match segment {
            Segment::Key(key) => table.and_then(|t| t.iter().find(|(k, _)| k.get_ref() == key)).map(|(_, v)| v),
            Segment::Index(i) => array.and_then(|a| a.get(*i)),
        };
        let Some(value) = found else { return (best, false) };
        best = value.span();
        table = value.get_ref().as_table();
        array = value.get_ref().as_array().map(|a| &a[..]);
    }
    (best, true)
}

/// Byte offset -> (line, column), both 1-based; columns count characters, as editors do.
pub struct LineIndex {
    line_starts: Vec<usize>,
}

impl LineIndex {
    pub fn new(text: &str) -> LineIndex {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex { line_starts }
    }

    pub fn position(&self, text: &str, offset: usize) -> (usize, usize) {
        let offset = offset.min(text.len());
        let line = self.line_starts.partition_point(|&start| start <= offset).max(1);
        let start = self.line_starts[line - 1];
        let column = match text.get(start..offset) {
            Some(prefix) => prefix.chars().count(),
            // Not on a character boundary (never for the parser's spans): count bytes.
            None => offset - start,
        };
        (line, column + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_print_like_the_docs() {
        assert_eq!(KeyPath::host(2).key("address").to_string(), "host[2].address");
        assert_eq!(KeyPath::root().key("cluster").key("service_cidr").to_string(), "cluster.service_cidr");
        assert_eq!(KeyPath::host(0).key("roles").index(1).to_string(), "host[0].roles[1]");
        assert_eq!(KeyPath::root().key("cluster").key("my key").to_string(), "cluster.\"my key\"");
        assert_eq!(KeyPath::root().to_string(), "");
    }

    #[test]
    fn positions_are_one_based_and_count_characters() {
        let text = "a = 1\nname = \"é\" x\n\nlast";
        let lines = LineIndex::new(text);
        assert_eq!(lines.position(text, 0), (1, 1));
        assert_eq!(lines.position(text, 6), (2, 1));
        let x = text.find('x').unwrap();
        assert_eq!(lines.position(text, x), (2, 12)); // é is 2 bytes, one column
        assert_eq!(lines.position(text, text.len()), (4, 5));
        assert_eq!(lines.position(text, usize::MAX), (4, 5));
    }

    #[test]
    fn finds_values_and_falls_back_to_the_nearest_ancestor() {
        let text = "[cluster]\nname = \"lab\"\n\n[[host]]\nname = \"a\"\n\n[[host]]\naddress = \"10.0.0.300\"\n";
        let doc = DeTable::parse(text).unwrap();
        let at = |path: KeyPath| &text[find_span(doc.get_ref(), &path)];
        assert_eq!(at(KeyPath::root().key("cluster").key("name")), "\"lab\"");
        assert_eq!(at(KeyPath::host(1).key("address")), "\"10.0.0.300\"");
        // host[1] has no name: the message points at its [[host]] header.
        let span = find_span(doc.get_ref(), &KeyPath::host(1).key("name"));
        assert_eq!(LineIndex::new(text).position(text, span.start), (7, 1));
        // A missing section is reported at the top of the file.
        assert_eq!(find_span(doc.get_ref(), &KeyPath::root().key("etcd").key("peer_port")), 0..0);
        assert!(find_exact(doc.get_ref(), &KeyPath::host(1).key("address")).is_some());
        assert_eq!(find_exact(doc.get_ref(), &KeyPath::host(1).key("name")), None);
    }
}
