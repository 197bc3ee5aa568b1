//! The callback URL: built from the base URL the way the provider builds it,
//! and validated by the provider's rules.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use http::Uri;

/// The provider's own domain, refused as a callback target by default.
pub const PROVIDER_DOMAIN: &str = "apimart.ai";

/// Builds the URL the provider POSTs to from the `webhook` base URL given at
/// submit time: the base path with trailing slashes removed, then
/// `/callback`.
///
/// - `https://x.com`, `https://x.com/` -> `https://x.com/callback`;
/// - `https://x.com/api`, `https://x.com/api/` -> `https://x.com/api/callback`;
/// - every path segment is kept as written, so a secret segment
///   (`https://x.com/hooks/s3cr3t`) survives: `https://x.com/hooks/s3cr3t/callback`;
/// - a query is kept after the new path (`https://x.com/api?k=v` ->
///   `https://x.com/api/callback?k=v`);
/// - a fragment is dropped (it is never sent over HTTP anyway);
/// - `/callback` is appended even if the base already ends with it, as the
///   provider does (`https://x.com/callback` -> `https://x.com/callback/callback`).
///
/// Only the shape is checked here (an absolute URL with a scheme and a
/// host); the provider's rules are [`UrlPolicy`]'s job.
///
/// ```
/// use taskhook_sim::callback_url;
///
/// assert_eq!(callback_url("https://x.com/api/")?, "https://x.com/api/callback");
/// assert_eq!(callback_url("https://x.com?k=v#top")?, "https://x.com/callback?k=v");
/// # Ok::<(), taskhook_sim::UrlError>(())
/// ```
pub fn callback_url(base: &str) -> Result<Uri, UrlError> {
    let without_fragment = base.split('#').next().unwrap_or_default();
    let uri: Uri = without_fragment
        .parse()
        .map_err(|e| UrlError::Malformed(format!("not a URL: {e}")))?;
    let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
        return Err(UrlError::Malformed(
            "not an absolute URL (scheme and host are required)".to_owned(),
        ));
    };
    let path = uri.path().trim_end_matches('/');
    let query = uri.query().map(|q| format!("?{q}")).unwrap_or_default();
    format!("{scheme}://{authority}{path}/callback{query}")
        .parse()
        .map_err(|e| UrlError::Malformed(format!("not a URL: {e}")))
}

/// Why a callback URL is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum UrlError {
    /// Not an absolute `scheme://host[:port]/path` URL, or a host or port
    /// that cannot be parsed (including numeric hosts like `1.2.3.4.5`).
    Malformed(String),
    /// A scheme other than `http` and `https`.
    Scheme(String),
    /// User information (`user:pass@host`): never sent by an HTTP client, and
    /// a classic way to make a URL look like it points somewhere else.
    UserInfo,
    /// A port other than 80 and 443.
    Port(u16),
    /// The provider's own domain or one of its subdomains.
    ProviderDomain(String),
    /// The host is, or resolves to, an address that is not public.
    Address(IpAddr, AddressKind),
    /// The host name could not be resolved, or resolved to no address.
    Resolve(String),
}

impl fmt::Display for UrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UrlError::Malformed(why) => write!(f, "malformed callback URL: {why}"),
            UrlError::Scheme(scheme) => {
                write!(f, "scheme `{scheme}` is not allowed (http or https only)")
            }
            UrlError::UserInfo => f.write_str("user information in a callback URL is not allowed"),
            UrlError::Port(port) => write!(f, "port {port} is not allowed (80 or 443 only)"),
            UrlError::ProviderDomain(host) => {
                write!(f, "`{host}` is the provider's own domain")
            }
            UrlError::Address(ip, kind) => write!(f, "{ip} is a {kind} address"),
            UrlError::Resolve(why) => write!(f, "cannot resolve the callback host: {why}"),
        }
    }
}

impl std::error::Error for UrlError {}

