//! Accepted bearer tokens, kept for a moment per replica so that a SCIM or admin request does not
//! cost a database read before its own work. Only acceptances are kept: an unknown or revoked
//! token is looked up every time, so a new token works at once and guessing stays a query.
//!
//! Revocation: a write on this replica that can end a token (revoke, rotate, deleting its
//! directory, sub-account or organization) empties the cache after it commits, so it takes effect
//! here at the next request; other replicas see it when their entry ages out, within the TTL.
//! The generation counter closes the race in between: a lookup that read the database before such
//! a commit does not store what it read.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::admin::AdminPrincipal;
use super::directory::DirectoryScope;

/// Enough for every token of a large deployment; past it the cache starts over rather than grow.
const MAX_ENTRIES: usize = 50_000;

#[derive(Clone)]
pub(crate) enum Accepted {
    Directory(DirectoryScope),
    Admin(AdminPrincipal),
}

pub(crate) struct AuthCache {
    ttl: Duration,
    generation: AtomicU64,
    entries: Mutex<HashMap<String, Entry>>,
}

/// Kept until `until` on this replica's monotonic clock, and never past the token's own expiry
/// on the store's clock (which a test can move forward, and an operator's rehearsal too).
struct Entry {
    until: Instant,
    expires_at: Option<i64>,
    accepted: Accepted,
}

impl AuthCache {
    pub(crate) fn new(ttl: Duration) -> AuthCache {
        AuthCache {
            ttl,
            generation: AtomicU64::new(0),
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The key of a token for one use: a directory token is only ever valid for its directory.
    pub(crate) fn key(hash: &str, directory_id: Option<&str>) -> String {
        match directory_id {
            Some(d) => format!("d:{d}:{hash}"),
            None => format!("a:{hash}"),
        }
    }

    /// The acceptance kept for `key`, if it is fresh and its token has not expired by `now`.
    pub(crate) fn get(&self, key: &str, now: i64) -> Option<Accepted> {
        if self.ttl.is_zero() {
            return None;
        }
        self.lock()
            .get(key)
            .filter(|e| Instant::now() < e.until && e.expires_at.is_none_or(|at| now < at))
            .map(|e| e.accepted.clone())
    }

    /// Where a lookup starts: what [`AuthCache::put`] needs to know whether a revocation
    /// committed while it read.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Keeps an acceptance read at `generation` until the TTL ends, or the token's own expiry
    /// (`expires_at`, an admin token's) if sooner.
    pub(crate) fn put(
        &self,
        key: String,
        generation: u64,
        accepted: Accepted,
        expires_at: Option<i64>,
    ) {
        if self.ttl.is_zero() {
            return;
        }
        let mut entries = self.lock();
        // Checked under the lock that `forget_all` takes too: no revocation can slip in between.
        if self.generation.load(Ordering::Acquire) != generation {
            return;
        }
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(
            key,
            Entry {
                until: Instant::now() + self.ttl,
                expires_at,
                accepted,
            },
        );
    }

    /// Called after a write that can end a token has committed.
    pub(crate) fn forget_all(&self) {
        let mut entries = self.lock();
        self.generation.fetch_add(1, Ordering::AcqRel);
        entries.clear();
    }

    /// Nothing panics while holding the lock; should something ever, the map is still sound.
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}
