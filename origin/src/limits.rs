//! Rate limits, applied after authentication and keyed only by what the token proved
//! (user, workspace), never by client-supplied addresses such as X-Forwarded-For.
//! Keyed state is pruned every minute, so memory follows the active keys, not all keys ever seen.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use shared::{UserId, WorkspaceId};

use crate::error::{Error, Result};

pub struct Limits {
    writes: DefaultKeyedRateLimiter<(WorkspaceId, UserId)>,
    requests: DefaultKeyedRateLimiter<WorkspaceId>,
}

fn per_minute(n: u32) -> Quota {
    Quota::per_minute(NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN))
}

fn refusal(wait: Duration) -> Error {
    Error::RateLimited(wait.as_secs() + 1)
}

impl Limits {
    pub fn new(writes_per_user_per_min: u32, requests_per_workspace_per_min: u32) -> Self {
        Self {
            writes: RateLimiter::keyed(per_minute(writes_per_user_per_min)),
            requests: RateLimiter::keyed(per_minute(requests_per_workspace_per_min)),
        }
    }

    /// One authenticated request in `ws`.
    pub fn request(&self, ws: &WorkspaceId) -> Result<()> {
        self.requests
            .check_key(ws)
            .map_err(|n| refusal(n.wait_time_from(DefaultClock::default().now())))
    }

    /// One contact write by `user` in `ws` (which also counts as a request).
    pub fn write(&self, ws: &WorkspaceId, user: &UserId) -> Result<()> {
        self.request(ws)?;
        self.writes
            .check_key(&(ws.clone(), user.clone()))
            .map_err(|n| refusal(n.wait_time_from(DefaultClock::default().now())))
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

    #[test]
    fn writes_are_limited_per_user_and_workspace() {
        let limits = Limits::new(2, 100);
        let ws = WorkspaceId::parse("1").expect("ws");
        let (u1, u2) = (
            UserId::parse("u1").expect("user"),
            UserId::parse("u2").expect("user"),
        );
        assert!(limits.write(&ws, &u1).is_ok());
        assert!(limits.write(&ws, &u1).is_ok());
        assert!(matches!(limits.write(&ws, &u1), Err(Error::RateLimited(s)) if s >= 1));
        assert!(
            limits.write(&ws, &u2).is_ok(),
            "another user has a budget of their own"
        );
        let other = WorkspaceId::parse("2").expect("ws");
        assert!(
            limits.write(&other, &u1).is_ok(),
            "and so has the same user elsewhere"
        );
    }

    #[test]
    fn requests_are_limited_per_workspace() {
        let limits = Limits::new(100, 1);
        let ws = WorkspaceId::parse("1").expect("ws");
        assert!(limits.request(&ws).is_ok());
        assert!(limits.request(&ws).is_err());
        assert!(limits
            .request(&WorkspaceId::parse("2").expect("ws"))
            .is_ok());
    }
}