/// The kind of a non-public address (see [`classify`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AddressKind {
    /// `0.0.0.0/8`, `::`.
    Unspecified,
    /// `127.0.0.0/8`, `::1`.
    Loopback,
    /// `10.0.0.0/8`, `172.16.0.0/12`, `192.168.0.0/16`, IPv6 site-local
    /// `fec0::/10` and local-use NAT64 `64:ff9b:1::/48`.
    Private,
    /// `169.254.0.0/16`, `fe80::/10`.
    LinkLocal,
    /// IPv6 unique-local `fc00::/7`.
    UniqueLocal,
    /// Carrier-grade NAT, `100.64.0.0/10`.
    SharedCgnat,
    /// `255.255.255.255`.
    Broadcast,
    /// `192.0.2.0/24`, `198.51.100.0/24`, `203.0.113.0/24`, `2001:db8::/32`,
    /// `3fff::/20`.
    Documentation,
    /// `224.0.0.0/4`, `ff00::/8`.
    Multicast,
    /// Anything else that is not global unicast: `192.0.0.0/24`,
    /// `198.18.0.0/15`, `240.0.0.0/4`, IPv6 discard `100::/64`,
    /// `2001::/23`, and all IPv6 outside `2000::/3`.
    Reserved,
}

impl fmt::Display for AddressKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AddressKind::Unspecified => "unspecified",
            AddressKind::Loopback => "loopback",
            AddressKind::Private => "private",
            AddressKind::LinkLocal => "link-local",
            AddressKind::UniqueLocal => "unique-local",
            AddressKind::SharedCgnat => "shared (CGNAT)",
            AddressKind::Broadcast => "broadcast",
            AddressKind::Documentation => "documentation",
            AddressKind::Multicast => "multicast",
            AddressKind::Reserved => "reserved",
        })
    }
}

/// What kind of non-public address `ip` is, or `None` for a public one.
///
/// IPv6 addresses that carry an IPv4 address are judged by it:
/// IPv4-mapped `::ffff:a.b.c.d`, IPv4-compatible `::a.b.c.d`, NAT64
/// `64:ff9b::a.b.c.d` and 6to4 `2002:aabb:ccdd::/48`.
///
/// ```
/// use std::net::IpAddr;
/// use taskhook_sim::{classify, AddressKind};
///
/// let ip: IpAddr = "::ffff:10.1.2.3".parse().unwrap();
/// assert_eq!(classify(ip), Some(AddressKind::Private));
/// assert_eq!(classify("93.184.215.14".parse().unwrap()), None);
/// ```
pub fn classify(ip: IpAddr) -> Option<AddressKind> {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(ip: Ipv4Addr) -> Option<AddressKind> {
    let [a, b, c, _] = ip.octets();
    let kind = match (a, b, c) {
        (0, _, _) => AddressKind::Unspecified,
        (10, _, _) => AddressKind::Private,
        (100, 64..=127, _) => AddressKind::SharedCgnat,
        (127, _, _) => AddressKind::Loopback,
        (169, 254, _) => AddressKind::LinkLocal,
        (172, 16..=31, _) => AddressKind::Private,
        (192, 0, 0) => AddressKind::Reserved,
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => AddressKind::Documentation,
        (192, 168, _) => AddressKind::Private,
        (198, 18..=19, _) => AddressKind::Reserved,
        (224..=239, _, _) => AddressKind::Multicast,
        _ if ip == Ipv4Addr::BROADCAST => AddressKind::Broadcast,
        (240..=255, _, _) => AddressKind::Reserved,
        _ => return None,
    };
    Some(kind)
}

fn classify_v6(ip: Ipv6Addr) -> Option<AddressKind> {
    let s = ip.segments();
    let embedded = || Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    if ip.is_unspecified() {
        return Some(AddressKind::Unspecified);
    }
    if ip.is_loopback() {
        return Some(AddressKind::Loopback);
    }
    match s {
        // IPv4-mapped and IPv4-compatible: the IPv4 address decides; a public
        // IPv4-compatible address is still deprecated and unroutable.
        [0, 0, 0, 0, 0, 0xffff, _, _] => return classify_v4(embedded()),
        [0, 0, 0, 0, 0, 0, _, _] => {
            return Some(classify_v4(embedded()).unwrap_or(AddressKind::Reserved))
        }
        // NAT64 well-known prefix: reaches the embedded IPv4 address.
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => return classify_v4(embedded()),
        [0x64, 0xff9b, 1, ..] => return Some(AddressKind::Private),
        // 6to4: the IPv4 address sits in the second and third segments.
        [0x2002, hi, lo, ..] => {
            let v4 = Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8);
            return classify_v4(v4);
        }
        _ => {}
    }
    let kind = match s[0] {
        0x0100 if s[1..4] == [0, 0, 0] => AddressKind::Reserved,
        0x2001 if s[1] == 0x0db8 => AddressKind::Documentation,
        0x2001 if s[1] < 0x0200 => AddressKind::Reserved,
        0x3fff if s[1] < 0x1000 => AddressKind::Documentation,
        0x2000..=0x3fff => return None,
        0xfc00..=0xfdff => AddressKind::UniqueLocal,
        0xfe80..=0xfebf => AddressKind::LinkLocal,
        0xfec0..=0xfeff => AddressKind::Private,
        0xff00..=0xffff => AddressKind::Multicast,
        _ => AddressKind::Reserved,
    };
    Some(kind)
}

