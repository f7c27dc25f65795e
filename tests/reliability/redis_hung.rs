//! Scenario 2, Redis frozen (SIGSTOP) under load on an origin whose every read needs Redis.

use std::sync::Arc;
use std::time::Duration;

use e2e::free_port;
use e2e::origins;
use serde_json::{json, Value};

use crate::faults::{self, Redis};
use crate::load;
use crate::scenario::{check, f, layers, no_5xx, Check, Plan, WS};

pub async fn run(url: &str, board_ids: &[i64], plan: &Plan) -> (Value, Vec<Check>) {
    let redis = Redis::start(free_port()).await;
    let origin = origins::origin(url, &layers(Some(redis.url()), false)).await;
    let targets = faults::page_targets(&origin.base(), WS, board_ids, 25);
    faults::warm(&targets).await;
    let lead = Duration::from_secs(2);
    let hang = plan.redis_hang;
    let run = tokio::spawn(load::run(Arc::new(targets), 300, lead * 2 + hang));
    tokio::time::sleep(lead).await;
    redis.signal("-STOP");
    tokio::time::sleep(hang).await;
    redis.signal("-CONT");
    let samples = run.await.expect("load");
    let phases = faults::phases(&samples, lead, lead + hang, lead * 2 + hang);
    let during = f(&phases, "during", "p99Ms");
    let checks = vec![
        no_5xx("no 5xx while Redis hangs", &phases),
        check(
            "p99 bounded by the Redis timeout and the breaker (< 1 s)",
            during < 1000.0,
            format!("p99 during the hang {during:.1} ms"),
        ),
    ];
    (
        json!({"rate": 300, "hangSecs": hang.as_secs(), "phases": phases}),
        checks,
    )
}
