//! Request rate limits, kept in this replica's memory (GCRA, by `governor`): checking one costs no
//! database round trip, so a flood is refused before it reaches the database. With N replicas a
//! client can reach N times a limit; a limit shared between replicas would cost a write per
//! request, which is the load the limits are here to keep off the database.
//!
//! Each limit is keyed by who spends it: a directory (SCIM), an admin or platform token, an OAuth
//! client, a connection or a client address at sign-in. Keys unused for a while are forgotten by
//! [`RateLimits::forget_idle`], so keys an attacker makes up cannot grow memory for long.

use std::fmt;
use std::num::NonZeroU32;
use std::str::FromStr;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};

/// A rate and a burst: `RATE/BURST` requests per second (`0.5/30`: one every two seconds, 30 at
/// once), or `0`, no limit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub per_second: f64,
    pub burst: u32,
}

impl Rate {
    pub const OFF: Rate = Rate {
        per_second: 0.0,
        burst: 0,
    };

    pub const fn new(per_second: f64, burst: u32) -> Self {
        Self { per_second, burst }
    }

    fn quota(self) -> Option<Quota> {
        let burst = NonZeroU32::new(self.burst)?;
        if self.per_second.is_nan() || self.per_second <= 0.0 {
            return None;
        }
        let period = Duration::from_secs_f64(1.0 / self.per_second);
        Quota::with_period(period).map(|q| q.allow_burst(burst))
    }
}

impl FromStr for Rate {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s == "0" {
            return Ok(Rate::OFF);
        }
        let bad = || {
            format!(
                "{s:?}: expected RATE/BURST (requests per second, then how many may come at \
                 once, e.g. 100/1000 or 0.5/30), or 0 for no limit"
            )
        };
        let (rate, burst) = s.split_once('/').ok_or_else(bad)?;
        let per_second: f64 = rate.trim().parse().map_err(|_| bad())?;
        let burst: u32 = burst.trim().parse().map_err(|_| bad())?;
        // A period under a nanosecond or over a day is a typo, not a policy.
        if !per_second.is_finite() || !(1.0 / 86_400.0..=1e9).contains(&per_second) || burst == 0 {
            return Err(bad());
        }
        Ok(Rate { per_second, burst })
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.quota().is_none() {
            return f.write_str("0");
        }
        write!(f, "{}/{}", self.per_second, self.burst)
    }
}

/// Every limit's rate, as configured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateConfig {
    /// SCIM requests per directory.
    pub scim: Rate,
    /// Admin API requests per admin or platform token.
    pub admin: Rate,
    /// `/oauth/token` requests per `client_id`.
    pub token: Rate,
    /// Sign-in requests (start, SAML ACS) per connection.
    pub sign_in_connection: Rate,
    /// Sign-in requests (start, SAML ACS, OIDC callback) per client address.
    pub sign_in_address: Rate,
    /// Failed sign-ins written to a connection's audit log; past it they are only counted.
    pub failure_audit: Rate,
}

impl RateConfig {
    /// No limit at all.
    pub const OFF: RateConfig = RateConfig {
        scim: Rate::OFF,
        admin: Rate::OFF,
        token: Rate::OFF,
        sign_in_connection: Rate::OFF,
        sign_in_address: Rate::OFF,
        failure_audit: Rate::OFF,
    };
}

/// The defaults: far above what an IdP provisions or signs in at (Okta and Entra send a few
/// requests at a time per application, tens per second at most), far below a flood.
impl Default for RateConfig {
    fn default() -> Self {
        Self {
            scim: Rate::new(100.0, 1000),
            admin: Rate::new(50.0, 500),
            token: Rate::new(50.0, 500),
            sign_in_connection: Rate::new(100.0, 1000),
            sign_in_address: Rate::new(20.0, 100),
            failure_audit: Rate::new(1.0, 60),
        }
    }
}

/// Which limit a request spends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    Scim,
    Admin,
    Token,
    SignInConnection,
    SignInAddress,
    FailureAudit,
}

impl Limit {
    pub fn as_str(self) -> &'static str {
        match self {
            Limit::Scim => "scim",
            Limit::Admin => "admin",
            Limit::Token => "token",
            Limit::SignInConnection => "sign_in_connection",
            Limit::SignInAddress => "sign_in_address",
            Limit::FailureAudit => "failure_audit",
        }
    }
}