/// The provider's rules for a callback URL.
///
/// A URL passes when:
///
/// - its scheme is `http` or `https`;
/// - its port, explicit or default, is 80 or 443 (either port with either
///   scheme: the provider names "standard ports (80 / 443)");
/// - it has no user information (`user@host`);
/// - its host is not the provider's own domain ([`PROVIDER_DOMAIN`] by
///   default) nor a subdomain of it;
/// - its host is not a non-public address (see [`classify`]): loopback,
///   private, link-local, unique-local, CGNAT, unspecified, broadcast,
///   documentation, multicast, reserved; IPv4-mapped and IPv4-compatible
///   IPv6 included. Numeric hosts are read the way resolvers and browsers
///   read them: `2130706433`, `0x7f.1`, `127.1` and `017700000001` are all
///   `127.0.0.1`;
/// - with [`resolve`](Self::resolve): every address its host name resolves
///   to passes the same address rule (`localhost` is refused).
///
/// [`check`](Self::check) is pure: no traffic. [`resolve`](Self::resolve)
/// asks the system resolver and nothing else.
///
/// [`allow_loopback_for_local_testing`](Self::allow_loopback_for_local_testing)
/// lifts exactly two rules, for tests on one machine: loopback addresses
/// and the port rule.
///
/// ```
/// use taskhook_sim::{callback_url, UrlError, UrlPolicy};
///
/// let policy = UrlPolicy::new();
/// assert!(policy.check(&callback_url("https://hooks.example.com/s3cr3t")?).is_ok());
/// assert!(matches!(
///     policy.check(&callback_url("http://0x7f.1")?),
///     Err(UrlError::Address(..))
/// ));
/// assert!(matches!(
///     policy.check(&callback_url("https://example.com:8443")?),
///     Err(UrlError::Port(8443))
/// ));
/// # Ok::<(), UrlError>(())
/// ```
#[derive(Debug, Clone)]
pub struct UrlPolicy {
    provider_domains: Vec<String>,
    allow_loopback: bool,
}

/// A host as written in a URL, numeric forms decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Host {
    Ip(IpAddr),
    Domain(String),
}

impl UrlPolicy {
    /// The provider's rules, with [`PROVIDER_DOMAIN`] as its own domain.
    pub fn new() -> Self {
        Self {
            provider_domains: vec![PROVIDER_DOMAIN.to_owned()],
            allow_loopback: false,
        }
    }

    /// Replaces the provider's own domains (each refused with all its
    /// subdomains). Case and a trailing dot do not matter.
    ///
    /// ```
    /// use taskhook_sim::UrlPolicy;
    ///
    /// let policy = UrlPolicy::new().provider_domains(["apimart.ai", "apimart.cn"]);
    /// ```
    #[must_use]
    pub fn provider_domains<I, D>(mut self, domains: I) -> Self
    where
        I: IntoIterator<Item = D>,
        D: Into<String>,
    {
        self.provider_domains = domains
            .into_iter()
            .map(|d| normalize_domain(&d.into()))
            .collect();
        self
    }

    /// FOR LOCAL TESTING ONLY: allows loopback addresses (`127.0.0.0/8`,
    /// `::1`, and host names resolving to them) and any port, so the
    /// simulator can call a receiver on `127.0.0.1:<ephemeral port>`. Every
    /// other rule still holds: a private, link-local or CGNAT address is
    /// still refused, and so is the provider's domain.
    ///
    /// ```
    /// use taskhook_sim::{callback_url, UrlPolicy};
    ///
    /// let policy = UrlPolicy::new().allow_loopback_for_local_testing();
    /// assert!(policy.check(&callback_url("http://127.0.0.1:54321")?).is_ok());
    /// assert!(policy.check(&callback_url("http://10.0.0.1:54321")?).is_err());
    /// # Ok::<(), taskhook_sim::UrlError>(())
    /// ```
    #[must_use]
    pub fn allow_loopback_for_local_testing(mut self) -> Self {
        self.allow_loopback = true;
        self
    }

