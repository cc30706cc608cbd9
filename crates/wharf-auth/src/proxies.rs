//! Who is really on the other end, and which URL they used: the client
//! address for throttling and the audit log, and the scheme and host the
//! token realm and cookies are built from.
//!
//! `X-Forwarded-*` headers are only believed when the TCP peer is a
//! configured trusted proxy; from anybody else they are ignored, or any
//! client could pick its own address and dodge throttling. (actix-web's own
//! `connection_info()` believes them from anyone, so it is not used here.)

use std::net::IpAddr;

use actix_web::HttpRequest;
use actix_web::http::header;
use ipnet::IpNet;

use crate::error::AuthError;

/// The configured trusted proxies.
#[derive(Debug, Clone, Default)]
pub(crate) struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Parse addresses (`10.0.0.5`, `::1`) and networks (`10.0.0.0/8`).
    pub(crate) fn parse(entries: &[String]) -> Result<TrustedProxies, AuthError> {
        let mut nets = Vec::with_capacity(entries.len());
        for entry in entries {
            let entry = entry.trim();
            let net = match entry.parse::<IpNet>() {
                Ok(net) => net,
                Err(_) => entry.parse::<IpAddr>().map(IpNet::from).map_err(|_| {
                    AuthError::Config(format!(
                        "trusted_proxies entry {entry:?} is neither an IP address nor a CIDR network"
                    ))
                })?,
            };
            nets.push(net);
        }
        Ok(TrustedProxies(nets))
    }

    fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// Whether the request came straight from a trusted proxy.
    pub(crate) fn peer_is_trusted(&self, req: &HttpRequest) -> bool {
        req.peer_addr().is_some_and(|peer| self.contains(peer.ip()))
    }

    /// The client's address: the TCP peer, or, when the peer is a trusted
    /// proxy, the right-most `X-Forwarded-For` entry that is not one (the
    /// entries to its left were written by the client and prove nothing).
    pub(crate) fn client_addr(&self, req: &HttpRequest) -> Option<String> {
        let peer = canonical(req.peer_addr()?.ip());
        if !self.contains(peer) {
            return Some(peer.to_string());
        }
        let hops: Vec<&str> = req
            .headers()
            .get_all("x-forwarded-for")
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|hop| !hop.is_empty())
            .collect();
        let mut client = peer;
        for hop in hops.iter().rev() {
            let Some(ip) = parse_hop(hop) else {
                // Unreadable: stop at the last address a trusted proxy vouched for.
                break;
            };
            client = ip;
            if !self.contains(ip) {
                break;
            }
        }
        Some(client.to_string())
    }

    /// `https` or `http`, as the client used it.
    pub(crate) fn scheme(&self, req: &HttpRequest) -> &'static str {
        if self.peer_is_trusted(req)
            && let Some(proto) = first_forwarded(req, "x-forwarded-proto")
        {
            return if proto.eq_ignore_ascii_case("https") {
                "https"
            } else {
                "http"
            };
        }
        if req.app_config().secure() {
            "https"
        } else {
            "http"
        }
    }

    /// The host (and port) the client addressed.
    pub(crate) fn host(&self, req: &HttpRequest) -> String {
        let forwarded = self
            .peer_is_trusted(req)
            .then(|| first_forwarded(req, "x-forwarded-host"))
            .flatten();
        let direct = req
            .headers()
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        forwarded
            .or(direct)
            .filter(|h| is_plain_host(h))
            .unwrap_or_else(|| req.app_config().host().to_owned())
    }
}

/// IPv4-mapped IPv6 addresses (`::ffff:10.0.0.1`) as the IPv4 they are.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// An `X-Forwarded-For` entry: an address, maybe with a port or brackets.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    if let Ok(sock) = hop.parse::<std::net::SocketAddr>() {
        return Some(canonical(sock.ip()));
    }
    hop.trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
        .ok()
        .map(canonical)
}

fn first_forwarded(req: &HttpRequest, name: &str) -> Option<String> {
    req.headers()
        .get(name)?
        .to_str()
        .ok()?
        .split(',')
        .next()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

/// Only host characters: the value goes inside a quoted challenge parameter.
fn is_plain_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 255
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']' | '_'))
}
