//! The IP allowlist: [`IpAllow`] / [`IpAllowLayer`], [`Cidr`], and where
//! the peer address comes from ([`PeerAddr`]).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::header::{HeaderName, FORWARDED};
use http::{Extensions, HeaderMap, Request};
use tower_layer::Layer;
use tower_service::Service;

use super::future::{Early, ResponseFuture};
use crate::response::Rejection;

/// The most forwarded hops walked from the right; a longer chain is cut
/// there (each hop must be a trusted proxy to go further anyway).
const MAX_HOPS: usize = 32;

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// A block of IP addresses in CIDR notation (`203.0.113.0/24`,
/// `2001:db8::/32`), or a single address (`198.51.100.7`).
///
/// An IPv4-mapped IPv6 block (`::ffff:203.0.113.0/120`) is the same as its
/// IPv4 form, and IPv4-mapped peer addresses are matched as IPv4. Host bits
/// after the prefix are ignored (`10.1.2.3/8` is `10.0.0.0/8`).
///
/// ```
/// use taskhook::verify::Cidr;
///
/// let block: Cidr = "203.0.113.0/24".parse()?;
/// assert!(block.contains("203.0.113.9".parse().unwrap()));
/// assert!(block.contains("::ffff:203.0.113.9".parse().unwrap()));
/// assert!(!block.contains("203.0.114.1".parse().unwrap()));
/// # Ok::<(), taskhook::verify::InvalidCidr>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// The block of `prefix` leading bits of `addr`.
    pub fn new(addr: IpAddr, prefix: u8) -> Result<Self, InvalidCidr> {
        let (addr, prefix) = match addr {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) if prefix >= 96 => (IpAddr::V4(v4), prefix - 96),
                _ => (addr, prefix),
            },
            IpAddr::V4(_) => (addr, prefix),
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if prefix > max {
            return Err(InvalidCidr);
        }
        let addr = match addr {
            IpAddr::V4(v4) => IpAddr::V4(Ipv4Addr::from(u32::from(v4) & mask32(prefix))),
            IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask128(prefix))),
        };
        Ok(Self { addr, prefix })
    }

    /// `true` if `ip` is in the block (an IPv4-mapped IPv6 address counts as
    /// its IPv4 address).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                u32::from(ip) & mask32(self.prefix) == u32::from(net)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                u128::from(ip) & mask128(self.prefix) == u128::from(net)
            }
            _ => false,
        }
    }
}

fn mask32(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

fn mask128(prefix: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0)
}

impl FromStr for Cidr {
    type Err = InvalidCidr;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let (addr, prefix) = match s.split_once('/') {
            Some((addr, prefix)) => {
                let addr: IpAddr = addr.parse().map_err(|_| InvalidCidr)?;
                let prefix = prefix.parse::<u8>().map_err(|_| InvalidCidr)?;
                (addr, prefix)
            }
            None => {
                let addr: IpAddr = s.parse().map_err(|_| InvalidCidr)?;
                (addr, if addr.is_ipv4() { 32 } else { 128 })
            }
        };
        Self::new(addr, prefix)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// A string that is not an address or a CIDR block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct InvalidCidr;

impl fmt::Display for InvalidCidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not an IP address or CIDR block")
    }
}

impl std::error::Error for InvalidCidr {}

/// The address of the connection's direct peer, as a request extension.
///
/// [`IpAllow`] looks for it first. Servers built on plain hyper insert it
/// per connection (see the [module docs](crate::verify)); axum's
/// `ConnectInfo<SocketAddr>` is read as well (feature `axum`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerAddr(pub SocketAddr);

/// The client address [`IpAllow`] decided on (the peer itself, or the
/// address a trusted proxy forwarded for), put in the request extensions
/// for the inner service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

/// Which header trusted proxies use to forward the client address.
///
/// Only this one is read: a client could add the other one itself, and
/// the proxy would pass it on untouched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ForwardedHeader {
    /// `X-Forwarded-For: client, proxy1, proxy2` (the default).
    #[default]
    XForwardedFor,
    /// `Forwarded: for=client, for="[2001:db8::1]:4711"` (RFC 7239).
    Forwarded,
}

/// Finds the direct peer's address in the request extensions.
pub type PeerAddrFn = fn(&Extensions) -> Option<SocketAddr>;

/// The default [`PeerAddrFn`]: [`PeerAddr`], then axum's
/// `ConnectInfo<SocketAddr>` (feature `axum`).
pub fn default_peer_addr(extensions: &Extensions) -> Option<SocketAddr> {
    if let Some(PeerAddr(addr)) = extensions.get::<PeerAddr>() {
        return Some(*addr);
    }
    #[cfg(feature = "axum")]
    if let Some(info) = extensions.get::<axum::extract::ConnectInfo<SocketAddr>>() {
        return Some(info.0);
    }
    None
}