    /// Whether [`allow_loopback_for_local_testing`](Self::allow_loopback_for_local_testing) is on.
    pub fn allows_loopback(&self) -> bool {
        self.allow_loopback
    }

    /// Checks `url` against every rule that needs no traffic: scheme, user
    /// information, port, the provider's domain, and the address when the
    /// host is an IP address (in any numeric form). A host name passes here;
    /// [`resolve`](Self::resolve) checks what it resolves to.
    pub fn check(&self, url: &Uri) -> Result<(), UrlError> {
        self.target(url).map(|_| ())
    }

    /// Checks one address against the address rule.
    ///
    /// ```
    /// use taskhook_sim::UrlPolicy;
    ///
    /// assert!(UrlPolicy::new().check_ip("100.64.0.1".parse().unwrap()).is_err());
    /// assert!(UrlPolicy::new().check_ip("2606:4700::1".parse().unwrap()).is_ok());
    /// ```
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), UrlError> {
        match classify(ip) {
            None => Ok(()),
            Some(AddressKind::Loopback) if self.allow_loopback => Ok(()),
            Some(kind) => Err(UrlError::Address(ip, kind)),
        }
    }

    /// Checks `url` like [`check`](Self::check), then resolves its host with
    /// the system resolver (`tokio::net::lookup_host`) and checks every
    /// address it resolves to: one address that is not allowed refuses the
    /// URL. Returns the addresses to connect to, with the URL's port.
    ///
    /// Connect only to the addresses returned (as [`Simulator`](super::Simulator)
    /// does): resolving again later could give another answer.
    pub async fn resolve(&self, url: &Uri) -> Result<Vec<SocketAddr>, UrlError> {
        let (host, port) = self.target(url)?;
        let name = match host {
            Host::Ip(ip) => return Ok(vec![SocketAddr::new(ip, port)]),
            Host::Domain(name) => name,
        };
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), port))
            .await
            .map_err(|e| UrlError::Resolve(format!("{name}: {e}")))?
            .collect();
        if addrs.is_empty() {
            return Err(UrlError::Resolve(format!("{name}: no address")));
        }
        for addr in &addrs {
            self.check_ip(addr.ip())?;
        }
        Ok(addrs)
    }

    /// The pure checks; returns the decoded host and the effective port.
    fn target(&self, url: &Uri) -> Result<(Host, u16), UrlError> {
        let default_port = match url.scheme_str() {
            Some("http") => 80,
            Some("https") => 443,
            Some(other) => return Err(UrlError::Scheme(other.to_owned())),
            None => return Err(UrlError::Malformed("no scheme".to_owned())),
        };
        let authority = url
            .authority()
            .ok_or_else(|| UrlError::Malformed("no host".to_owned()))?
            .as_str();
        if authority.contains('@') {
            return Err(UrlError::UserInfo);
        }
        let (host, port) = split_authority(authority)?;
        let port = port.unwrap_or(default_port);
        if !self.allow_loopback && port != 80 && port != 443 {
            return Err(UrlError::Port(port));
        }
        let host = parse_host(host)?;
        match &host {
            Host::Ip(ip) => self.check_ip(*ip)?,
            Host::Domain(name) => {
                let owned = self.provider_domains.iter().any(|d| {
                    name == d
                        || name
                            .strip_suffix(d.as_str())
                            .is_some_and(|rest| rest.ends_with('.'))
                });
                if owned {
                    return Err(UrlError::ProviderDomain(name.clone()));
                }
            }
        }
        Ok((host, port))
    }
}

impl Default for UrlPolicy {
    fn default() -> Self {
        Self::new()
    }
}

fn normalize_domain(domain: &str) -> String {
    domain.trim_end_matches('.').to_ascii_lowercase()
}

