//! The one policy for outbound HTTP. Every URL the service fetches was typed by a customer's admin
//! (webhook URLs, SAML metadata URLs, OIDC issuers and the endpoints their discovery documents
//! name), so every request is a request to an address a customer chose, and must not reach the
//! service's own network: the cloud metadata service, a database, an admin port on localhost.
//!
//! [`Outbound`] enforces, for every request:
//! - `https` only;
//! - every address a name resolves to is public (see [`is_public`]), checked by the resolver
//!   reqwest connects through, so the address checked is the address connected to and a name
//!   rebound between a check and the connection is refused too; IP literals, which reqwest never
//!   resolves, are checked before the request;
//! - no redirects (a redirect would lead the request, and a webhook's signature, anywhere);
//! - no proxy from the environment (the proxy would be the only address checked);
//! - bounded connect and total time, and a bounded response body per kind of document.
//!
//! `allow_private` (`IDBRIDGE_ALLOW_PRIVATE_URLS`) lifts the address and scheme rules, for tests
//! against local fakes and for closed networks; redirects, time and size stay bounded.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_resolver::config::{NameServerConfigGroup, ResolverConfig, ResolverOpts};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::{Resolver, TokioResolver};

pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Whole-request bound; an admin or a user's browser is waiting on most of these requests.
pub const TOTAL_TIMEOUT: Duration = Duration::from_secs(10);
pub const MAX_URL_BYTES: usize = 2048;

/// Why an outbound request was not made, or its response not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutboundError {
    #[error("invalid URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("refusing {url}: only https is allowed")]
    Insecure { url: String },
    #[error("refusing {host}: it resolves to {addr}, which is not a public address")]
    Refused { host: String, addr: IpAddr },
    #[error("cannot resolve {host}: {reason}")]
    Unresolved { host: String, reason: String },
    #[error("{url} answered {status} redirecting to {location:?}; redirects are not followed")]
    Redirect {
        url: String,
        status: u16,
        location: Option<String>,
    },
    #[error("the response from {url} is larger than {limit} bytes")]
    TooLarge { url: String, limit: usize },
    #[error("{url} did not answer within {seconds} seconds")]
    Timeout { url: String, seconds: u64 },
    #[error("request to {url} failed: {detail}")]
    Transport { url: String, detail: String },
}

/// A response read whole, within its size bound.
#[derive(Debug)]
pub struct Fetched {
    pub status: reqwest::StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
}

/// The outbound policy and the HTTP client that enforces it. Cheap to clone; build one per
/// process (or per test) and share it.
#[derive(Clone)]
pub struct Outbound {
    allow_private: bool,
    resolver: Arc<PolicyResolver>,
    client: reqwest::Client,
}

impl std::fmt::Debug for Outbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbound")
            .field("allow_private", &self.allow_private)
            .field("dns_server", &self.resolver.server)
            .finish()
    }
}

impl Default for Outbound {
    fn default() -> Self {
        Outbound::new(false, None)
    }
}