#[derive(Clone)]
struct Config {
    allow: Vec<Cidr>,
    trusted: Vec<Cidr>,
    header: ForwardedHeader,
    peer: PeerAddrFn,
}

impl Config {
    fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|c| c.contains(ip))
    }

    /// The client address: the peer, or, while the address at hand is a
    /// trusted proxy, the next forwarded address from the right. `None` if
    /// a trusted proxy forwarded something that is not an address.
    fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> Option<IpAddr> {
        let mut current = peer.to_canonical();
        if !self.is_trusted(current) {
            return Some(current);
        }
        let name = match self.header {
            ForwardedHeader::XForwardedFor => &X_FORWARDED_FOR,
            ForwardedHeader::Forwarded => &FORWARDED,
        };
        // Every line of the header, in order, is one list.
        let mut hops: Vec<&str> = Vec::new();
        for value in headers.get_all(name) {
            let value = value.to_str().ok()?;
            hops.extend(value.split(','));
        }
        for hop in hops.iter().rev().take(MAX_HOPS) {
            let ip = match self.header {
                ForwardedHeader::XForwardedFor => parse_node(hop),
                ForwardedHeader::Forwarded => forwarded_for(hop).and_then(parse_node),
            }?
            .to_canonical();
            current = ip;
            if !self.is_trusted(current) {
                return Some(current);
            }
        }
        // Every hop is a trusted proxy: the leftmost one is the client.
        Some(current)
    }
}

/// The `for=` value of one `Forwarded` element.
fn forwarded_for(element: &str) -> Option<&str> {
    element.split(';').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        key.trim()
            .eq_ignore_ascii_case("for")
            .then(|| value.trim().trim_matches('"'))
    })
}

/// An address, possibly with a port: `192.0.2.1`, `192.0.2.1:80`,
/// `2001:db8::1`, `[2001:db8::1]:4711`.
fn parse_node(node: &str) -> Option<IpAddr> {
    let node = node.trim();
    if let Ok(ip) = node.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Some(rest) = node.strip_prefix('[') {
        let (ip, _) = rest.split_once(']')?;
        return ip.parse::<Ipv6Addr>().ok().map(IpAddr::V6);
    }
    node.parse::<SocketAddr>().ok().map(|s| s.ip())
}

/// Applies [`IpAllow`] to a service: only clients in the allowed CIDR
/// blocks get through; the others get `403`.
///
/// See the [module docs](crate::verify) for the policy.
///
/// ```
/// use taskhook::verify::{ForwardedHeader, IpAllowLayer};
///
/// let layer = IpAllowLayer::new(["203.0.113.0/24".parse()?, "2001:db8::/32".parse()?])
///     // behind a load balancer in 10.0.0.0/8 that sets `Forwarded`
///     .trusted_proxies(["10.0.0.0/8".parse()?])
///     .forwarded_header(ForwardedHeader::Forwarded);
/// # Ok::<(), taskhook::verify::InvalidCidr>(())
/// ```
#[derive(Clone)]
pub struct IpAllowLayer {
    config: Arc<Config>,
}

impl IpAllowLayer {
    /// Allows clients in the given blocks (none: every client is refused),
    /// trusts no proxy, and finds the peer with [`default_peer_addr`].
    pub fn new(allow: impl IntoIterator<Item = Cidr>) -> Self {
        let allow: Vec<Cidr> = allow.into_iter().collect();
        if allow.is_empty() {
            tracing::warn!("IpAllowLayer with an empty allowlist refuses every request");
        }
        Self {
            config: Arc::new(Config {
                allow,
                trusted: Vec::new(),
                header: ForwardedHeader::default(),
                peer: default_peer_addr,
            }),
        }
    }

    /// Trusts the proxies in these blocks to forward the client address. A
    /// forwarded header is read only when the direct peer is one of them,
    /// from the right, past every trusted proxy. Default: none, and the
    /// headers are never read.
    #[must_use]
    pub fn trusted_proxies(mut self, proxies: impl IntoIterator<Item = Cidr>) -> Self {
        let trusted: Vec<Cidr> = proxies.into_iter().collect();
        if trusted.iter().any(|c| c.prefix == 0) {
            tracing::warn!(
                "IpAllowLayer trusts every address as a proxy: any client can choose \
                 the address it is allowed as"
            );
        }
        Arc::make_mut(&mut self.config).trusted = trusted;
        self
    }

    /// Sets the header the trusted proxies write. Default
    /// [`ForwardedHeader::XForwardedFor`].
    #[must_use]
    pub fn forwarded_header(mut self, header: ForwardedHeader) -> Self {
        Arc::make_mut(&mut self.config).header = header;
        self
    }

