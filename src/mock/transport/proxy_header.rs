//! The PROXY protocol version 2 header (the HAProxy spec, section 2.2)
//! that the array sends first on a connection when `[smtp] proxy_protocol`
//! is on: the hub learns the client's address from it for `Received:`.
//!
//! The hub greets at once (a client without a balancer in front waits for
//! the greeting before it speaks), then looks at the first bytes it gets:
//! a PROXY v2 signature there is read as the header, anything else is the
//! client's first command. The mock trusts the header from any peer (a
//! real hub accepts it only from its balancers).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt};

/// The 12-byte signature every v2 header starts with.
pub const SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// Largest address block read: 216 octets (the spec's largest, Unix
/// sockets), TLVs beyond it are refused.
const MAX_BLOCK: usize = 216;

/// What the header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proxied {
    /// No header: the connection's own peer is the client.
    None,
    /// `LOCAL` (the balancer's own health check): the connection's peer.
    Local,
    /// The client's address.
    Client(SocketAddr),
}

/// Why a header was refused.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("reading the PROXY header failed")]
    Io(#[from] std::io::Error),
    #[error("malformed PROXY v2 header: {0}")]
    Malformed(&'static str),
}

/// Reads a PROXY v2 header when the stream starts with one.
pub async fn read<R: AsyncBufRead + Unpin>(r: &mut R) -> Result<Proxied, ProxyError> {
    let buf = r.fill_buf().await?;
    // Five octets (CR LF CR LF NUL) tell a header from any command line;
    // a balancer sends the header in one piece.
    let n = buf.len().min(SIGNATURE.len());
    if n < 5 || buf[..n] != SIGNATURE[..n] {
        return Ok(Proxied::None);
    }
    let mut head = [0u8; 16];
    r.read_exact(&mut head).await?;
    if head[..12] != SIGNATURE {
        return Err(ProxyError::Malformed("bad signature"));
    }
    if head[12] >> 4 != 2 {
        return Err(ProxyError::Malformed("not version 2"));
    }
    let len = usize::from(u16::from_be_bytes([head[14], head[15]]));
    if len > MAX_BLOCK {
        return Err(ProxyError::Malformed("address block too long"));
    }
    let mut block = vec![0u8; len];
    r.read_exact(&mut block).await?;
    decode(head[12] & 0x0f, head[13], &block)
}

fn decode(command: u8, family: u8, block: &[u8]) -> Result<Proxied, ProxyError> {
    match command {
        0 => return Ok(Proxied::Local),
        1 => {}
        _ => return Err(ProxyError::Malformed("unknown command")),
    }
    match family >> 4 {
        1 => {
            let b = block
                .get(..12)
                .ok_or(ProxyError::Malformed("short IPv4 block"))?;
            let ip = Ipv4Addr::new(b[0], b[1], b[2], b[3]);
            let port = u16::from_be_bytes([b[8], b[9]]);
            Ok(Proxied::Client(SocketAddr::new(IpAddr::V4(ip), port)))
        }
        2 => {
            let b = block
                .get(..36)
                .ok_or(ProxyError::Malformed("short IPv6 block"))?;
            let mut o = [0u8; 16];
            o.copy_from_slice(&b[..16]);
            let ip = Ipv6Addr::from(o).to_canonical();
            let port = u16::from_be_bytes([b[32], b[33]]);
            Ok(Proxied::Client(SocketAddr::new(ip, port)))
        }
        // UNSPEC or Unix sockets: no address to record.
        _ => Ok(Proxied::Local),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::BufReader;

    #[tokio::test]
    async fn reads_v4_v6_local_and_nothing() {
        let mut v4 = SIGNATURE.to_vec();
        v4.extend_from_slice(&[
            0x21, 0x11, 0, 12, 192, 0, 2, 7, 10, 0, 0, 1, 0xc3, 0x50, 0, 25,
        ]);
        v4.extend_from_slice(b"EHLO x\r\n");
        let mut r = BufReader::new(&v4[..]);
        assert_eq!(
            read(&mut r).await.unwrap(),
            Proxied::Client("192.0.2.7:50000".parse().unwrap())
        );
        let mut rest = String::new();
        tokio::io::AsyncReadExt::read_to_string(&mut r, &mut rest)
            .await
            .unwrap();
        assert_eq!(rest, "EHLO x\r\n");

        let mut v6 = SIGNATURE.to_vec();
        v6.extend_from_slice(&[0x21, 0x21, 0, 36]);
        let mut a = [0u8; 36];
        a[10] = 0xff;
        a[11] = 0xff;
        a[12..16].copy_from_slice(&[198, 51, 100, 9]);
        a[32..34].copy_from_slice(&7u16.to_be_bytes());
        v6.extend_from_slice(&a);
        assert_eq!(
            read(&mut BufReader::new(&v6[..])).await.unwrap(),
            Proxied::Client("198.51.100.9:7".parse().unwrap())
        );

        let mut local = SIGNATURE.to_vec();
        local.extend_from_slice(&[0x20, 0x00, 0, 0]);
        assert_eq!(
            read(&mut BufReader::new(&local[..])).await.unwrap(),
            Proxied::Local
        );
        assert_eq!(
            read(&mut BufReader::new(&b"EHLO a\r\n"[..])).await.unwrap(),
            Proxied::None
        );
        assert_eq!(
            read(&mut BufReader::new(&b"\r\n"[..])).await.unwrap(),
            Proxied::None
        );
        let mut bad = SIGNATURE.to_vec();
        bad.extend_from_slice(&[0x11, 0x11, 0, 12]);
        assert!(read(&mut BufReader::new(&bad[..])).await.is_err());
    }
}
