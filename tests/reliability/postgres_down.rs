//! Scenario 3, Postgres cut off behind a proxy, with a warm cache.

use std::sync::Arc;
use std::time::{Duration, Instant};

use e2e::origins::{self, token};
use serde_json::{json, Value};

use crate::faults::{self, Proxy};
use crate::load;
use crate::scenario::{check, layers, Check, Plan, WS};

pub async fn run(pg_port: u16, url: &str, board_ids: &[i64], plan: &Plan) -> (Value, Vec<Check>) {
    let proxy = Proxy::start(pg_port, Duration::ZERO).await;
    let through = url.replacen(&format!(":{pg_port}/"), &format!(":{}/", proxy.port), 1);
    let origin = origins::origin(&through, &layers(None, true)).await;
    let http = reqwest::Client::new();
    faults::short_ttls(&origin.base(), WS).await;
    let cached = faults::page_targets(&origin.base(), WS, board_ids, 10);
    let first_page = cached[0].url.clone();
    faults::warm(&cached).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    proxy.cut().await;
    let run = tokio::spawn(load::run(Arc::new(cached), 200, plan.postgres_outage));
    let uncached_url = format!(
        "{}/api/boards/{}/contacts?page=77",
        origin.base(),
        board_ids[0]
    );
    let started = Instant::now();
    let uncached = http
        .get(&uncached_url)
        .bearer_auth(token("user_3", WS, false))
        .header("X-Workspace-ID", WS)
        .send()
        .await
        .expect("uncached");
    let refusal_ms = started.elapsed().as_secs_f64() * 1000.0;
    let refusal_status = uncached.status().as_u16();
    let retry_after = uncached.headers().contains_key("retry-after");
    let samples = run.await.expect("load");
    let during = load::window(&samples, Duration::ZERO, plan.postgres_outage);
    proxy.restore();
    let restored = Instant::now();
    // Judged through the cache: a page served stale during the outage answers fresh.
    let mut fresh_after = None;
    while restored.elapsed() < Duration::from_secs(10) {
        let r = http
            .get(&first_page)
            .bearer_auth(token("user_3", WS, false))
            .header("X-Workspace-ID", WS)
            .send()
            .await;
        let fresh = r.is_ok_and(|r| {
            r.status().is_success()
                && r.headers()
                    .get("x-cache-status")
                    .is_some_and(|s| s != "STALE")
        });
        if fresh {
            fresh_after = Some(restored.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let requests = during["requests"].as_u64().unwrap_or(0);
    let checks = vec![
        check(
            "every cached key answers 200, marked stale",
            during["ok"].as_u64() == Some(requests) && during["stale"].as_u64() == Some(requests),
            format!("{during}"),
        ),
        check(
            "an uncached key gets 503 with Retry-After within 1 s",
            refusal_status == 503 && retry_after && refusal_ms < 1000.0,
            format!("{refusal_status} in {refusal_ms:.0} ms, Retry-After {retry_after}"),
        ),
        check(
            "no 500",
            during["status500"].as_u64() == Some(0),
            format!("{during}"),
        ),
        check(
            "a page served stale answers fresh within 5 s of Postgres returning",
            fresh_after.is_some_and(|d| d <= Duration::from_secs(5)),
            format!("{fresh_after:?}"),
        ),
    ];
    let figures = json!({
        "outageSecs": plan.postgres_outage.as_secs(), "during": during,
        "uncachedStatus": refusal_status, "uncachedMs": refusal_ms,
        "freshAfterMs": fresh_after.map(|d| d.as_millis()),
    });
    (figures, checks)
}
