//! Who the client is, behind nginx. The API's TCP peer is nginx, so the client's address comes
//! from the headers nginx sets, but only when the peer really is a proxy we run: anybody else
//! can write those headers too, and would then choose the address they are limited as.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use axum::http::HeaderMap;
use voting::ip_net::IpNet;

/// nginx runs on the same machine as the API replicas and reaches them over loopback.
pub fn default_trusted_proxies() -> Vec<IpNet> {
    vec![IpNet::host(IpAddr::V4(Ipv4Addr::LOCALHOST)), IpNet::host(IpAddr::V6(Ipv6Addr::LOCALHOST))]
}

/// The client's address: the X-Real-IP header set by nginx when the TCP peer is a trusted proxy
/// (configured list, default 127.0.0.1 and ::1), else the TCP peer itself. Never trust the header
/// from untrusted peers (a client could forge it).
///
/// Without a usable X-Real-IP, the right-most X-Forwarded-For address that is not a trusted
/// proxy: each proxy appends the address it was reached from, so the entries right of the first
/// untrusted one were written by our proxies, and everything left of it may be forged.
pub fn client_ip(headers: &HeaderMap, peer: SocketAddr, trusted_proxies: &[IpNet]) -> IpAddr {
    let peer = peer.ip().to_canonical();
    if !is_trusted(peer, trusted_proxies) {
        return peer;
    }
    real_ip(headers).or_else(|| forwarded_for(headers, trusted_proxies)).unwrap_or(peer)
}

fn real_ip(headers: &HeaderMap) -> Option<IpAddr> {
    parse_address(headers.get("x-real-ip")?.to_str().ok()?)
}

fn forwarded_for(headers: &HeaderMap, trusted_proxies: &[IpNet]) -> Option<IpAddr> {
    // A request may carry the header more than once; together they form one list, in order.
    let entries: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .collect();
    let mut left_most_trusted = None;
    for entry in entries.into_iter().rev() {
        // An unreadable entry next to our proxies' ones was not written by them: whoever sent it
        // can't be told apart, so fall back to the peer rather than guess.
        let address = parse_address(entry)?;
        if !is_trusted(address, trusted_proxies) {
            return Some(address);
        }
        left_most_trusted = Some(address);
    }
    // Every hop was one of ours: the client is on the proxies' machine itself.
    left_most_trusted
}

/// An address as proxies write it: bare, or with a port (`1.2.3.4:5678`, `[2001:db8::1]:443`).
fn parse_address(text: &str) -> Option<IpAddr> {
    let text = text.trim();
    let address = text.parse::<IpAddr>().or_else(|_| text.parse::<SocketAddr>().map(|s| s.ip())).ok()?;
    Some(address.to_canonical())
}

