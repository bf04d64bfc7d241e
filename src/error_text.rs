//! An error with its causes on one line, for errors that keep the cause in `source()` and
//! say little themselves (tonic's "transport error", tera's "Failed to render").

/// `e` and each of its sources, joined with ": " (what anyhow's `{:#}` prints).
pub fn one_line(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn causes_follow_the_error() {
        let io = std::io::Error::other("connection refused");
        let outer = anyhow::Error::new(io).context("transport error");
        let e: &(dyn std::error::Error + 'static) = outer.as_ref();
        assert_eq!(super::one_line(e), "transport error: connection refused");
    }
}
