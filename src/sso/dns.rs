//! DNS TXT lookups, for proving an organization controls an email domain.
//!
//! A resolver is built per lookup: verification is rare and admin-driven, and a fresh resolver
//! has no cache, so an organization that publishes its record after a first failed attempt is not
//! held back by a cached "no such name" (RFC 2308 §5 lets resolvers keep those for hours).

use std::net::SocketAddr;
use std::time::Duration;

use hickory_resolver::config::{NameServerConfigGroup, ResolverConfig, ResolverOpts};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::ProtoErrorKind;
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::{ResolveError, Resolver};

/// Where TXT questions go.
#[derive(Debug, Clone, Copy, Default)]
pub struct Dns {
    /// One server to ask; none means the system's resolvers.
    pub server: Option<SocketAddr>,
}

#[derive(Debug, thiserror::Error)]
#[error("DNS lookup of {name} failed: {reason}")]
pub struct DnsError {
    pub name: String,
    pub reason: String,
}

/// A verification never waits longer than this for DNS.
const TIMEOUT: Duration = Duration::from_secs(5);

impl Dns {
    /// The texts of the TXT records at `name` (each record's strings joined, RFC 7208 §3.3
    /// style); empty when the name or the records do not exist.
    pub async fn txt(&self, name: &str) -> Result<Vec<String>, DnsError> {
        let fail = |reason: String| DnsError {
            name: name.to_string(),
            reason,
        };
        let mut opts = ResolverOpts::default();
        opts.timeout = TIMEOUT;
        opts.attempts = 1;
        opts.cache_size = 0;
        // RFC 6891: the verification name can hold several records (earlier claims, other
        // organizations trying the same domain); without EDNS the answer must fit 512 bytes
        // (RFC 1035 §4.2.1) and a longer one arrives truncated.
        opts.edns0 = true;
        let resolver = match self.server {
            Some(addr) => Resolver::builder_with_config(
                ResolverConfig::from_parts(
                    None,
                    vec![],
                    NameServerConfigGroup::from_ips_clear(&[addr.ip()], addr.port(), true),
                ),
                TokioConnectionProvider::default(),
            ),
            None => Resolver::builder_tokio()
                .map_err(|e| fail(format!("no system resolver configuration: {e}")))?,
        }
        .with_options(opts)
        .build();
        // Fully qualified: a search domain must not be appended.
        let fqdn = format!("{}.", name.trim_end_matches('.'));
        let lookup = tokio::time::timeout(TIMEOUT * 2, resolver.txt_lookup(fqdn))
            .await
            .map_err(|_| fail("no answer in time".into()))?;
        match lookup {
            Ok(records) => Ok(records
                .iter()
                .map(|txt| {
                    txt.txt_data()
                        .iter()
                        .map(|part| String::from_utf8_lossy(part))
                        .collect::<String>()
                })
                .collect()),
            Err(e) if absent(&e) => Ok(Vec::new()),
            Err(e) => Err(fail(e.to_string())),
        }
    }
}

/// "No such name" or "no TXT there" (RFC 2308 §2.1, §2.2): an answer, not a failure. A server
/// failure or a refusal is a failure, even though the resolver reports it as "no records" too.
fn absent(e: &ResolveError) -> bool {
    matches!(
        e.proto().map(|p| p.kind()),
        Some(ProtoErrorKind::NoRecordsFound {
            response_code: ResponseCode::NXDomain | ResponseCode::NoError,
            ..
        })
    )
}