impl Outbound {
    /// `dns_server`: one DNS server to resolve names with (`IDBRIDGE_DNS_SERVER`, the tests' own
    /// server); none means the system's resolver.
    pub fn new(allow_private: bool, dns_server: Option<SocketAddr>) -> Outbound {
        let resolver = Arc::new(PolicyResolver::new(allow_private, dns_server));
        let client = reqwest::Client::builder()
            .use_rustls_tls()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(TOTAL_TIMEOUT)
            .no_proxy()
            .https_only(!allow_private)
            .dns_resolver(resolver.clone())
            .user_agent("idbridge")
            .build();
        #[expect(
            clippy::expect_used,
            reason = "fails only if the TLS backend cannot initialize: nothing to recover from"
        )]
        let client = client.expect("reqwest client with rustls");
        Outbound {
            allow_private,
            resolver,
            client,
        }
    }

    pub fn allows_private(&self) -> bool {
        self.allow_private
    }

    /// [`check_url`] under this policy.
    pub fn check_url(&self, url: &str) -> Result<url::Url, OutboundError> {
        check_url(url, self.allow_private)
    }

    /// [`check_url`], and the addresses the host resolves to now. For an early, clear
    /// answer when a URL is configured; the request itself is checked again at connect time.
    /// A name that does not resolve (yet) passes: delivery will fail and say so.
    pub async fn check_destination(&self, url: &str) -> Result<(), OutboundError> {
        let parsed = self.check_url(url)?;
        if let Some(url::Host::Domain(host)) = parsed.host()
            && !self.allow_private
            && let Err(e @ OutboundError::Refused { .. }) = self.resolver.lookup(host).await
        {
            return Err(e);
        }
        Ok(())
    }

    /// A request builder on the policy's client; send it with [`Outbound::execute`] or
    /// [`Outbound::fetch`], which check the URL first.
    pub fn request(&self, method: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
        self.client.request(method, url)
    }

    /// Sends `request`; a redirect is an error. The body is left unread.
    pub async fn execute(
        &self,
        request: reqwest::Request,
    ) -> Result<reqwest::Response, OutboundError> {
        let url = request.url().to_string();
        self.check_url(&url)?;
        let response = self
            .client
            .execute(request)
            .await
            .map_err(|e| transport(&url, &e))?;
        let status = response.status();
        if status.is_redirection() {
            return Err(OutboundError::Redirect {
                location: response
                    .headers()
                    .get(reqwest::header::LOCATION)
                    .and_then(|l| l.to_str().ok())
                    .map(str::to_owned),
                status: status.as_u16(),
                url,
            });
        }
        Ok(response)
    }

    /// Sends `request` and reads at most `limit` bytes of its response.
    pub async fn fetch(
        &self,
        request: reqwest::Request,
        limit: usize,
    ) -> Result<Fetched, OutboundError> {
        let url = request.url().to_string();
        let mut response = self.execute(request).await?;
        let too_large = || OutboundError::TooLarge {
            url: url.clone(),
            limit,
        };
        if response
            .content_length()
            .is_some_and(|len| len > limit as u64)
        {
            return Err(too_large());
        }
        let mut body = Vec::new();
        // The chunked case: the limit holds while reading, not only on the header.
        while let Some(chunk) = response.chunk().await.map_err(|e| transport(&url, &e))? {
            if body.len() + chunk.len() > limit {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Fetched {
            status: response.status(),
            headers: std::mem::take(response.headers_mut()),
            body,
        })
    }

    /// GET `url`, at most `limit` bytes.
    pub async fn get(&self, url: &str, limit: usize) -> Result<Fetched, OutboundError> {
        self.check_url(url)?;
        let request = self
            .request(reqwest::Method::GET, url)
            .build()
            .map_err(|e| transport(url, &e))?;
        self.fetch(request, limit).await
    }
}

