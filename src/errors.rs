//! The crate's error conventions, and the two helpers they need.
//!
//! - Library errors are `thiserror` enums. A wrapped error is a
//!   `#[source]` and is **not** repeated in the message: the message says
//!   what failed ("cannot read certs/x.crt"), the source says why.
//! - The CLI edge (`main.rs`, `serve`, the commands) uses `anyhow` and
//!   prints `{:#}`, which writes the whole chain on one line, so `?` works
//!   there without `anyhow!("{e}")`.
//! - Where a chain must become one string (a health check's detail, a log
//!   field), [`error_chain`] writes it the same way.

/// Errors of bodies, boxed (what hyper and http-body carry).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// An error and its sources, on one line: `outer: inner: innermost`.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(src) = cur {
        s.push_str(": ");
        s.push_str(&src.to_string());
        cur = src.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot read x.crt")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn chains_read_on_one_line() {
        let e = Outer(std::io::Error::new(std::io::ErrorKind::NotFound, "gone"));
        assert_eq!(error_chain(&e), "cannot read x.crt: gone");
        assert_eq!(
            format!("{:#}", anyhow::Error::new(e)),
            "cannot read x.crt: gone"
        );
    }
}
