//! An address or a network (`10.0.0.5`, `10.42.0.0/16`, `fd00::/8`): how the API is told which
//! peers are its own proxies. In Kubernetes or docker the proxy's address is not known in advance,
//! only its network.

use std::net::IpAddr;
use std::str::FromStr;

use serde::Deserialize;
use serde::de::{self, Deserializer, SeqAccess, Visitor};

/// An `ipnet` network that also reads a bare address (as a host network) and matches an IPv4
/// peer written as IPv6 (`::ffff:a.b.c.d`, as a dual-stack socket reports it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct IpNet(ipnet::IpNet);

impl IpNet {
    pub fn host(address: IpAddr) -> Self {
        Self(ipnet::IpNet::from(address.to_canonical()))
    }

    /// Whether `ip` is in this network (an IPv4 address mapped into IPv6 counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.contains(&ip.to_canonical())
    }
}

impl FromStr for IpNet {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        if text.contains('/') {
            let net: ipnet::IpNet =
                text.parse().map_err(|_| format!("'{text}' is not an IP network (address/prefix)"))?;
            Ok(Self(net.trunc()))
        } else {
            let address: IpAddr = text.parse().map_err(|_| format!("'{text}' is not an IP address or network"))?;
            Ok(Self::host(address))
        }
    }
}

impl TryFrom<String> for IpNet {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

/// A list of networks, as YAML writes it (`["10.0.0.0/8", "127.0.0.1"]`) or as an environment
/// variable can (`10.0.0.0/8,127.0.0.1`): the config crate hands a variable over as one string.
/// Empty entries are skipped, so an empty variable trusts no proxy at all.
///
/// # Errors
/// An entry that is not an address or a network, named in the message.
pub fn list<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<IpNet>, D::Error> {
    struct List;

    impl<'de> Visitor<'de> for List {
        type Value = Vec<IpNet>;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a list of IP addresses or networks, or one string of them separated by commas")
        }

        fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
            text.split(',').map(str::trim).filter(|t| !t.is_empty()).map(|t| t.parse().map_err(E::custom)).collect()
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut nets = Vec::new();
            while let Some(net) = seq.next_element::<IpNet>()? {
                nets.push(net);
            }
            Ok(nets)
        }
    }

    deserializer.deserialize_any(List)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn hosts_and_networks_contain_what_they_should() {
        let host: IpNet = "127.0.0.1".parse().unwrap();
        assert!(host.contains(ip("127.0.0.1")) && !host.contains(ip("127.0.0.2")));
        assert!(host.contains(ip("::ffff:127.0.0.1")), "an IPv4 peer on a dual-stack socket");
        let net: IpNet = "10.42.0.0/16".parse().unwrap();
        assert!(net.contains(ip("10.42.7.9")) && !net.contains(ip("10.43.0.1")));
        let v6: IpNet = "fd00::/8".parse().unwrap();
        assert!(v6.contains(ip("fd12::1")) && !v6.contains(ip("fe80::1")) && !v6.contains(ip("10.0.0.1")));
        assert!("0.0.0.0/0".parse::<IpNet>().unwrap().contains(ip("8.8.8.8")));
        assert!("10.0.0.0/33".parse::<IpNet>().is_err());
        assert!("nginx".parse::<IpNet>().is_err());
    }
}
