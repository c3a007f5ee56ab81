//! Which address a request comes from: the socket peer, or — when the peer is a
//! proxy listed in `TRUSTED_PROXIES` — the rightmost untrusted hop of
//! `X-Forwarded-For`.
//!
//! Only the hops appended by trusted proxies are believed: a client can write anything
//! into the header it sends, but it cannot stop the trusted proxy in front of us from
//! appending the address it really saw. Walking from the right and stopping at the
//! first address that is not a trusted proxy therefore finds the client, whatever it
//! put on the left.

use std::{fmt, net::IpAddr, str::FromStr};

use actix_web::http::header::{HeaderMap, HeaderName};
use ipnet::IpNet;

/// `X-Forwarded-For`.
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// The proxies whose `X-Forwarded-For` is believed (`TRUSTED_PROXIES`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// No proxy is trusted: the socket peer is the client.
    pub fn none() -> Self {
        Self::default()
    }

    /// Parses a comma-separated list of addresses and CIDR networks
    /// (`10.0.0.0/8, 192.168.1.7, fd00::/8`). Empty items are refused.
    pub fn parse(raw: &str) -> Result<Self, String> {
        raw.split(',')
            .map(str::trim)
            .map(|item| {
                if item.is_empty() {
                    return Err("an item of the list is empty".to_owned());
                }
                IpNet::from_str(item)
                    .map(|net| net.trunc())
                    .or_else(|_| IpAddr::from_str(item).map(IpNet::from))
                    .map_err(|_| format!("{item:?} is neither an IP address nor a CIDR network"))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Self)
    }

    /// True when no proxy is trusted.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// True when `ip` belongs to a trusted proxy.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client's address: `peer` unless it is a trusted proxy, in which case the
    /// rightmost hop of `X-Forwarded-For` (all occurrences, in order) that is not a
    /// trusted proxy. When every hop is trusted, the leftmost one; when a hop cannot be
    /// parsed, the trusted hop to its right (the last address we can vouch for).
    pub fn client_address(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> Option<IpAddr> {
        let peer = peer?.to_canonical();
        if !self.contains(peer) {
            return Some(peer);
        }
        let hops: Vec<&str> = headers
            .get_all(X_FORWARDED_FOR)
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .map(str::trim)
            .collect();
        let mut client = peer;
        for hop in hops.iter().rev() {
            let Some(ip) = parse_hop(hop) else {
                return Some(client);
            };
            client = ip;
            if !self.contains(ip) {
                return Some(ip);
            }
        }
        Some(client)
    }
}

impl fmt::Display for TrustedProxies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let items: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&items.join(","))
    }
}

/// One `X-Forwarded-For` entry: `203.0.113.7`, `2001:db8::1`, `[2001:db8::1]:443` or
/// `203.0.113.7:5123`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    if let Ok(ip) = IpAddr::from_str(hop) {
        return Some(ip.to_canonical());
    }
    std::net::SocketAddr::from_str(hop)
        .ok()
        .map(|addr| addr.ip().to_canonical())
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::HeaderValue;

    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn headers(values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for value in values {
            map.append(X_FORWARDED_FOR, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn parses_addresses_and_networks() {
        let proxies = TrustedProxies::parse("10.0.0.0/8, 192.168.1.7,fd00::/8").unwrap();
        assert!(proxies.contains(ip("10.1.2.3")));
        assert!(proxies.contains(ip("192.168.1.7")));
        assert!(!proxies.contains(ip("192.168.1.8")));
        assert!(proxies.contains(ip("fd12::1")));
        // An IPv4 peer seen on a dual-stack socket.
        assert!(proxies.contains(ip("::ffff:10.9.9.9")));
        // Host bits in a network are ignored, as in `10.1.2.3/8`.
        assert!(
            TrustedProxies::parse("10.1.2.3/8")
                .unwrap()
                .contains(ip("10.200.0.1"))
        );
        for bad in ["", "10.0.0.0/8,", "nginx", "10.0.0.0/33", "1.2.3"] {
            assert!(TrustedProxies::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn untrusted_peers_are_the_client_whatever_they_forward() {
        let proxies = TrustedProxies::parse("10.0.0.1").unwrap();
        let forged = headers(&["203.0.113.7"]);
        assert_eq!(
            proxies.client_address(Some(ip("198.51.100.2")), &forged),
            Some(ip("198.51.100.2"))
        );
        assert_eq!(
            TrustedProxies::none().client_address(Some(ip("10.0.0.1")), &forged),
            Some(ip("10.0.0.1"))
        );
    }

    #[test]
    fn the_rightmost_untrusted_hop_is_the_client() {
        let proxies = TrustedProxies::parse("10.0.0.0/8").unwrap();
        let peer = Some(ip("10.0.0.1"));
        // The client put a forged address first; the proxy appended the real one.
        let h = headers(&["198.51.100.99, 203.0.113.7"]);
        assert_eq!(proxies.client_address(peer, &h), Some(ip("203.0.113.7")));
        // Two proxies, two header lines.
        let h = headers(&["203.0.113.7", "10.0.0.2"]);
        assert_eq!(proxies.client_address(peer, &h), Some(ip("203.0.113.7")));
        // Ports and brackets.
        let h = headers(&["[2001:db8::1]:443"]);
        assert_eq!(proxies.client_address(peer, &h), Some(ip("2001:db8::1")));
        let h = headers(&["203.0.113.7:5123"]);
        assert_eq!(proxies.client_address(peer, &h), Some(ip("203.0.113.7")));
    }

    #[test]
    fn missing_all_trusted_or_garbled_headers_fall_back_to_what_we_can_vouch_for() {
        let proxies = TrustedProxies::parse("10.0.0.0/8").unwrap();
        let peer = Some(ip("10.0.0.1"));
        assert_eq!(proxies.client_address(peer, &headers(&[])), peer);
        assert_eq!(
            proxies.client_address(peer, &headers(&["10.0.0.3, 10.0.0.2"])),
            Some(ip("10.0.0.3"))
        );
        assert_eq!(
            proxies.client_address(peer, &headers(&["203.0.113.7, unknown, 10.0.0.2"])),
            Some(ip("10.0.0.2"))
        );
        assert_eq!(proxies.client_address(None, &headers(&[])), None);
    }
}