    /// Sets how the direct peer's address is found in the request
    /// extensions, for servers that record it in a type of their own (tonic:
    /// `|ext| ext.get::<TcpConnectInfo>()?.remote_addr()`).
    ///
    /// ```
    /// use std::net::SocketAddr;
    /// use taskhook::verify::IpAllowLayer;
    ///
    /// #[derive(Clone)]
    /// struct Remote(SocketAddr);
    ///
    /// let layer = IpAllowLayer::new(["203.0.113.0/24".parse()?])
    ///     .peer_addr_with(|ext| ext.get::<Remote>().map(|r| r.0));
    /// # Ok::<(), taskhook::verify::InvalidCidr>(())
    /// ```
    #[must_use]
    pub fn peer_addr_with(mut self, find: PeerAddrFn) -> Self {
        Arc::make_mut(&mut self.config).peer = find;
        self
    }
}

impl fmt::Debug for IpAllowLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IpAllowLayer")
            .field("allow", &self.config.allow)
            .field("trusted_proxies", &self.config.trusted)
            .field("forwarded_header", &self.config.header)
            .finish()
    }
}

impl<S> Layer<S> for IpAllowLayer {
    type Service = IpAllow<S>;

    fn layer(&self, inner: S) -> Self::Service {
        IpAllow {
            inner,
            config: Arc::clone(&self.config),
        }
    }
}

/// Lets a request through only if its client address is in an allowed
/// CIDR block.
///
/// Created with [`IpAllowLayer`] or [`IpAllow::new`].
#[derive(Clone)]
pub struct IpAllow<S> {
    inner: S,
    config: Arc<Config>,
}

impl<S> IpAllow<S> {
    /// Wraps `inner`, allowing clients in `allow`.
    pub fn new(inner: S, allow: impl IntoIterator<Item = Cidr>) -> Self {
        IpAllowLayer::new(allow).layer(inner)
    }

    /// Returns a new [`Layer`] that wraps services with an `IpAllow`
    /// middleware.
    pub fn layer(allow: impl IntoIterator<Item = Cidr>) -> IpAllowLayer {
        IpAllowLayer::new(allow)
    }

    inner_service_accessors!();
}

impl<S: fmt::Debug> fmt::Debug for IpAllow<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IpAllow")
            .field("inner", &self.inner)
            .field("allow", &self.config.allow)
            .field("trusted_proxies", &self.config.trusted)
            .finish()
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for IpAllow<S>
where
    S: Service<Request<ReqBody>, Response = http::Response<ResBody>>,
{
    type Response = http::Response<crate::body::ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let Some(peer) = (self.config.peer)(req.extensions()) else {
            return ResponseFuture::early(Early::Rejection(Rejection::peer_address_missing()));
        };
        let client = self.config.client_ip(peer.ip(), req.headers());
        match client {
            Some(ip) if self.config.allow.iter().any(|c| c.contains(ip)) => {
                req.extensions_mut().insert(ClientIp(ip));
                ResponseFuture::inner(self.inner.call(req))
            }
            _ => {
                tracing::info!(
                    peer = %peer.ip(),
                    client = ?client,
                    "client address not in the allowlist: 403"
                );
                ResponseFuture::early(Early::Rejection(Rejection::forbidden_address()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(s: &str) -> Cidr {
        s.parse().unwrap()
    }

    #[test]
    fn cidr_blocks() {
        assert!(cidr("10.0.0.0/8").contains("10.255.0.1".parse().unwrap()));
        assert!(!cidr("10.0.0.0/8").contains("11.0.0.1".parse().unwrap()));
        assert!(cidr("0.0.0.0/0").contains("1.2.3.4".parse().unwrap()));
        assert!(!cidr("0.0.0.0/0").contains("::1".parse().unwrap()));
        assert!(cidr("::/0").contains("::1".parse().unwrap()));
        assert!(cidr("2001:db8::/32").contains("2001:db8:1::5".parse().unwrap()));
        assert!(!cidr("2001:db8::/32").contains("2001:db9::5".parse().unwrap()));
        assert_eq!(cidr("::ffff:10.0.0.0/104"), cidr("10.0.0.0/8"));
        assert_eq!(cidr("10.1.2.3/8"), cidr("10.0.0.0/8"));
        assert!(cidr("192.0.2.7").contains("::ffff:192.0.2.7".parse().unwrap()));
        for bad in ["10.0.0.0/33", "::/129", "10.0.0/8", "x", "", "10.0.0.0/-1"] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn nodes() {
        for (node, ip) in [
            ("192.0.2.1", "192.0.2.1"),
            (" 192.0.2.1:80 ", "192.0.2.1"),
            ("2001:db8::1", "2001:db8::1"),
            ("[2001:db8::1]:4711", "2001:db8::1"),
            ("[2001:db8::1]", "2001:db8::1"),
        ] {
            assert_eq!(parse_node(node), Some(ip.parse().unwrap()), "{node}");
        }
        assert_eq!(parse_node("unknown"), None);
        assert_eq!(parse_node("_hidden"), None);
        assert_eq!(
            forwarded_for(r#" For="[2001:db8::1]:4711";proto=https"#),
            Some("[2001:db8::1]:4711")
        );
        assert_eq!(forwarded_for("proto=https"), None);
    }
}
