//! Rate limits, applied after authentication and keyed only by what the token proved
//! (user, workspace), never by client-supplied addresses such as X-Forwarded-For.
//! Keyed state is pruned every minute, so memory follows the active keys, not all keys ever seen.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use shared::settings::{RateLimits, MAX_RATE_PER_MIN};
use shared::{UserId, WorkspaceId};

use crate::error::{Error, Result};
use crate::FastHash;

/// A limiter keyed by what a token proved, so the process's fast hasher suits it too:
/// every request is checked against one.
type Keyed<K> = RateLimiter<K, DefaultKeyedStateStore<K, FastHash>, DefaultClock>;

/// Every key's bucket refills at `MAX_RATE_PER_MIN` cells a minute, and a request costs
/// `MAX_RATE_PER_MIN / limit` cells: one limiter then enforces a different limit per
/// workspace (its own setting, or the deployment's default).
pub struct Limits {
    writes: Keyed<(WorkspaceId, UserId)>,
    requests: Keyed<WorkspaceId>,
    writes_per_user_per_min: u32,
    requests_per_workspace_per_min: u32,
}

fn cost(per_min: u32) -> NonZeroU32 {
    NonZeroU32::new(MAX_RATE_PER_MIN / per_min.clamp(1, MAX_RATE_PER_MIN))
        .unwrap_or(NonZeroU32::MIN)
}

fn refusal(wait: Duration) -> Error {
    Error::RateLimited(wait.as_secs() + 1)
}

fn check<K>(limiter: &Keyed<K>, key: &K, per_min: u32) -> Result<()>
where
    K: Clone + std::hash::Hash + Eq,
{
    match limiter.check_key_n(key, cost(per_min)) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(not_until)) => Err(refusal(
            not_until.wait_time_from(DefaultClock::default().now()),
        )),
        // A cost above the bucket's size cannot happen (`cost` is at most its size).
        Err(_) => Err(refusal(Duration::from_secs(60))),
    }
}

impl Limits {
    pub fn new(writes_per_user_per_min: u32, requests_per_workspace_per_min: u32) -> Self {
        let quota = Quota::per_minute(NonZeroU32::new(MAX_RATE_PER_MIN).unwrap_or(NonZeroU32::MIN));
        Self {
            writes: RateLimiter::dashmap_with_hasher(quota, FastHash::default()),
            requests: RateLimiter::dashmap_with_hasher(quota, FastHash::default()),
            writes_per_user_per_min,
            requests_per_workspace_per_min,
        }
    }

    /// One authenticated request in `ws`, whose own limits are `own`.
    pub fn request(&self, ws: &WorkspaceId, own: &RateLimits) -> Result<()> {
        let limit = own
            .requests_per_minute
            .unwrap_or(self.requests_per_workspace_per_min);
        check(&self.requests, ws, limit)
    }

    /// One contact write by `user` in `ws` (which also counts as a request).
    pub fn write(&self, ws: &WorkspaceId, user: &UserId, own: &RateLimits) -> Result<()> {
        self.request(ws, own)?;
        let limit = own
            .writes_per_user_per_minute
            .unwrap_or(self.writes_per_user_per_min);
        check(&self.writes, &(ws.clone(), user.clone()), limit)
    }

    /// Forgets keys whose limits are fully replenished.
    pub fn prune(&self) {
        self.writes.retain_recent();
        self.writes.shrink_to_fit();
        self.requests.retain_recent();
        self.requests.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULT: RateLimits = RateLimits {
        requests_per_minute: None,
        writes_per_user_per_minute: None,
    };

    #[test]
    fn a_workspace_setting_replaces_the_default_for_that_workspace_only() {
        let limits = Limits::new(100, 1000);
        let (strict, other) = (
            WorkspaceId::parse("1").expect("ws"),
            WorkspaceId::parse("2").expect("ws"),
        );
        let own = RateLimits {
            requests_per_minute: Some(3),
            writes_per_user_per_minute: None,
        };
        for _ in 0..3 {
            assert!(limits.request(&strict, &own).is_ok());
        }
        assert!(matches!(limits.request(&strict, &own), Err(Error::RateLimited(s)) if s >= 1));
        for _ in 0..50 {
            assert!(limits.request(&other, &DEFAULT).is_ok());
        }
        let generous = RateLimits {
            requests_per_minute: Some(MAX_RATE_PER_MIN),
            writes_per_user_per_minute: Some(MAX_RATE_PER_MIN),
        };
        let user = UserId::parse("u1").expect("user");
        for _ in 0..5000 {
            assert!(limits.write(&other, &user, &generous).is_ok());
        }
    }

    #[test]
    fn writes_are_limited_per_user_and_workspace() {
        let limits = Limits::new(2, 100);
        let ws = WorkspaceId::parse("1").expect("ws");
        let (u1, u2) = (
            UserId::parse("u1").expect("user"),
            UserId::parse("u2").expect("user"),
        );
        assert!(limits.write(&ws, &u1, &DEFAULT).is_ok());
        assert!(limits.write(&ws, &u1, &DEFAULT).is_ok());
        assert!(matches!(limits.write(&ws, &u1, &DEFAULT), Err(Error::RateLimited(s)) if s >= 1));
        assert!(
            limits.write(&ws, &u2, &DEFAULT).is_ok(),
            "another user has a budget of their own"
        );
        let other = WorkspaceId::parse("2").expect("ws");
        assert!(
            limits.write(&other, &u1, &DEFAULT).is_ok(),
            "and so has the same user elsewhere"
        );
    }

    #[test]
    fn requests_are_limited_per_workspace() {
        let limits = Limits::new(100, 1);
        let ws = WorkspaceId::parse("1").expect("ws");
        assert!(limits.request(&ws, &DEFAULT).is_ok());
        assert!(limits.request(&ws, &DEFAULT).is_err());
        assert!(limits
            .request(&WorkspaceId::parse("2").expect("ws"), &DEFAULT)
            .is_ok());
    }
}
