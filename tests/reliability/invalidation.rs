//! Scenario 6, an invalidation under hundreds of concurrent readers on two instances:
//! reads that start after the acknowledgement must not return the old payload.

use std::sync::Arc;
use std::time::{Duration, Instant};

use e2e::origins::{self, token};
use serde_json::{json, Value};
use sqlx::PgPool;

use crate::scenario::{check, layers, Check, Plan, WS};

pub async fn run(db: &PgPool, url: &str, plan: &Plan) -> (Value, Vec<Check>) {
    let redis = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let shared = layers(Some(redis), true);
    let a = origins::origin(url, &shared).await;
    let b = origins::origin(url, &shared).await;
    let before: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM contacts WHERE workspace_id = $1 AND NOT archived AND favorite",
    )
    .bind(WS)
    .fetch_one(db)
    .await
    .expect("favorites");
    let id: i64 = sqlx::query_scalar(
        "SELECT id FROM contacts WHERE workspace_id = $1 AND NOT archived AND NOT favorite LIMIT 1",
    )
    .bind(WS)
    .fetch_one(db)
    .await
    .expect("a contact");
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(600)
        .build()
        .expect("client");
    let reader = token("user_3", WS, false);
    let ack: Arc<std::sync::Mutex<Option<Instant>>> = Arc::default();
    let stop = Instant::now() + Duration::from_secs(4);
    let mut tasks = Vec::new();
    for i in 0..plan.readers {
        let base = if i % 2 == 0 { a.base() } else { b.base() };
        let (http, reader, ack) = (http.clone(), reader.clone(), ack.clone());
        tasks.push(tokio::spawn(async move {
            let (mut old_after_ack, mut reads, mut errors) = (0u64, 0u64, 0u64);
            while Instant::now() < stop {
                let started = Instant::now();
                let r = http
                    .get(format!("{base}/api/cache-settings/workspace/{WS}/counts"))
                    .bearer_auth(&reader)
                    .header("X-Workspace-ID", WS)
                    .send()
                    .await;
                reads += 1;
                let answer = match r {
                    Ok(r) if r.status().is_success() => r.json::<Value>().await.ok(),
                    _ => None,
                };
                let Some(v) = answer else {
                    errors += 1;
                    continue;
                };
                let acked = *ack.lock().unwrap_or_else(|p| p.into_inner());
                if acked.is_some_and(|t| started > t)
                    && v["data"]["favorites"].as_i64() == Some(before)
                {
                    old_after_ack += 1;
                }
            }
            (old_after_ack, reads, errors)
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let r = http
        .patch(format!("{}/api/workspaces/{WS}/contacts/{id}", a.base()))
        .bearer_auth(token("user_3", WS, false))
        .json(&json!({"favorite": true}))
        .send()
        .await
        .expect("write");
    assert!(r.status().is_success(), "write: {}", r.status());
    *ack.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
    let (mut old, mut reads, mut errors) = (0, 0, 0);
    for t in tasks {
        let (o, n, e) = t.await.expect("reader");
        old += o;
        reads += n;
        errors += e;
    }
    let checks = vec![
        check(
            "0 old payloads after the acknowledgement, from either instance",
            old == 0,
            format!("{old} old of {reads} reads"),
        ),
        check(
            "every read answered 200 with the counts",
            errors == 0 && reads > 0,
            format!("{errors} of {reads} reads failed"),
        ),
    ];
    (
        json!({"readers": plan.readers, "reads": reads, "oldAfterAck": old, "errors": errors}),
        checks,
    )
}