/// The checks that need no DNS: a URL of at most [`MAX_URL_BYTES`], https (http too when
/// private addresses are allowed), with a host that is not a private IP literal.
pub fn check_url(url: &str, allow_private: bool) -> Result<url::Url, OutboundError> {
    let invalid = |reason: &str| OutboundError::InvalidUrl {
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    if url.len() > MAX_URL_BYTES {
        return Err(invalid("longer than 2048 bytes"));
    }
    let parsed = url::Url::parse(url).map_err(|e| invalid(&e.to_string()))?;
    let host = parsed.host().ok_or_else(|| invalid("no host"))?;
    match parsed.scheme() {
        "https" => {}
        "http" if allow_private => {}
        _ => return Err(OutboundError::Insecure { url: url.into() }),
    }
    let literal: Option<IpAddr> = match host {
        url::Host::Ipv4(a) => Some(a.into()),
        url::Host::Ipv6(a) => Some(a.into()),
        url::Host::Domain(_) => None,
    };
    if let Some(addr) = literal
        && !allow_private
        && !is_public(addr)
    {
        return Err(OutboundError::Refused {
            host: parsed.host_str().unwrap_or_default().to_owned(),
            addr,
        });
    }
    Ok(parsed)
}

/// The policy's own error when the resolver refused the name (it travels inside reqwest's error
/// as a source); otherwise the whole chain of causes as text.
fn transport(url: &str, error: &reqwest::Error) -> OutboundError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if let Some(ours) = e.downcast_ref::<OutboundError>() {
            return ours.clone();
        }
        source = e.source();
    }
    if error.is_timeout() {
        return OutboundError::Timeout {
            url: url.to_owned(),
            seconds: TOTAL_TIMEOUT.as_secs(),
        };
    }
    let mut detail = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(e) = source {
        detail.push_str(": ");
        detail.push_str(&e.to_string());
        source = e.source();
    }
    OutboundError::Transport {
        url: url.to_owned(),
        detail,
    }
}

/// Resolves names for the client and refuses a name when any address it resolves to is not
/// public: an attacker controlling a name's records can list a private address beside a public
/// one and let the connection try both.
struct PolicyResolver {
    allow_private: bool,
    server: Option<SocketAddr>,
    hickory: Option<TokioResolver>,
}

impl PolicyResolver {
    fn new(allow_private: bool, server: Option<SocketAddr>) -> PolicyResolver {
        let hickory = server.map(|addr| {
            let mut opts = ResolverOpts::default();
            opts.timeout = CONNECT_TIMEOUT;
            opts.attempts = 1;
            // A rebinding attack relies on answers changing; a cache would only hide that the
            // check happens on every connection.
            opts.cache_size = 0;
            Resolver::builder_with_config(
                ResolverConfig::from_parts(
                    None,
                    vec![],
                    NameServerConfigGroup::from_ips_clear(&[addr.ip()], addr.port(), true),
                ),
                TokioConnectionProvider::default(),
            )
            .with_options(opts)
            .build()
        });
        PolicyResolver {
            allow_private,
            server,
            hickory,
        }
    }

    async fn lookup(&self, host: &str) -> Result<Vec<SocketAddr>, OutboundError> {
        let unresolved = |reason: String| OutboundError::Unresolved {
            host: host.to_owned(),
            reason,
        };
        let addrs: Vec<SocketAddr> = match &self.hickory {
            Some(resolver) => {
                // Fully qualified: a search domain must not be appended.
                let fqdn = format!("{}.", host.trim_end_matches('.'));
                resolver
                    .lookup_ip(fqdn)
                    .await
                    .map_err(|e| unresolved(e.to_string()))?
                    .iter()
                    .map(|ip| SocketAddr::new(ip, 0))
                    .collect()
            }
            None => tokio::net::lookup_host((host, 0))
                .await
                .map_err(|e| unresolved(e.to_string()))?
                .collect(),
        };
        if addrs.is_empty() {
            return Err(unresolved("no address".into()));
        }
        if !self.allow_private
            && let Some(bad) = addrs.iter().find(|a| !is_public(a.ip()))
        {
            return Err(OutboundError::Refused {
                host: host.to_owned(),
                addr: bad.ip(),
            });
        }
        Ok(addrs)
    }
}

