//! Scenario 4, every answer from Postgres delayed 2 s: keys with a stale value answer stale
//! after the stale-if-slow deadline, the others 504 (or 503 when no connection is free).

use std::sync::Arc;
use std::time::Duration;

use e2e::origins::{self, token};
use serde_json::{json, Value};

use crate::faults::{self, Proxy};
use crate::load::{self, Target};
use crate::scenario::{check, layers, Check, Plan, WS};

pub async fn run(pg_port: u16, url: &str, board_ids: &[i64], plan: &Plan) -> (Value, Vec<Check>) {
    let proxy = Proxy::start(pg_port, Duration::from_secs(2)).await;
    let through = url.replacen(&format!(":{pg_port}/"), &format!(":{}/", proxy.port), 1);
    let origin = origins::origin_with(
        &through,
        &layers(None, true),
        &[("REQUEST_TIMEOUT_MS", "1000"), ("STALE_IF_SLOW_MS", "300")],
    )
    .await;
    faults::short_ttls(&origin.base(), WS).await;
    let warm = faults::page_targets(&origin.base(), WS, board_ids, 5);
    faults::warm(&warm).await;
    // Past the one-second TTL: every warm page is now stale.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    proxy.slow();
    let rss_before = e2e::rss_mib(origin.pid());
    let cold: Vec<Target> = (100..400)
        .flat_map(|page| board_ids.iter().map(move |b| (page, *b)))
        .map(|(page, b)| Target {
            url: format!("{}/api/boards/{b}/contacts?page={page}", origin.base()),
            token: token("user_3", WS, false),
            workspace: WS.into(),
        })
        .collect();
    let stale_run = tokio::spawn(load::run(Arc::new(warm), 100, plan.slow));
    let cold_samples = load::run(Arc::new(cold), 100, plan.slow).await;
    let stale_samples = stale_run.await.expect("load");
    let rss_after = e2e::rss_mib(origin.pid());
    proxy.restore();
    let cold_w = load::window(&cold_samples, Duration::ZERO, plan.slow);
    let stale_w = load::window(&stale_samples, Duration::ZERO, plan.slow);
    let slowest = cold_samples
        .iter()
        .chain(&stale_samples)
        .map(|s| s.latency)
        .max()
        .unwrap_or_default();
    let all_stale = stale_w["requests"].as_u64().is_some_and(|n| {
        n > 0 && stale_w["ok"].as_u64() == Some(n) && stale_w["stale"].as_u64() == Some(n)
    });
    let checks = vec![
        check(
            "pages with a stale value answer 200 marked stale after the stale-if-slow deadline",
            all_stale,
            format!("{stale_w}"),
        ),
        check(
            "pages with nothing cached end in 504, or 503 with Retry-After, every one",
            cold_w["requests"].as_u64().is_some_and(|n| {
                n > 0
                    && cold_w["status503"]
                        .as_u64()
                        .zip(cold_w["status504"].as_u64())
                        .is_some_and(|(a, b)| a + b == n)
                    && cold_w["status503WithoutRetryAfter"].as_u64() == Some(0)
            }),
            format!("{cold_w}"),
        ),
        check(
            "every request answered within the deadline plus a margin (< 2 s)",
            slowest < Duration::from_secs(2),
            format!("slowest {slowest:?}"),
        ),
        check(
            "memory does not grow without bound (< 100 MiB more)",
            rss_after - rss_before < 100.0,
            format!("{rss_before:.1} → {rss_after:.1} MiB"),
        ),
    ];
    (
        json!({"rate": 200, "stale": stale_w, "cold": cold_w, "rssBeforeMiB": rss_before, "rssAfterMiB": rss_after}),
        checks,
    )
}
