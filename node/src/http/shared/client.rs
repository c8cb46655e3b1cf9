//! The client a request comes from, as the per-address limits count it.
//!
//! The TCP peer, unless the peer is one of the node's `trusted_proxies` (a TLS terminator or
//! load balancer the operator configured): then the client is the last address in
//! `X-Forwarded-For` that is not itself a trusted proxy, read from the right, since each proxy
//! appends the address it received the request from and only the trusted ones' entries can be
//! believed. A client that is not a trusted proxy cannot choose its address by sending the
//! header: it is ignored.

use std::net::{IpAddr, SocketAddr};

use axum::http::HeaderMap;
use ipnet::IpNet;

/// The client address of a request from `peer` with `headers`, the node trusting the proxies
/// `trusted`.
///
/// - `peer` None (the router called in-process): the unspecified address, one shared key.
/// - `peer` not in `trusted` (or `trusted` empty): the peer's address.
/// - otherwise the rightmost `X-Forwarded-For` entry (over every such header, in order) that
///   is not in `trusted`; when an entry is not an address (`unknown`, a name, garbage), the
///   last trusted hop before it, so that a malformed header never counts against someone
///   else; when every entry is trusted, the leftmost of them.
pub fn address(peer: Option<SocketAddr>, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let Some(peer) = peer.map(|p| canonical(p.ip())) else {
        return IpAddr::from([0, 0, 0, 0]);
    };
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        let Some(ip) = parse_hop(hop) else {
            break;
        };
        client = ip;
        if !is_trusted(&ip) {
            break;
        }
    }
    client
}

/// One `X-Forwarded-For` entry: an address, with or without a port (`192.0.2.1:443`,
/// `[2001:db8::1]:443`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .map(canonical)
}

/// An IPv4 address mapped into IPv6 (`::ffff:192.0.2.1`, as a dual-stack listener sees IPv4
/// peers) as the IPv4 address, so that one client is one key and `10.0.0.0/8` matches it.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append("x-forwarded-for", v.parse().unwrap());
        }
        h
    }

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|n| n.parse().unwrap()).collect()
    }

    fn peer(ip: &str) -> Option<SocketAddr> {
        Some(SocketAddr::new(ip.parse().unwrap(), 50000))
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_client_that_is_not_a_trusted_proxy_cannot_choose_its_address() {
        let h = headers(&["198.51.100.9"]);
        assert_eq!(address(peer("203.0.113.5"), &h, &[]), ip("203.0.113.5"));
        let trusted = nets(&["10.0.0.5/32"]);
        assert_eq!(
            address(peer("203.0.113.5"), &h, &trusted),
            ip("203.0.113.5")
        );
    }

    #[test]
    fn behind_a_trusted_proxy_the_client_is_the_last_untrusted_hop() {
        let trusted = nets(&["10.0.0.0/24"]);
        // A client's own (forged) entry on the left is not believed: the proxy appended the
        // address it saw.
        let h = headers(&["1.2.3.4, 198.51.100.9"]);
        assert_eq!(address(peer("10.0.0.5"), &h, &trusted), ip("198.51.100.9"));
        // Two trusted proxies in a row, over two header lines.
        let h = headers(&["1.2.3.4, 198.51.100.9", "10.0.0.7"]);
        assert_eq!(address(peer("10.0.0.5"), &h, &trusted), ip("198.51.100.9"));
        // With ports, and IPv6.
        let h = headers(&["[2001:db8::7]:443"]);
        assert_eq!(address(peer("10.0.0.5"), &h, &trusted), ip("2001:db8::7"));
        let h = headers(&["198.51.100.9:5555"]);
        assert_eq!(address(peer("10.0.0.5"), &h, &trusted), ip("198.51.100.9"));
    }

    #[test]
    fn a_missing_or_malformed_header_counts_against_the_proxy_not_someone_else() {
        let trusted = nets(&["10.0.0.0/24"]);
        assert_eq!(
            address(peer("10.0.0.5"), &HeaderMap::new(), &trusted),
            ip("10.0.0.5")
        );
        let h = headers(&["198.51.100.9, unknown"]);
        assert_eq!(address(peer("10.0.0.5"), &h, &trusted), ip("10.0.0.5"));
        let h = headers(&["198.51.100.9, 10.0.0.9, garbage"]);
        assert_eq!(address(peer("10.0.0.5"), &h, &trusted), ip("10.0.0.5"));
        let h = headers(&["10.0.0.8, 10.0.0.9"]);
        assert_eq!(address(peer("10.0.0.5"), &h, &trusted), ip("10.0.0.8"));
    }

    #[test]
    fn an_ipv4_peer_seen_through_a_dual_stack_listener_is_one_client() {
        let trusted = nets(&["10.0.0.0/24"]);
        let h = headers(&["198.51.100.9"]);
        assert_eq!(
            address(peer("::ffff:10.0.0.5"), &h, &trusted),
            ip("198.51.100.9")
        );
        assert_eq!(
            address(peer("::ffff:203.0.113.5"), &HeaderMap::new(), &[]),
            ip("203.0.113.5")
        );
        assert_eq!(address(None, &h, &trusted), ip("0.0.0.0"));
    }
}