impl reqwest::dns::Resolve for PolicyResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let this = PolicyResolver {
            allow_private: self.allow_private,
            server: self.server,
            hickory: self.hickory.clone(),
        };
        Box::pin(async move {
            let addrs = this.lookup(name.as_str()).await?;
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Whether an address is globally routable: not loopback, private (RFC 1918, RFC 4193),
/// link-local (cloud metadata services live at 169.254.169.254), shared (CGNAT), multicast,
/// documentation, benchmarking or reserved; an IPv6 address that embeds an IPv4 one (mapped,
/// compatible, NAT64, 6to4) is judged by the IPv4 address. `IpAddr::is_global` would do, but it
/// is unstable.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // shared address space, RFC 6598
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments, RFC 6890
        || (a == 198 && (b == 18 || b == 19)) // benchmarking, RFC 2544
        || a >= 240) // reserved, RFC 1112
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let seg = ip.segments();
    let embedded = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    // RFC 4291 §2.5.5.2: ::ffff:a.b.c.d reaches a.b.c.d.
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    // RFC 6052 §2.1: the well-known NAT64 prefix 64:ff9b::/96 reaches the IPv4 address in its
    // last 32 bits.
    if seg[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return is_public_v4(embedded(seg[6], seg[7]));
    }
    // RFC 3056 §2: 6to4 2002:a.b.c.d::/48.
    if seg[0] == 0x2002 {
        return is_public_v4(embedded(seg[1], seg[2]));
    }
    !(ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (seg[0] & 0xfe00) == 0xfc00 // unique local fc00::/7, RFC 4193
        || (seg[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
        || (seg[0] & 0xffc0) == 0xfec0 // site-local fec0::/10, deprecated
        || (seg[0] == 0x2001 && seg[1] == 0x0db8) // documentation, RFC 3849
        || (seg[0] == 0x2001 && seg[1] == 0x0002 && seg[2] == 0) // benchmarking, RFC 5180
        || (seg[0] == 0x64 && seg[1] == 0xff9b && seg[2] == 1) // local-use NAT64, RFC 8215
        || (seg[0] == 0x100 && seg[1..4] == [0, 0, 0]) // discard-only, RFC 6666
        || seg[..6] == [0, 0, 0, 0, 0, 0]) // IPv4-compatible, deprecated
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_address_classification() {
        for ip in [
            "8.8.8.8",
            "1.1.1.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
        ] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "192.0.2.1",
            "198.18.0.1",
            "240.0.0.1",
            "::1",
            "::",
            "fc00::1",
            "fd12::1",
            "fe80::1",
            "ff02::1",
            "2001:db8::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::7f00:1",
            "64:ff9b::a00:1",
            "64:ff9b:1::808:808",
            "2002:7f00:1::",
            "::7f00:1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn urls_must_be_https_and_not_private_literals() {
        let strict = Outbound::new(false, None);
        assert!(
            strict
                .check_url("https://hooks.example.com/idbridge")
                .is_ok()
        );
        for bad in [
            "http://hooks.example.com/x",
            "https://127.0.0.1/x",
            "https://10.1.2.3/x",
            "https://192.168.0.1/x",
            "https://169.254.169.254/latest/meta-data",
            "https://[::1]/x",
            "https://[fd00::1]/x",
            "https://[::ffff:127.0.0.1]/x",
            "ftp://hooks.example.com/x",
            "not a url",
        ] {
            assert!(strict.check_url(bad).is_err(), "{bad} accepted");
        }
        assert_eq!(
            strict.check_url("https://10.0.0.1/x").unwrap_err(),
            OutboundError::Refused {
                host: "10.0.0.1".into(),
                addr: "10.0.0.1".parse().unwrap()
            }
        );
        let open = Outbound::new(true, None);
        assert!(open.check_url("http://127.0.0.1:9000/hook").is_ok());
        assert!(open.check_url("ftp://127.0.0.1/x").is_err());
    }

    /// The system resolver's answer for localhost is refused at connect time, before any
    /// connection is tried.
    #[tokio::test]
    async fn a_name_is_checked_on_what_it_resolves_to() {
        let strict = Outbound::new(false, None);
        match strict.get("https://localhost:9/x", 1024).await {
            Err(OutboundError::Refused { host, addr }) => {
                assert_eq!(host, "localhost");
                assert!(addr.is_loopback(), "{addr}");
            }
            other => panic!("expected the resolver to refuse localhost, got {other:?}"),
        }
    }
}
