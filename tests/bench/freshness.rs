//! How long an origin write takes to reach the edge with no call from the client: an
//! origin that pushes its changes to the worker (`EDGE_URL`) takes contact writes one at
//! a time, and after each is acknowledged the edge's counts are read until they show it.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sqlx::PgPool;

use crate::mixed::percentile;

/// Past this a write counts as never having reached the edge.
const GIVE_UP: Duration = Duration::from_secs(10);

pub async fn measure(db: &PgPool, writer: &str, edge: &str, ws: &str, writes: usize) -> Value {
    let token = e2e::origins::token("user_3", ws, false);
    let ids: Vec<i64> = sqlx::query_scalar(
        "SELECT id FROM contacts WHERE workspace_id = $1 AND NOT archived AND NOT favorite \
         ORDER BY id LIMIT $2",
    )
    .bind(ws)
    .bind(i64::try_from(writes).unwrap_or(i64::MAX))
    .fetch_all(db)
    .await
    .expect("contacts to write");
    let http = reqwest::Client::new();
    let favorites = || async {
        let v: Value = http
            .get(format!("{edge}/api/workspaces/{ws}/counts"))
            .bearer_auth(&token)
            .header("X-Workspace-ID", ws)
            .send()
            .await
            .expect("edge counts")
            .json()
            .await
            .expect("edge counts json");
        v["data"]["favorites"].as_i64().unwrap_or(-1)
    };
    let mut expected = favorites().await;
    let mut delays = Vec::new();
    let mut lost = 0;
    for id in ids {
        let written = http
            .patch(format!("{writer}/api/workspaces/{ws}/contacts/{id}"))
            .bearer_auth(&token)
            .json(&json!({"favorite": true}))
            .send()
            .await
            .expect("write");
        assert!(
            written.status().is_success(),
            "write {id}: {}",
            written.status()
        );
        let acknowledged = Instant::now();
        expected += 1;
        loop {
            if favorites().await >= expected {
                delays.push(acknowledged.elapsed());
                break;
            }
            if acknowledged.elapsed() > GIVE_UP {
                lost += 1;
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    json!({
        "writes": delays.len() + lost,
        "neverFresh": lost,
        "p50Seconds": percentile(&mut delays, 0.50) / 1000.0,
        "p99Seconds": percentile(&mut delays, 0.99) / 1000.0,
    })
}