/// Splits `host[:port]` (host possibly `[v6]`); an empty port is the default.
fn split_authority(authority: &str) -> Result<(&str, Option<u16>), UrlError> {
    let (host, port) = if authority.starts_with('[') {
        let end = authority
            .find(']')
            .ok_or_else(|| UrlError::Malformed("unclosed `[` in host".to_owned()))?;
        let (host, rest) = authority.split_at(end + 1);
        match rest.strip_prefix(':') {
            Some(port) => (host, Some(port)),
            None if rest.is_empty() => (host, None),
            None => return Err(UrlError::Malformed("junk after `]` in host".to_owned())),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    let port = match port {
        None | Some("") => None,
        Some(digits) => Some(
            digits
                .bytes()
                .all(|b| b.is_ascii_digit())
                .then(|| digits.parse::<u16>().ok())
                .flatten()
                .ok_or_else(|| UrlError::Malformed(format!("invalid port `{digits}`")))?,
        ),
    };
    Ok((host, port))
}

fn parse_host(host: &str) -> Result<Host, UrlError> {
    if let Some(inner) = host.strip_prefix('[') {
        let inner = inner.strip_suffix(']').unwrap_or(inner);
        return inner
            .parse::<Ipv6Addr>()
            .map(|ip| Host::Ip(IpAddr::V6(ip)))
            .map_err(|_| UrlError::Malformed(format!("invalid IPv6 host `{host}`")));
    }
    let name = normalize_domain(host);
    if name.is_empty() || name.split('.').any(str::is_empty) {
        return Err(UrlError::Malformed(format!("invalid host `{host}`")));
    }
    match parse_ipv4(&name) {
        None if name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')) =>
        {
            Ok(Host::Domain(name))
        }
        None => Err(UrlError::Malformed(format!("invalid host `{host}`"))),
        Some(Some(ip)) => Ok(Host::Ip(IpAddr::V4(ip))),
        Some(None) => Err(UrlError::Malformed(format!("invalid IPv4 host `{host}`"))),
    }
}

/// Reads a host as an IPv4 address the way URL parsers and `inet_aton` do
/// (1 to 4 parts, each decimal, `0x` hex or `0`-prefixed octal; the last part
/// fills the remaining bytes). `None`: not numeric, a domain name;
/// `Some(None)`: numeric but invalid (`1.2.3.4.5`, `256.1.1.1`).
fn parse_ipv4(host: &str) -> Option<Option<Ipv4Addr>> {
    let parts: Vec<&str> = host.split('.').collect();
    let last = parts.last()?;
    let numeric_last = last.bytes().all(|b| b.is_ascii_digit())
        || last
            .strip_prefix("0x")
            .or_else(|| last.strip_prefix("0X"))
            .is_some_and(|hex| hex.bytes().all(|b| b.is_ascii_hexdigit()));
    if !numeric_last {
        return None;
    }
    if parts.len() > 4 {
        return Some(None);
    }
    let mut numbers = Vec::with_capacity(parts.len());
    for part in &parts {
        match parse_ipv4_part(part) {
            Some(n) => numbers.push(n),
            None => return Some(None),
        }
    }
    let (last, init) = numbers.split_last()?;
    if init.iter().any(|&n| n > 255) {
        return Some(None);
    }
    let last_bits = 8 * (5 - numbers.len() as u32);
    if *last >= 1u64 << last_bits {
        return Some(None);
    }
    let mut value = *last;
    for (i, n) in init.iter().enumerate() {
        value += n << (8 * (3 - i as u32));
    }
    Some(u32::try_from(value).ok().map(Ipv4Addr::from))
}

fn parse_ipv4_part(part: &str) -> Option<u64> {
    let (digits, radix) =
        if let Some(hex) = part.strip_prefix("0x").or_else(|| part.strip_prefix("0X")) {
            (hex, 16)
        } else if part.len() > 1 && part.starts_with('0') {
            (&part[1..], 8)
        } else {
            (part, 10)
        };
    if digits.is_empty() {
        // `0x` alone is zero; an empty decimal part is invalid.
        return (radix == 16).then_some(0);
    }
    // More than 32 bits of digits can never fit; stop before u64 overflows.
    if digits.len() > 32 {
        return None;
    }
    u64::from_str_radix(digits, radix).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_ipv4_forms() {
        let localhost = Some(Some(Ipv4Addr::LOCALHOST));
        for host in [
            "127.0.0.1",
            "2130706433",
            "0x7f.1",
            "127.1",
            "017700000001",
            "0x7f000001",
            "0177.0.0.1",
            "127.0.1",
        ] {
            assert_eq!(parse_ipv4(host), localhost, "{host}");
        }
        for host in [
            "1.2.3.4.5",
            "256.1.1.1",
            "1.2.3.256",
            "4294967296",
            "08.1.1.1",
        ] {
            assert_eq!(parse_ipv4(host), Some(None), "{host}");
        }
        for host in ["example.com", "1.2.3.com", "0x7f.x"] {
            assert_eq!(parse_ipv4(host), None, "{host}");
        }
        assert_eq!(
            parse_ipv4("1.2.3.0x"),
            Some(Some(Ipv4Addr::new(1, 2, 3, 0)))
        );
    }
}
