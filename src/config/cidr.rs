//! Address ranges (`10.0.0.0/8`, `fc00::/7`) for `[[service]] allow_from`.
//!
//! A range is kept as a network and a prefix length in one 128-bit word, so
//! that a membership test is a mask and a compare. IPv4-mapped IPv6 client
//! addresses (`::ffff:10.1.2.3`, what a dual-stack listener reports for an
//! IPv4 client) are matched as the IPv4 address they carry.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// An IPv4 or IPv6 range: a network address and a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    /// The network address (host bits zero), in the low 32 bits for IPv4.
    network: u128,
    /// Prefix length: 0..=32 for IPv4, 0..=128 for IPv6.
    prefix: u8,
    v4: bool,
}

/// Why a range is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    #[error("\"{0}\" is not an IP address or a range like 10.0.0.0/8 or fc00::/7")]
    NotAnAddress(String),
    #[error("\"{text}\": the prefix length must be 0 to {max}")]
    BadPrefix { text: String, max: u8 },
    #[error("\"{text}\" has bits set after the prefix (did you mean {suggest}?)")]
    HostBits { text: String, suggest: String },
}

impl Cidr {
    /// The ranges of the built-in profile's PowerShell service: loopback and
    /// the private ranges (RFC 1918, RFC 4193), as Microsoft advises for
    /// remote PowerShell: `127.0.0.0/8`, `::1/128`, `10.0.0.0/8`,
    /// `172.16.0.0/12`, `192.168.0.0/16`, `fc00::/7`.
    pub fn internal() -> Vec<Cidr> {
        [
            ([127, 0, 0, 0], 8),
            ([10, 0, 0, 0], 8),
            ([172, 16, 0, 0], 12),
            ([192, 168, 0, 0], 16),
        ]
        .into_iter()
        .map(|(a, p)| Cidr::v4(u32::from_be_bytes(a), p))
        .chain([Cidr::v6(1, 128), Cidr::v6(0xfc00 << 112, 7)])
        .collect()
    }

    fn v4(network: u32, prefix: u8) -> Self {
        Cidr {
            network: u128::from(network),
            prefix,
            v4: true,
        }
    }

    fn v6(network: u128, prefix: u8) -> Self {
        Cidr {
            network,
            prefix,
            v4: false,
        }
    }

    /// Whether `ip` is in the range (IPv4-mapped IPv6 as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (ip.to_canonical(), self.v4) {
            (IpAddr::V4(a), true) => {
                u128::from(u32::from(a)) & mask(self.prefix, 32) == self.network
            }
            (IpAddr::V6(a), false) => u128::from(a) & mask(self.prefix, 128) == self.network,
            _ => false,
        }
    }
}

/// The mask of a `prefix`-bit network in a `bits`-bit address.
fn mask(prefix: u8, bits: u32) -> u128 {
    let width = if bits == 32 {
        u128::from(u32::MAX)
    } else {
        u128::MAX
    };
    let host = bits.saturating_sub(u32::from(prefix));
    if host >= 128 {
        0
    } else {
        (width >> host) << host
    }
}

impl FromStr for Cidr {
    type Err = CidrError;

