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
    user_requests: Keyed<(WorkspaceId, UserId)>,
    searches: Keyed<(WorkspaceId, UserId)>,
    defaults: Defaults,
}

/// The deployment's limits, where a workspace sets none of its own (per minute).
#[derive(Debug, Clone, Copy)]
pub struct Defaults {
    pub writes_per_user: u32,
    pub requests_per_workspace: u32,
    pub requests_per_user: u32,
    pub searches_per_user: u32,
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
    pub fn new(defaults: Defaults) -> Self {
        let quota = Quota::per_minute(NonZeroU32::new(MAX_RATE_PER_MIN).unwrap_or(NonZeroU32::MIN));
        Self {
            writes: RateLimiter::dashmap_with_hasher(quota, FastHash::default()),
            requests: RateLimiter::dashmap_with_hasher(quota, FastHash::default()),
            user_requests: RateLimiter::dashmap_with_hasher(quota, FastHash::default()),
            searches: RateLimiter::dashmap_with_hasher(quota, FastHash::default()),
            defaults,
        }
    }

    /// One authenticated request by `user` in `ws`, whose own limits are `own`: the
    /// member's share first, so a member past it spends nothing of the workspace's (the
    /// edge's key without a user is charged to the workspace alone).
    pub fn request(&self, ws: &WorkspaceId, user: Option<&UserId>, own: &RateLimits) -> Result<()> {
        if let Some(user) = user {
            let share = own
                .requests_per_user_per_minute
                .unwrap_or(self.defaults.requests_per_user);
            check(&self.user_requests, &(ws.clone(), user.clone()), share)?;
        }
        let limit = own
            .requests_per_minute
            .unwrap_or(self.defaults.requests_per_workspace);
        check(&self.requests, ws, limit)
    }

    /// One contact write by `user` in `ws` (which also counts as a request).
    pub fn write(&self, ws: &WorkspaceId, user: &UserId, own: &RateLimits) -> Result<()> {
        self.request(ws, Some(user), own)?;
        let limit = own
            .writes_per_user_per_minute
            .unwrap_or(self.defaults.writes_per_user);
        check(&self.writes, &(ws.clone(), user.clone()), limit)
    }

    /// One search by `user` in `ws` that the caches did not answer (on top of its request).
    pub fn search(&self, ws: &WorkspaceId, user: &UserId, own: &RateLimits) -> Result<()> {
        let limit = own
            .searches_per_user_per_minute
            .unwrap_or(self.defaults.searches_per_user);
        check(&self.searches, &(ws.clone(), user.clone()), limit)
    }

    /// Forgets keys whose limits are fully replenished.
    pub fn prune(&self) {
        self.writes.retain_recent();
        self.writes.shrink_to_fit();
        self.requests.retain_recent();
        self.requests.shrink_to_fit();
        self.user_requests.retain_recent();
        self.user_requests.shrink_to_fit();
        self.searches.retain_recent();
        self.searches.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULT: RateLimits = RateLimits {
        requests_per_minute: None,
        requests_per_user_per_minute: None,
        searches_per_user_per_minute: None,
        writes_per_user_per_minute: None,
    };

    fn limits(writes_per_user: u32, requests_per_workspace: u32, requests_per_user: u32) -> Limits {
        Limits::new(Defaults {
            writes_per_user,
            requests_per_workspace,
            requests_per_user,
            searches_per_user: 2,
        })
    }

    fn user(id: &str) -> UserId {
        UserId::parse(id).expect("user")
    }

    #[test]
    fn a_workspace_setting_replaces_the_default_for_that_workspace_only() {
        let limits = limits(100, 1000, 1000);
        let (strict, other) = (
            WorkspaceId::parse("1").expect("ws"),
            WorkspaceId::parse("2").expect("ws"),
        );
        let own = RateLimits {
            requests_per_minute: Some(3),
            ..DEFAULT
        };
        for _ in 0..3 {
            assert!(limits.request(&strict, None, &own).is_ok());
        }
        assert!(
            matches!(limits.request(&strict, None, &own), Err(Error::RateLimited(s)) if s >= 1)
        );
        for _ in 0..50 {
            assert!(limits.request(&other, None, &DEFAULT).is_ok());
        }
        let generous = RateLimits {
            requests_per_minute: Some(MAX_RATE_PER_MIN),
            requests_per_user_per_minute: Some(MAX_RATE_PER_MIN),
            searches_per_user_per_minute: Some(MAX_RATE_PER_MIN),
            writes_per_user_per_minute: Some(MAX_RATE_PER_MIN),
        };
        for _ in 0..5000 {
            assert!(limits.write(&other, &user("u1"), &generous).is_ok());
        }
    }

    #[test]
    fn writes_are_limited_per_user_and_workspace() {
        let limits = limits(2, 100, 100);
        let ws = WorkspaceId::parse("1").expect("ws");
        let (u1, u2) = (user("u1"), user("u2"));
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
        let limits = limits(100, 1, 100);
        let ws = WorkspaceId::parse("1").expect("ws");
        assert!(limits.request(&ws, None, &DEFAULT).is_ok());
        assert!(limits.request(&ws, None, &DEFAULT).is_err());
        assert!(limits
            .request(&WorkspaceId::parse("2").expect("ws"), None, &DEFAULT)
            .is_ok());
    }

    #[test]
    fn a_member_past_its_share_leaves_the_workspaces_budget_to_the_others() {
        let limits = limits(100, 10, 4);
        let ws = WorkspaceId::parse("1").expect("ws");
        let (greedy, other) = (user("greedy"), user("other"));
        let refused = (0..100)
            .filter(|_| limits.request(&ws, Some(&greedy), &DEFAULT).is_err())
            .count();
        assert_eq!(refused, 96, "four requests a minute for one member");
        for n in 0..4 {
            assert!(
                limits.request(&ws, Some(&other), &DEFAULT).is_ok(),
                "another member's request {n}"
            );
        }
        let own = RateLimits {
            requests_per_user_per_minute: Some(1),
            ..DEFAULT
        };
        let third = user("third");
        assert!(limits.request(&ws, Some(&third), &own).is_ok());
        assert!(
            limits.request(&ws, Some(&third), &own).is_err(),
            "a workspace's own share"
        );
    }
}
