//! Reading CRLF-terminated lines with a bound (RFC 5321 4.5.3.1: a command
//! or text line is at most 1000 octets with its CRLF); the POP3 side reads
//! its commands the same way.

use tokio::io::{AsyncBufRead, AsyncBufReadExt};

/// Longest line, CRLF included: 1000 octets.
pub const MAX_LINE: usize = 1000;

/// One line read.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// The line without its line end (CRLF, or a bare LF).
    Text(Vec<u8>),
    /// Longer than the bound: the line was read to its end and dropped.
    TooLong,
    /// The peer closed the connection (a partial last line is dropped).
    Closed,
}

/// Reads one line of at most `max` octets (line end included) without
/// holding more than `max` of it.
pub async fn read_line<R: AsyncBufRead + Unpin>(r: &mut R, max: usize) -> std::io::Result<Line> {
    let mut line = Vec::new();
    let mut too_long = false;
    loop {
        let buf = r.fill_buf().await?;
        if buf.is_empty() {
            return Ok(Line::Closed);
        }
        let (take, done) = match memchr::memchr(b'\n', buf) {
            Some(i) => (i + 1, true),
            None => (buf.len(), false),
        };
        if !too_long {
            if line.len() + take > max {
                too_long = true;
                line.clear();
            } else {
                line.extend_from_slice(&buf[..take]);
            }
        }
        r.consume(take);
        if done {
            if too_long {
                return Ok(Line::TooLong);
            }
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            return Ok(Line::Text(line));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lines_bounded() {
        let data = format!("HELO a\r\nbare\n{}\r\nnext\r\npartial", "x".repeat(1200));
        let mut r = tokio::io::BufReader::with_capacity(64, data.as_bytes());
        assert_eq!(
            read_line(&mut r, 1000).await.unwrap(),
            Line::Text(b"HELO a".to_vec())
        );
        assert_eq!(
            read_line(&mut r, 1000).await.unwrap(),
            Line::Text(b"bare".to_vec())
        );
        assert_eq!(read_line(&mut r, 1000).await.unwrap(), Line::TooLong);
        assert_eq!(
            read_line(&mut r, 1000).await.unwrap(),
            Line::Text(b"next".to_vec())
        );
        assert_eq!(read_line(&mut r, 1000).await.unwrap(), Line::Closed);
        let exact = format!("{}\r\n", "y".repeat(998));
        let mut r = tokio::io::BufReader::new(exact.as_bytes());
        assert!(matches!(read_line(&mut r, 1000).await.unwrap(), Line::Text(t) if t.len() == 998));
    }
}
