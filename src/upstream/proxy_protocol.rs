//! PROXY protocol version 2 headers (the HAProxy spec, section 2.2), sent
//! first on a connection to a member so that it learns the client's
//! address: the hub writes it in its `Received:` header.

use std::net::SocketAddr;

/// The 12-byte signature every v2 header starts with.
const SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// The header of a proxied TCP connection from `client` to `local` (the
/// array's address the client reached). An IPv4 client seen on an IPv6
/// socket (`::ffff:a.b.c.d`) is written as IPv4.
pub fn v2_proxy(client: SocketAddr, local: SocketAddr) -> Vec<u8> {
    let (client, local) = (canonical(client), canonical(local));
    let mut h = Vec::with_capacity(52);
    h.extend_from_slice(&SIGNATURE);
    h.push(0x21); // version 2, PROXY
    match (client, local) {
        (SocketAddr::V4(c), SocketAddr::V4(l)) => {
            h.push(0x11); // TCP over IPv4
            h.extend_from_slice(&12u16.to_be_bytes());
            h.extend_from_slice(&c.ip().octets());
            h.extend_from_slice(&l.ip().octets());
        }
        _ => {
            h.push(0x21); // TCP over IPv6
            h.extend_from_slice(&36u16.to_be_bytes());
            h.extend_from_slice(&v6(client).octets());
            h.extend_from_slice(&v6(local).octets());
        }
    }
    h.extend_from_slice(&client.port().to_be_bytes());
    h.extend_from_slice(&local.port().to_be_bytes());
    h
}

/// The header of a connection the array makes for itself (a health check):
/// LOCAL, no addresses; the member uses the connection's own.
pub fn v2_local() -> [u8; 16] {
    let mut h = [0u8; 16];
    h[..12].copy_from_slice(&SIGNATURE);
    h[12] = 0x20; // version 2, LOCAL
    h[13] = 0x00; // unspecified family
    h
}

fn canonical(a: SocketAddr) -> SocketAddr {
    SocketAddr::new(a.ip().to_canonical(), a.port())
}

fn v6(a: SocketAddr) -> std::net::Ipv6Addr {
    match a {
        SocketAddr::V4(v4) => v4.ip().to_ipv6_mapped(),
        SocketAddr::V6(v6) => *v6.ip(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_header_is_the_spec_layout() {
        let h = v2_proxy(
            "192.0.2.7:50000".parse().unwrap(),
            "198.51.100.1:25".parse().unwrap(),
        );
        assert_eq!(h.len(), 28);
        assert_eq!(&h[..12], b"\r\n\r\n\0\r\nQUIT\n");
        assert_eq!(&h[12..16], &[0x21, 0x11, 0, 12]);
        assert_eq!(&h[16..20], &[192, 0, 2, 7]);
        assert_eq!(&h[20..24], &[198, 51, 100, 1]);
        assert_eq!(&h[24..26], &50000u16.to_be_bytes());
        assert_eq!(&h[26..28], &25u16.to_be_bytes());
    }

    #[test]
    fn mapped_ipv4_is_ipv4_and_mixed_families_are_ipv6() {
        let h = v2_proxy(
            "[::ffff:192.0.2.7]:1".parse().unwrap(),
            "192.0.2.1:25".parse().unwrap(),
        );
        assert_eq!(h[13], 0x11);
        let h = v2_proxy(
            "[2001:db8::1]:1".parse().unwrap(),
            "192.0.2.1:25".parse().unwrap(),
        );
        assert_eq!((h[13], h.len()), (0x21, 52));
        assert_eq!(v2_local()[12..], [0x20, 0, 0, 0]);
    }
}