    /// `ADDRESS/PREFIX`, or a bare address (a single host: /32 or /128).
    fn from_str(text: &str) -> Result<Self, CidrError> {
        let not = || CidrError::NotAnAddress(text.to_string());
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let ip: IpAddr = addr.parse().map_err(|_| not())?;
        let max: u8 = if ip.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            // Digits only: `u8::from_str` would take a leading `+`.
            Some(p) => Some(p)
                .filter(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|p| p.parse::<u8>().ok())
                .filter(|p| *p <= max)
                .ok_or(CidrError::BadPrefix {
                    text: text.to_string(),
                    max,
                })?,
        };
        let (value, bits) = match ip {
            IpAddr::V4(a) => (u128::from(u32::from(a)), 32),
            IpAddr::V6(a) => (u128::from(a), 128),
        };
        let network = value & mask(prefix, bits);
        let cidr = Cidr {
            network,
            prefix,
            v4: ip.is_ipv4(),
        };
        if network != value {
            return Err(CidrError::HostBits {
                text: text.to_string(),
                suggest: cidr.to_string(),
            });
        }
        Ok(cidr)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.v4 {
            let a = std::net::Ipv4Addr::from(self.network as u32);
            write!(f, "{a}/{}", self.prefix)
        } else {
            let a = std::net::Ipv6Addr::from(self.network);
            write!(f, "{a}/{}", self.prefix)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn parses_ranges_and_hosts() {
        let c: Cidr = "10.0.0.0/8".parse().unwrap();
        assert!(c.contains(ip("10.255.1.2")));
        assert!(!c.contains(ip("11.0.0.1")));
        let c: Cidr = "172.16.0.0/12".parse().unwrap();
        assert!(c.contains(ip("172.31.255.255")));
        assert!(!c.contains(ip("172.32.0.0")));
        let host: Cidr = "192.0.2.7".parse().unwrap();
        assert_eq!(host.to_string(), "192.0.2.7/32");
        assert!(host.contains(ip("192.0.2.7")));
        assert!(!host.contains(ip("192.0.2.8")));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("203.0.113.9")));
        assert!(!all.contains(ip("2001:db8::1")), "families never mix");
        let v6: Cidr = "fc00::/7".parse().unwrap();
        assert!(v6.contains(ip("fd12:3456::1")));
        assert!(!v6.contains(ip("fe80::1")));
        let all6: Cidr = "::/0".parse().unwrap();
        assert!(all6.contains(ip("2001:db8::1")));
        assert_eq!("::1".parse::<Cidr>().unwrap().to_string(), "::1/128");
    }

    #[test]
    fn ipv4_mapped_clients_match_ipv4_ranges() {
        let c: Cidr = "10.0.0.0/8".parse().unwrap();
        assert!(c.contains(ip("::ffff:10.1.2.3")));
        let v6: Cidr = "::ffff:0:0/96".parse().unwrap();
        assert!(!v6.contains(ip("::ffff:10.1.2.3")), "matched as IPv4");
    }

    #[test]
    fn refuses_bad_text_with_a_hint() {
        assert_eq!(
            "10.0.0.1/8".parse::<Cidr>(),
            Err(CidrError::HostBits {
                text: "10.0.0.1/8".into(),
                suggest: "10.0.0.0/8".into()
            })
        );
        assert_eq!(
            "10.0.0.1/8".parse::<Cidr>().unwrap_err().to_string(),
            "\"10.0.0.1/8\" has bits set after the prefix (did you mean 10.0.0.0/8?)"
        );
        for bad in [
            "",
            "10.0.0.0/",
            "10.0.0.0/33",
            "::/129",
            "10/8",
            "x",
            "10.0.0.0/+8",
        ] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad:?}");
        }
        assert!(matches!(
            "10.0.0.0/33".parse::<Cidr>(),
            Err(CidrError::BadPrefix { max: 32, .. })
        ));
    }

    #[test]
    fn internal_ranges_are_loopback_and_private() {
        let internal = Cidr::internal();
        let allowed = |s: &str| internal.iter().any(|c| c.contains(ip(s)));
        for inside in [
            "127.0.0.1",
            "127.0.0.2",
            "::1",
            "10.1.2.3",
            "172.20.0.1",
            "192.168.1.1",
            "fd00::1",
            "::ffff:192.168.0.10",
        ] {
            assert!(allowed(inside), "{inside}");
        }
        for outside in ["8.8.8.8", "172.32.0.1", "2001:db8::1", "fe80::1", "::2"] {
            assert!(!allowed(outside), "{outside}");
        }
        let shown: Vec<String> = internal.iter().map(Cidr::to_string).collect();
        assert_eq!(
            shown,
            [
                "127.0.0.0/8",
                "10.0.0.0/8",
                "172.16.0.0/12",
                "192.168.0.0/16",
                "::1/128",
                "fc00::/7"
            ]
        );
    }
}
