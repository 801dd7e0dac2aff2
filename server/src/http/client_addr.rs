//! Which client a request comes from, for the per-address limits: the
//! connection's peer, or, when the peer is one of the trusted proxies
//! (`--trusted-proxies`), the client that proxy forwards for.

use std::net::IpAddr;

use axum::extract::ConnectInfo;
use axum::http::{Extensions, HeaderMap};

use crate::listener::{per_subscriber, ClientAddr};

/// The reverse proxies whose `X-Forwarded-For` names the client.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<ipnet::IpNet>);

impl TrustedProxies {
    pub fn new(proxies: Vec<ipnet::IpNet>) -> TrustedProxies {
        TrustedProxies(proxies)
    }

    fn trust(&self, address: &IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(address))
    }

    /// The client a request counts against for the per-address limits:
    /// the connection's peer, or, when the peer is a trusted proxy, the
    /// rightmost address of X-Forwarded-For that is not one. IPv6 clients
    /// count by their /64, which one subscriber usually holds whole.
    /// `None` only where no connection info exists.
    pub fn client_of(&self, headers: &HeaderMap, extensions: &Extensions) -> Option<IpAddr> {
        let peer = extensions
            .get::<ConnectInfo<ClientAddr>>()
            .map(|info| info.0 .0.ip())?;
        let mut client = peer.to_canonical();
        if self.trust(&client) {
            let forwarded = headers
                .get_all("x-forwarded-for")
                .iter()
                .filter_map(|value| value.to_str().ok())
                .flat_map(|value| value.split(','))
                .collect::<Vec<_>>();
            for hop in forwarded.iter().rev() {
                let Ok(hop) = hop.trim().parse::<IpAddr>() else {
                    break;
                };
                client = hop.to_canonical();
                if !self.trust(&client) {
                    break;
                }
            }
        }
        Some(per_subscriber(client))
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use clap::Parser;

    use super::*;

    #[test]
    fn the_client_is_the_peer_or_what_a_trusted_proxy_forwards() {
        let argv = ["p4p-server", "--trusted-proxies", "10.0.0.0/8,192.0.2.7"];
        let cli = crate::config::Cli::try_parse_from(argv).expect("arguments");
        let proxies = TrustedProxies::new(cli.serve.limits.trusted_proxies);
        let client = |peer: &str, forwarded: &[&str]| {
            let mut extensions = Extensions::new();
            let peer: SocketAddr = peer.parse().expect("peer");
            extensions.insert(ConnectInfo(ClientAddr(peer)));
            let mut headers = HeaderMap::new();
            for value in forwarded {
                headers.append("x-forwarded-for", value.parse().expect("header"));
            }
            proxies
                .client_of(&headers, &extensions)
                .expect("an address")
                .to_string()
        };
        // Anyone else's X-Forwarded-For is ignored.
        assert_eq!(client("203.0.113.9:5000", &["1.2.3.4"]), "203.0.113.9");
        // From a proxy: the rightmost hop that is not a proxy, so that a
        // client cannot choose its address by sending the header itself.
        assert_eq!(client("10.1.2.3:5000", &["6.6.6.6, 1.2.3.4"]), "1.2.3.4");
        assert_eq!(
            client(
                "10.1.2.3:5000",
                &["6.6.6.6, 1.2.3.4, 192.0.2.7", "10.9.9.9"]
            ),
            "1.2.3.4"
        );
        // Nothing forwarded, or nonsense: the proxy itself, or the last
        // good hop.
        assert_eq!(client("10.1.2.3:5000", &[]), "10.1.2.3");
        assert_eq!(client("10.1.2.3:5000", &["junk, 1.2.3.4"]), "1.2.3.4");
        // IPv6 clients count by their /64; IPv4 in IPv6 as IPv4.
        assert_eq!(
            client("[2001:db8:1:2:aaaa::1]:5000", &[]),
            client("[2001:db8:1:2:bbbb::9]:6000", &[])
        );
        assert_eq!(client("[::ffff:203.0.113.9]:5000", &[]), "203.0.113.9");
        // Without connection info (no listener), no address.
        assert_eq!(
            proxies.client_of(&HeaderMap::new(), &Extensions::new()),
            None
        );
    }
}
