//! Every change the origin acknowledges or learns reaches the edge: each is queued in a
//! Redis stream (the outbox, shared by the instances) and sent to the worker's
//! `/internal/changes` with the internal key, then acknowledged. A send that fails stays
//! in the stream and is tried again with backoff, by this instance or, should it die, by
//! another (`stream_take` claims entries left unacknowledged). While Redis is down,
//! changes wait in this instance's memory and go to the stream when it answers; without
//! Redis they are sent from memory (an instance that stops then loses what it holds).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use shared::invalidation::{Changed, Push};
use shared::WorkspaceId;
use tokio::sync::{Mutex, Notify};

use crate::cache::entry::now_ms;
use crate::cache::random_id;
use crate::cache::redis::RedisCache;

const GROUP: &str = "edge";
/// Entries a stream keeps at most; far more than an edge outage of hours produces.
const STREAM_MAX: usize = 1_000_000;
/// Changes kept in memory while Redis is down; past this, the oldest are folded into one
/// workspace-wide change per workspace, which covers them.
const MEMORY_MAX: usize = 10_000;
const BATCH: usize = 64;
/// How often the stream is polled for entries other instances left behind.
const POLL: Duration = Duration::from_millis(250);
const SEND_TIMEOUT: Duration = Duration::from_secs(2);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

pub struct EdgePush {
    url: String,
    key: String,
    stream: String,
    consumer: String,
    http: reqwest::Client,
    redis: Option<Arc<RedisCache>>,
    memory: Mutex<VecDeque<String>>,
    wake: Notify,
    /// What the panel shows: changes waiting, how long the last one took to reach the
    /// edge (`u64::MAX`: none yet), and whether the edge refuses or cannot be reached.
    depth: AtomicU64,
    last_lag_ms: AtomicU64,
    failing: AtomicBool,
}

impl EdgePush {
    pub fn new(url: &str, key: &str, stream: String, redis: Option<Arc<RedisCache>>) -> Self {
        Self {
            url: format!("{}/internal/changes", url.trim_end_matches('/')),
            key: key.to_owned(),
            stream,
            consumer: format!("{:016x}", random_id()),
            http: reqwest::Client::new(),
            redis,
            memory: Mutex::default(),
            wake: Notify::new(),
            depth: AtomicU64::new(0),
            last_lag_ms: AtomicU64::new(u64::MAX),
            failing: AtomicBool::new(false),
        }
    }

    /// The outbox as this instance last saw it, for the admin status and the panel.
    pub fn report(&self) -> Value {
        let lag = self.last_lag_ms.load(Ordering::Relaxed);
        json!({
            "outboxDepth": self.depth.load(Ordering::Relaxed),
            "lastLagMs": (lag != u64::MAX).then_some(lag),
            "edgeReachable": !self.failing.load(Ordering::Relaxed),
        })
    }

    fn set_depth(&self, depth: usize) {
        self.depth.store(depth as u64, Ordering::Relaxed);
        metrics::gauge!("edgecache_edge_outbox_depth").set(depth as f64);
    }

    /// Queues `change` for the edge; returns at once.
    pub async fn queue(&self, ws: &WorkspaceId, change: &Changed) {
        let push = serde_json::to_string(&Push::new(ws, change)).unwrap_or_default();
        let stored = match &self.redis {
            Some(r) => r.stream_add(&self.stream, &push, STREAM_MAX).await.is_ok(),
            None => false,
        };
        if !stored {
            let mut memory = self.memory.lock().await;
            memory.push_back(push);
            if memory.len() > MEMORY_MAX {
                fold(&mut memory);
            }
        }
        self.wake.notify_one();
    }

    /// Sends queued changes until the process ends.
    pub async fn run(self: Arc<Self>) {
        let mut backoff = POLL;
        if let Some(r) = &self.redis {
            let _ = r.stream_group(&self.stream, GROUP).await;
        }
        loop {
            let delivered = self.round(backoff).await;
            backoff = if delivered {
                POLL
            } else {
                (backoff * 2).min(MAX_BACKOFF)
            };
            let _ = tokio::time::timeout(backoff, self.wake.notified()).await;
        }
    }

