//! Addresses and ranges as crowdwall keeps them: one identity per attacker (IPv4-mapped IPv6
//! becomes IPv4) and CIDR ranges without host bits.

use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;
use serde::{Deserialize, Deserializer};

/// Why a text is not an address or range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NetError {
    #[error("'{0}' is not an address or CIDR range")]
    Syntax(String),
    /// `10.0.0.1/8` is more likely a typo than a wish to ban a /8.
    #[error("'{text}' has host bits set; did you mean {network}?")]
    HostBits { text: String, network: IpNet },
}

/// Turns an IP as written in a log into the address events carry: IPv4-mapped IPv6 becomes
/// plain IPv4 so that one attacker has one identity (and one kernel set) whichever socket
/// family the service used.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

/// Parses an address as logged, or `None` (host names are not resolved: a name in a log is
/// whatever the remote side's DNS says).
pub fn parse_ip(s: &str) -> Option<IpAddr> {
    IpAddr::from_str(s).ok().map(canonical_ip)
}

/// Parses `1.2.3.4`, `1.2.3.0/24`, `2001:db8::/48`; IPv4-mapped IPv6 becomes IPv4. Host bits
/// set in a CIDR are an error.
pub fn parse_net(s: &str) -> Result<IpNet, NetError> {
    let s = s.trim();
    let net = if s.contains('/') {
        let n: IpNet = s.parse().map_err(|_| NetError::Syntax(s.into()))?;
        if n.trunc() != n {
            return Err(NetError::HostBits {
                text: s.into(),
                network: n.trunc(),
            });
        }
        n
    } else {
        let ip: IpAddr = s.parse().map_err(|_| NetError::Syntax(s.into()))?;
        IpNet::from(canonical_ip(ip))
    };
    Ok(match net {
        IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.network().to_ipv4_mapped() {
            Some(v4) => IpNet::new(v4.into(), v6.prefix_len() - 96).unwrap_or(net),
            None => net,
        },
        other => other,
    })
}

/// A single address as the address, a range as CIDR: how decisions are shown.
pub fn value_text(net: &IpNet) -> String {
    if net.prefix_len() == net.max_prefix_len() {
        net.addr().to_string()
    } else {
        net.to_string()
    }
}

/// An address or CIDR range in a config file; a bare address means a single-address range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Net(pub IpNet);

impl<'de> Deserialize<'de> for Net {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_net(&s).map(Net).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nets_canonicalise() {
        assert_eq!(
            parse_net("::ffff:192.0.2.1").unwrap().to_string(),
            "192.0.2.1/32"
        );
        assert_eq!(
            parse_net("2001:db8::/32").unwrap().to_string(),
            "2001:db8::/32"
        );
        assert!(parse_net("300.1.1.1").is_err());
        assert_eq!(
            parse_net("10.0.0.1/8").unwrap_err().to_string(),
            "'10.0.0.1/8' has host bits set; did you mean 10.0.0.0/8?"
        );
    }

    #[test]
    fn mapped_v6_becomes_v4() {
        assert_eq!(
            parse_ip("::ffff:198.51.100.7"),
            Some("198.51.100.7".parse().unwrap())
        );
        assert_eq!(
            parse_ip("2001:db8::1"),
            Some("2001:db8::1".parse().unwrap())
        );
        assert_eq!(parse_ip("host.example"), None);
    }
}