/// How long to wait before the limit allows the next request, in whole seconds (at least one):
/// what `Retry-After` says (RFC 9110 §10.2.3; RFC 6585 §4 for 429).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryAfter(pub u64);

type Keyed = DefaultKeyedRateLimiter<String>;

/// The limiters of one replica.
#[derive(Default)]
pub struct RateLimits {
    scim: Option<Keyed>,
    admin: Option<Keyed>,
    token: Option<Keyed>,
    sign_in_connection: Option<Keyed>,
    sign_in_address: Option<Keyed>,
    failure_audit: Option<Keyed>,
}

impl RateLimits {
    pub fn new(config: &RateConfig) -> Self {
        let keyed = |r: Rate| r.quota().map(Keyed::keyed);
        Self {
            scim: keyed(config.scim),
            admin: keyed(config.admin),
            token: keyed(config.token),
            sign_in_connection: keyed(config.sign_in_connection),
            sign_in_address: keyed(config.sign_in_address),
            failure_audit: keyed(config.failure_audit),
        }
    }

    fn limiter(&self, limit: Limit) -> Option<&Keyed> {
        match limit {
            Limit::Scim => self.scim.as_ref(),
            Limit::Admin => self.admin.as_ref(),
            Limit::Token => self.token.as_ref(),
            Limit::SignInConnection => self.sign_in_connection.as_ref(),
            Limit::SignInAddress => self.sign_in_address.as_ref(),
            Limit::FailureAudit => self.failure_audit.as_ref(),
        }
    }

    /// Spends one request of `key`'s allowance, or says how long until there is one. Refusals
    /// are counted by limit (never by key: keys are tokens' and clients' ids).
    pub fn check(&self, limit: Limit, key: &str) -> Result<(), RetryAfter> {
        let Some(limiter) = self.limiter(limit) else {
            return Ok(());
        };
        let key = key.to_string();
        match limiter.check_key(&key) {
            Ok(()) => Ok(()),
            Err(not_until) => {
                metrics::counter!("idbridge_rate_limited_total", "limit" => limit.as_str())
                    .increment(1);
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                Err(RetryAfter(wait.as_secs_f64().ceil().max(1.0) as u64))
            }
        }
    }

    /// Drops the state of keys whose allowance is full again: they would start afresh anyway.
    pub fn forget_idle(&self) {
        for l in [
            &self.scim,
            &self.admin,
            &self.token,
            &self.sign_in_connection,
            &self.sign_in_address,
            &self.failure_audit,
        ]
        .into_iter()
        .flatten()
        {
            l.retain_recent();
            l.shrink_to_fit();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_and_print() {
        assert_eq!("0".parse::<Rate>(), Ok(Rate::OFF));
        assert_eq!("100/1000".parse::<Rate>(), Ok(Rate::new(100.0, 1000)));
        assert_eq!(" 0.5 / 30 ".parse::<Rate>(), Ok(Rate::new(0.5, 30)));
        assert_eq!(Rate::new(0.5, 30).to_string(), "0.5/30");
        assert_eq!(Rate::OFF.to_string(), "0");
        for bad in [
            "", "100", "100/0", "-1/10", "x/10", "10/x", "NaN/5", "1e12/5", "0/5",
        ] {
            assert!(bad.parse::<Rate>().is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn a_key_past_its_burst_waits_and_others_do_not() {
        let limits = RateLimits::new(&RateConfig {
            scim: Rate::new(0.1, 2),
            ..RateConfig::OFF
        });
        assert_eq!(limits.check(Limit::Scim, "a"), Ok(()));
        assert_eq!(limits.check(Limit::Scim, "a"), Ok(()));
        let Err(RetryAfter(secs)) = limits.check(Limit::Scim, "a") else {
            panic!("the third request within the burst of two passed");
        };
        assert!((1..=10).contains(&secs), "{secs}");
        assert_eq!(limits.check(Limit::Scim, "b"), Ok(()));
        // A limit set to 0 never refuses.
        for _ in 0..100 {
            assert_eq!(limits.check(Limit::Admin, "a"), Ok(()));
        }
    }
}
