//! The little SMTP the array itself speaks to hubs (RFC 5321): reading a
//! reply, single or multi-line, bounded in size. The array never rewrites
//! or interprets a session; it reads a hub's greeting before it hands a
//! connection over, and the `ehlo` health check reads two replies.

use tokio::io::{AsyncRead, AsyncReadExt};

/// Largest reply read: 4 KiB (a greeting or an EHLO answer is a few lines;
/// RFC 5321 lines are at most 512 octets).
pub const MAX_REPLY: usize = 4096;

/// One reply: its code and the bytes as the hub sent them (every line,
/// CRLFs included), to pass on unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub raw: Vec<u8>,
}

impl Reply {
    /// The text of the first line, without the code and the CRLF.
    pub fn text(&self) -> String {
        let line = self.raw.split(|&b| b == b'\n').next().unwrap_or(&[]);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        String::from_utf8_lossy(line.get(4..).unwrap_or(&[])).into_owned()
    }
}

/// Why no reply could be read.
#[derive(Debug, thiserror::Error)]
pub enum ReplyError {
    #[error("the connection failed")]
    Io(#[from] std::io::Error),
    #[error("the connection closed before a whole reply")]
    Closed,
    #[error("the reply is longer than {MAX_REPLY} bytes")]
    TooLong,
    #[error("not an SMTP reply: {0:?}")]
    Malformed(String),
}

/// Reads one reply from `io`. Reads byte runs, not bytes, but never past
/// the reply's last CRLF: a hub does not send before it is spoken to, and
/// whatever follows a reply would belong to the client.
pub async fn read_reply<R: AsyncRead + Unpin>(io: &mut R) -> Result<Reply, ReplyError> {
    let mut raw = Vec::with_capacity(128);
    let mut line_start = 0;
    let mut code: Option<u16> = None;
    let mut byte = [0u8; 1];
    loop {
        if raw.len() >= MAX_REPLY {
            return Err(ReplyError::TooLong);
        }
        // One byte at a time: replies are short, and reading ahead could
        // swallow bytes that are not ours.
        if io.read(&mut byte).await? == 0 {
            return Err(ReplyError::Closed);
        }
        raw.push(byte[0]);
        if byte[0] != b'\n' {
            continue;
        }
        let line = &raw[line_start..];
        let (this, last) = parse_line(line)?;
        match code {
            None => code = Some(this),
            Some(c) if c != this => {
                return Err(ReplyError::Malformed(
                    String::from_utf8_lossy(line).trim_end().to_owned(),
                ))
            }
            Some(_) => {}
        }
        if last {
            return Ok(Reply { code: this, raw });
        }
        line_start = raw.len();
    }
}

/// A reply line's code, and whether it is the last line (`250 ` rather than
/// `250-`).
fn parse_line(line: &[u8]) -> Result<(u16, bool), ReplyError> {
    let bad = || ReplyError::Malformed(String::from_utf8_lossy(line).trim_end().to_owned());
    let digits = line.get(..3).ok_or_else(bad)?;
    if !digits.iter().all(u8::is_ascii_digit) || !(b'2'..=b'5').contains(&digits[0]) {
        return Err(bad());
    }
    let code = digits
        .iter()
        .fold(0u16, |n, d| n * 10 + u16::from(d - b'0'));
    match line.get(3) {
        Some(b' ') | Some(b'\r') | Some(b'\n') => Ok((code, true)),
        Some(b'-') => Ok((code, false)),
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn read(bytes: &[u8]) -> Result<Reply, ReplyError> {
        let mut io = bytes;
        read_reply(&mut io).await
    }

    #[tokio::test]
    async fn reads_single_and_multi_line_replies_and_stops_at_their_end() {
        let r = read(b"220 ex1.lab.local ESMTP\r\nEHLO").await.unwrap();
        assert_eq!(r.code, 220);
        assert_eq!(r.raw, b"220 ex1.lab.local ESMTP\r\n");
        assert_eq!(r.text(), "ex1.lab.local ESMTP");
        let r = read(b"250-ex1\r\n250-PIPELINING\r\n250 SIZE 35882577\r\n")
            .await
            .unwrap();
        assert_eq!(r.code, 250);
        assert_eq!(r.raw.len(), 44);
        let mut io: &[u8] = b"220 hi\r\n221 bye\r\n";
        assert_eq!(read_reply(&mut io).await.unwrap().code, 220);
        assert_eq!(io, b"221 bye\r\n", "nothing read past the reply");
    }

    #[tokio::test]
    async fn refuses_what_is_not_a_reply() {
        for bad in [
            &b"HTTP/1.1 200 OK\r\n"[..],
            b"22\r\n",
            b"220-a\r\n250 b\r\n",
            b"620 x\r\n",
        ] {
            assert!(
                matches!(read(bad).await, Err(ReplyError::Malformed(_))),
                "{bad:?}"
            );
        }
        assert!(matches!(read(b"220-a\r\n").await, Err(ReplyError::Closed)));
        let long = [b"220-".as_slice(), &[b'x'; 5000]].concat();
        assert!(matches!(read(&long).await, Err(ReplyError::TooLong)));
    }
}