    /// One pass: memory to the stream (or straight to the edge without Redis), then the
    /// stream's entries to the edge. False when the edge refused or could not be reached.
    async fn round(&self, backoff: Duration) -> bool {
        let held: Vec<String> = self.memory.lock().await.drain(..).collect();
        let Some(redis) = &self.redis else {
            return self.send_all(held).await;
        };
        for (i, push) in held.iter().enumerate() {
            if redis
                .stream_add(&self.stream, push, STREAM_MAX)
                .await
                .is_err()
            {
                self.requeue(&held[i..]).await;
                return true;
            }
        }
        let idle = backoff.max(SEND_TIMEOUT * 2);
        let Ok(entries) = redis
            .stream_take(&self.stream, GROUP, &self.consumer, idle, BATCH)
            .await
        else {
            // Redis down, or restarted without the stream: the group is made again (a
            // no-op when it exists) and the next round reads it.
            let _ = redis.stream_group(&self.stream, GROUP).await;
            return true;
        };
        if let Ok(depth) = redis.stream_len(&self.stream).await {
            self.set_depth(usize::try_from(depth).unwrap_or(usize::MAX));
        }
        for (id, push) in entries {
            if !self.send(&push).await {
                return false;
            }
            if let Some(queued_ms) = id.split('-').next().and_then(|ms| ms.parse::<u64>().ok()) {
                let now = u64::try_from(now_ms()).unwrap_or(0);
                let lag_ms = now.saturating_sub(queued_ms);
                self.last_lag_ms.store(lag_ms, Ordering::Relaxed);
                metrics::histogram!("edgecache_edge_propagation_seconds")
                    .record(lag_ms as f64 / 1000.0);
            }
            let _ = redis.stream_done(&self.stream, GROUP, &id).await;
        }
        true
    }

    /// Without Redis: sends from memory, keeping what the edge did not take.
    async fn send_all(&self, held: Vec<String>) -> bool {
        for (i, push) in held.iter().enumerate() {
            if !self.send(push).await {
                self.requeue(&held[i..]).await;
                return false;
            }
        }
        self.set_depth(self.memory.lock().await.len());
        true
    }

    /// Puts changes not yet passed on back in front of those queued since, in order.
    async fn requeue(&self, unsent: &[String]) {
        let mut memory = self.memory.lock().await;
        for (i, push) in unsent.iter().enumerate() {
            memory.insert(i, push.clone());
        }
    }

    /// True once the edge took the change (or refused it as malformed, which no retry
    /// mends).
    async fn send(&self, push: &str) -> bool {
        let sent = self
            .http
            .post(&self.url)
            .header("X-Internal-Key", &self.key)
            .header("content-type", "application/json")
            .body(push.to_owned())
            .timeout(SEND_TIMEOUT)
            .send()
            .await;
        let taken = match sent {
            Ok(r) if r.status().is_success() => true,
            Ok(r) if r.status() == reqwest::StatusCode::BAD_REQUEST => {
                tracing::error!(%push, "the edge refused a change as malformed; dropped");
                true
            }
            Ok(r) => {
                tracing::warn!(status = %r.status(), "the edge refused a change; will retry");
                false
            }
            Err(e) => {
                tracing::warn!(error = %e, "the edge is unreachable; will retry");
                false
            }
        };
        self.failing.store(!taken, Ordering::Relaxed);
        taken
    }
}

/// Replaces the queued changes by one workspace-wide change per workspace they name:
/// coarser, never lost.
fn fold(memory: &mut VecDeque<String>) {
    let mut workspaces: Vec<String> = memory
        .drain(..)
        .filter_map(|p| Push::parse(&p).ok())
        .map(|(ws, _)| ws.as_str().to_owned())
        .collect();
    workspaces.sort();
    workspaces.dedup();
    for ws in workspaces {
        if let Ok(ws) = WorkspaceId::parse(&ws) {
            memory.push_back(
                serde_json::to_string(&Push::new(&ws, &Changed::Workspace)).unwrap_or_default(),
            );
        }
    }
}