/// Compared in canonical form: on a dual-stack socket an IPv4 peer shows up as `::ffff:a.b.c.d`.
fn is_trusted(address: IpAddr, trusted_proxies: &[IpNet]) -> bool {
    trusted_proxies.iter().any(|trusted| trusted.contains(address))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, value.parse().unwrap());
        }
        map
    }

    fn peer(address: &str) -> SocketAddr {
        SocketAddr::new(address.parse().unwrap(), 50_000)
    }

    fn ip(address: &str) -> IpAddr {
        address.parse().unwrap()
    }

    fn net(address: &str) -> IpNet {
        address.parse().unwrap()
    }

    #[test]
    fn behind_a_trusted_proxy_the_real_ip_header_names_the_client() {
        let h = headers(&[("x-real-ip", "203.0.113.7")]);
        assert_eq!(client_ip(&h, peer("127.0.0.1"), &default_trusted_proxies()), ip("203.0.113.7"));
        assert_eq!(client_ip(&h, peer("::1"), &default_trusted_proxies()), ip("203.0.113.7"));
    }

    #[test]
    fn an_untrusted_peer_cannot_choose_its_address_with_forged_headers() {
        let h = headers(&[("x-real-ip", "203.0.113.7"), ("x-forwarded-for", "198.51.100.1")]);
        assert_eq!(client_ip(&h, peer("192.0.2.10"), &default_trusted_proxies()), ip("192.0.2.10"));
    }

    #[test]
    fn without_headers_the_client_is_the_peer() {
        let h = HeaderMap::new();
        assert_eq!(client_ip(&h, peer("127.0.0.1"), &default_trusted_proxies()), ip("127.0.0.1"));
        assert_eq!(client_ip(&h, peer("192.0.2.10"), &default_trusted_proxies()), ip("192.0.2.10"));
    }

    #[test]
    fn an_unreadable_real_ip_header_is_ignored() {
        let h = headers(&[("x-real-ip", "not an address")]);
        assert_eq!(client_ip(&h, peer("127.0.0.1"), &default_trusted_proxies()), ip("127.0.0.1"));
    }

    #[test]
    fn the_forwarded_for_chain_is_read_from_the_right_past_trusted_proxies() {
        // The client forged the first entry; 198.51.100.1 is who reached our first proxy, which
        // is 10.0.0.5, which reached nginx on loopback.
        let trusted = [net("127.0.0.1"), net("10.0.0.5")];
        let h = headers(&[("x-forwarded-for", "1.1.1.1, 198.51.100.1, 10.0.0.5")]);
        assert_eq!(client_ip(&h, peer("127.0.0.1"), &trusted), ip("198.51.100.1"));
    }

    #[test]
    fn repeated_forwarded_for_headers_form_one_chain() {
        let h = headers(&[("x-forwarded-for", "1.1.1.1"), ("x-forwarded-for", "198.51.100.1, 127.0.0.1")]);
        assert_eq!(client_ip(&h, peer("127.0.0.1"), &default_trusted_proxies()), ip("198.51.100.1"));
    }

    #[test]
    fn the_real_ip_header_wins_over_forwarded_for() {
        let h = headers(&[("x-real-ip", "203.0.113.7"), ("x-forwarded-for", "198.51.100.1")]);
        assert_eq!(client_ip(&h, peer("127.0.0.1"), &default_trusted_proxies()), ip("203.0.113.7"));
    }

    #[test]
    fn a_chain_of_only_trusted_proxies_names_its_first_hop() {
        let h = headers(&[("x-forwarded-for", "::1, 127.0.0.1")]);
        assert_eq!(client_ip(&h, peer("127.0.0.1"), &default_trusted_proxies()), ip("::1"));
    }

    #[test]
    fn garbage_in_the_chain_before_an_untrusted_address_falls_back_to_the_peer() {
        let h = headers(&[("x-forwarded-for", "198.51.100.1, garbage, 127.0.0.1")]);
        assert_eq!(client_ip(&h, peer("127.0.0.1"), &default_trusted_proxies()), ip("127.0.0.1"));
    }

    #[test]
    fn a_proxy_anywhere_in_a_trusted_network_is_believed() {
        let h = headers(&[("x-real-ip", "203.0.113.7")]);
        let trusted = [net("10.42.0.0/16")];
        assert_eq!(client_ip(&h, peer("10.42.3.4"), &trusted), ip("203.0.113.7"));
        assert_eq!(client_ip(&h, peer("10.43.3.4"), &trusted), ip("10.43.3.4"));
    }

    #[test]
    fn addresses_with_ports_are_understood() {
        let h = headers(&[("x-forwarded-for", "[2001:db8::1]:443, 198.51.100.1:5678")]);
        let trusted = [net("127.0.0.1"), net("198.51.100.1")];
        assert_eq!(client_ip(&h, peer("127.0.0.1"), &trusted), ip("2001:db8::1"));
    }

    #[test]
    fn an_ipv4_peer_on_a_dual_stack_socket_is_still_trusted() {
        let h = headers(&[("x-real-ip", "203.0.113.7")]);
        assert_eq!(client_ip(&h, peer("::ffff:127.0.0.1"), &default_trusted_proxies()), ip("203.0.113.7"));
    }
}
