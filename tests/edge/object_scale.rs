//! The generations object under a chat workspace's churn: many times its cap of
//! conversations with a message each, pushed to the real worker in workerd as an origin
//! pushes them. Apart from the other edge tests (its own test binary): its load would
//! disturb their timing.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use e2e::{edge_metrics, free_port, start_wrangler, wait_ok};
use reqwest::StatusCode;
use serde_json::{json, Value};

const PUSH_KEY: &str = "e2e-push-key-scale01";
const WS: &str = "31337";
/// 25 times the cap by default; `SCALE_CONVERSATIONS` sets another number (the figures in
/// BENCHMARKS.md are from 100,000).
fn conversations() -> u64 {
    std::env::var("SCALE_CONVERSATIONS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(25 * CAP)
}
/// The object's default `EDGE_MAX_CONVERSATION_COUNTERS`, set here so the bound is this
/// test's own.
const CAP: u64 = 1_000;
const CLIENTS: usize = 8;

/// Pushes one conversation's new message, sent again should the connection drop (as an
/// origin does: a change pushed twice only moves its counters once more).
async fn push(http: &reqwest::Client, base: &str, conversation: u64) -> Value {
    let mut tries = 0;
    loop {
        let sent = http
            .post(format!("{base}/internal/changes"))
            .header("X-Internal-Key", PUSH_KEY)
            .json(&json!({"workspaceId": WS, "conversation": [conversation, "appended"]}))
            .send()
            .await;
        match sent {
            Ok(r) => {
                assert_eq!(r.status(), StatusCode::OK);
                return r.json().await.expect("json");
            }
            Err(e) if tries < 3 && (e.is_connect() || e.is_request()) => tries += 1,
            Err(e) => panic!("push: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_object_stays_as_large_as_its_active_conversations_through_many_times_its_cap() {
    let conversations = conversations();
    let port = free_port();
    let cap = CAP.to_string();
    let vars = [
        ("JWT_SECRET", "e2e-scale-secret-0123456789abcdef"),
        ("INTERNAL_API_KEY", "e2e-scale-read-key"),
        ("EDGE_PUSH_KEY", PUSH_KEY),
        ("EDGE_MAX_CONVERSATION_COUNTERS", cap.as_str()),
    ];
    let _edge = start_wrangler(port, free_port(), &vars);
    let base = format!("http://127.0.0.1:{port}");
    wait_ok(&format!("{base}/health"), Duration::from_secs(600)).await;

    let next = Arc::new(AtomicU64::new(1));
    let started = Instant::now();
    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..CLIENTS {
        let (next, base) = (next.clone(), base.clone());
        clients.spawn(async move {
            let http = reqwest::Client::new();
            let mut most = 0;
            loop {
                let conversation = next.fetch_add(1, Ordering::Relaxed);
                if conversation > conversations {
                    return most;
                }
                let answer = push(&http, &base, conversation).await;
                let held = answer["data"]["countersHeld"].as_u64().expect("held");
                most = most.max(held);
            }
        });
    }
    let most = clients.join_all().await.into_iter().max().unwrap_or(0);
    let took = started.elapsed();
    println!(
        "{conversations} conversations in {took:?} ({:.0} a second), at most {most} counters",
        conversations as f64 / took.as_secs_f64()
    );
    // A head counter a conversation, the workspace's few; folded back to half the cap
    // past it.
    assert!(most > CAP / 2, "the pushes reached the object: {most}");
    assert!(most <= CAP + 8, "the object held {most} counters");

    let http = reqwest::Client::new();
    // The latest conversation keeps its counter; one folded long ago starts again above
    // nothing it had (its pages' keys sum `Threads` too, which the fold raised).
    let latest = push(&http, &base, conversations).await;
    let latest = &latest["data"]["generations"][format!("c{conversations}h")];
    assert!(latest.as_u64().is_some_and(|n| n >= 2), "{latest}");
    let folded = push(&http, &base, 1).await;
    assert_eq!(folded["data"]["generations"]["c1h"], 1);

    let metrics = edge_metrics(&base).await;
    // Each answer carried the bumped counters, not the table; the worker's own memory
    // did not grow with the conversations.
    let largest = metrics["generations"]["largest_answer"]
        .as_u64()
        .expect("largest");
    assert!((1..=4).contains(&largest), "answers of {largest} counters");
    let wasm = metrics["memory"]["wasm_bytes"]
        .as_u64()
        .expect("wasm_bytes");
    assert!(
        wasm < 16 << 20,
        "the worker's wasm memory reached {wasm} bytes"
    );
}
