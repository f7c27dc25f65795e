//! Scenario 1, Redis killed under 2,000 req/s of mostly L1 hits, then restarted.

use std::sync::Arc;
use std::time::{Duration, Instant};

use e2e::free_port;
use e2e::origins::{self, token};
use serde_json::{json, Value};

use crate::faults::{self, Redis};
use crate::load;
use crate::scenario::{check, f, layers, no_5xx, Check, Plan, WS};

pub async fn run(url: &str, board_ids: &[i64], plan: &Plan) -> (Value, Vec<Check>) {
    let mut redis = Redis::start(free_port()).await;
    let origin = origins::origin(url, &layers(Some(redis.url()), true)).await;
    let targets = faults::page_targets(&origin.base(), WS, board_ids, 50);
    faults::warm(&targets).await;
    let errors_before = faults::counter(&origin.base(), "edgecache_redis_errors_total").await;
    let third = plan.redis_outage;
    let run = tokio::spawn(load::run(Arc::new(targets), 2000, third * 3));
    tokio::time::sleep(third).await;
    redis.kill();
    tokio::time::sleep(third).await;
    let port = redis.port;
    drop(redis);
    let restarted = Redis::start(port).await;
    let back = faults::redis_back(&origin.base(), Duration::from_secs(20)).await;
    let samples = run.await.expect("load");
    let errors =
        faults::counter(&origin.base(), "edgecache_redis_errors_total").await - errors_before;
    let phases = faults::phases(&samples, third, third * 2, third * 3);

    // A fresh origin starts and answers while its Redis is down.
    let dead = format!("redis://127.0.0.1:{}", free_port());
    let started = Instant::now();
    let cold = origins::origin(url, &layers(Some(dead), true)).await;
    let cold_start = started.elapsed();
    let answer = reqwest::Client::new()
        .get(format!(
            "{}/api/cache-settings/workspace/{WS}/counts",
            cold.base()
        ))
        .bearer_auth(token("user_3", WS, false))
        .header("X-Workspace-ID", WS)
        .send()
        .await
        .expect("counts");
    drop(restarted);

    let steady = f(&phases, "before", "p99Ms");
    let during = f(&phases, "during", "p99Ms");
    let checks = vec![
        no_5xx("no 5xx", &phases),
        check(
            "p99 during the outage within 5× steady state (or 5 ms)",
            during <= (steady * 5.0).max(5.0),
            format!("steady {steady:.2} ms, during {during:.2} ms"),
        ),
        check(
            "errors visible in /metrics",
            errors > 0.0,
            format!("{errors} Redis errors counted"),
        ),
        check(
            "Redis back within 10 s of the restart, without restarting the origin",
            back.is_some_and(|d| d <= Duration::from_secs(10)),
            format!("{back:?}"),
        ),
        check(
            "an origin starts and answers while Redis is down",
            answer.status().is_success(),
            format!("ready in {cold_start:?}, counts {}", answer.status()),
        ),
    ];
    let figures = json!({
        "rate": 2000, "phases": phases, "redisErrors": errors,
        "redisBackAfterMs": back.map(|d| d.as_millis()), "coldStartMs": cold_start.as_millis(),
    });
    (figures, checks)
}
