//! The wall-clock time the service acts on, passed in rather than read where it is used.
//!
//! Every expiry (sessions, flows, codes, tokens, portal links), every timestamp written and every
//! retry schedule reads the [`Clock`] the store was built with, so a transaction sees one time
//! from its start (`Tx::now`) and a test can move time forward by hours instead of sleeping, or
//! instead of writing timestamps into the database behind the service's back. Only the logs'
//! own timestamps and the monotonic timers of request deadlines and metrics read the system.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use time::OffsetDateTime;

/// The system's time, or the system's time plus an offset that [`Clock::advance`] moves.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    /// Microseconds added to the system time; `None` for the plain system clock.
    offset: Option<Arc<AtomicI64>>,
}

impl Clock {
    pub fn system() -> Clock {
        Clock { offset: None }
    }

    /// A clock that runs with the system's and can be moved forward, for tests and rehearsals
    /// ("what does this look like in 90 days?"). Clones share the offset.
    pub fn adjustable() -> Clock {
        Clock {
            offset: Some(Arc::new(AtomicI64::new(0))),
        }
    }

    /// Moves an adjustable clock forward; a system clock cannot be moved and returns false.
    pub fn advance(&self, by: Duration) -> bool {
        match &self.offset {
            Some(offset) => {
                let by = i64::try_from(by.as_micros()).unwrap_or(i64::MAX);
                offset.fetch_add(by, Ordering::AcqRel);
                true
            }
            None => false,
        }
    }

    pub fn now(&self) -> OffsetDateTime {
        let system = OffsetDateTime::now_utc();
        match &self.offset {
            Some(offset) => {
                let us = offset.load(Ordering::Acquire);
                system
                    .checked_add(time::Duration::microseconds(us))
                    .unwrap_or(system)
            }
            None => system,
        }
    }

    /// [`Clock::now`] in microseconds since the Unix epoch, as the store writes times.
    pub fn now_micros(&self) -> i64 {
        (self.now().unix_timestamp_nanos() / 1_000) as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_adjustable_clock_moves_forward_for_all_its_clones_and_the_system_clock_does_not() {
        let clock = Clock::adjustable();
        let other = clock.clone();
        let before = other.now_micros();
        assert!(clock.advance(Duration::from_secs(3600)));
        let after = other.now_micros();
        assert!(after - before >= 3_600_000_000, "{before} -> {after}");
        assert!(after - before < 3_660_000_000, "{before} -> {after}");

        let system = Clock::system();
        assert!(!system.advance(Duration::from_secs(3600)));
        let drift =
            (system.now_micros() - OffsetDateTime::now_utc().unix_timestamp() * 1_000_000).abs();
        assert!(drift < 60_000_000, "{drift}");
    }
}
