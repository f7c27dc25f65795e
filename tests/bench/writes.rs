//! What the counters cost writers: contact updates on one workspace from 8 connections,
//! with the counter triggers and with them disabled, in the same run. Two kinds of
//! write: a touch of `last_activity_at` (what every chat message does; no count moves)
//! and a change of status and assignee (two counts move). The runs without triggers
//! leave the counters behind, so the workspace's counters are repaired afterwards.

use std::sync::Arc;
use std::time::{Duration, Instant};

use origin::store::postgres::PgStore;
use origin::store::Store;
use serde_json::{json, Value};
use shared::WorkspaceId;
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;

use crate::rng::Rng;

const WRITERS: u64 = 8;
const TRIGGERS: [&str; 3] = [
    "contact_counters_insert",
    "contact_counters_update",
    "contact_counters_delete",
];

const TOUCH: &str =
    "UPDATE contacts SET last_activity_at = now() WHERE workspace_id = $1 AND id = $2";
const COUNTED: &str = "UPDATE contacts SET \
    status = CASE status WHEN 'open' THEN 'closed' ELSE 'open' END, \
    assigned_to = CASE WHEN assigned_to IS NULL THEN 'user_1' ELSE NULL END, \
    updated_at = now() WHERE workspace_id = $1 AND id = $2";

/// Writes a second by `writers` tasks for `run_for`, each calling `write` with a random
/// number and how many writes it made so far, one write at a time.
pub async fn per_sec<F, Fut>(writers: u64, run_for: Duration, write: F) -> f64
where
    F: Fn(usize, u64) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let deadline = Instant::now() + run_for;
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let write = write.clone();
            tokio::spawn(async move {
                let mut rng = Rng::seeded(w + 1);
                let mut done = 0u64;
                while Instant::now() < deadline {
                    write(rng.below(1 << 30), done).await;
                    done += 1;
                }
                done
            })
        })
        .collect();
    let mut total = 0;
    for t in tasks {
        total += t.await.expect("writer");
    }
    total as f64 / run_for.as_secs_f64()
}

async fn writes_per_sec(
    db: &PgPool,
    ws: &str,
    ids: &Arc<Vec<i64>>,
    sql: &'static str,
    run_for: Duration,
) -> f64 {
    let (db, ws, ids) = (db.clone(), ws.to_owned(), ids.clone());
    per_sec(WRITERS, run_for, move |r, _| {
        let (db, ws, id) = (db.clone(), ws.clone(), ids[r % ids.len()]);
        async move {
            sqlx::query(sql)
                .bind(&ws)
                .bind(id)
                .execute(&db)
                .await
                .expect("write");
        }
    })
    .await
}

async fn set_triggers(db: &PgPool, enabled: bool) {
    let verb = if enabled { "ENABLE" } else { "DISABLE" };
    for t in TRIGGERS {
        sqlx::query(&format!("ALTER TABLE contacts {verb} TRIGGER {t}"))
            .execute(db)
            .await
            .expect("toggle trigger");
    }
}

pub async fn measure(db: &PgPool, url: &str, ws: &str, run_for: Duration) -> Value {
    let writers = PgPoolOptions::new()
        .max_connections(WRITERS as u32)
        .connect(url)
        .await
        .expect("writer pool");
    let ids = crate::database::ids(
        db,
        "SELECT id FROM contacts WHERE workspace_id = $1 ORDER BY random() LIMIT 20000",
        ws,
    )
    .await;
    let ids = Arc::new(ids);
    let mut out =
        json!({"workspace": ws, "connections": WRITERS, "secondsEach": run_for.as_secs_f64()});
    for (name, sql) in [("touch", TOUCH), ("countedChange", COUNTED)] {
        let with = writes_per_sec(&writers, ws, &ids, sql, run_for).await;
        set_triggers(db, false).await;
        let without = writes_per_sec(&writers, ws, &ids, sql, run_for).await;
        set_triggers(db, true).await;
        out[name] = json!({
            "withCountersPerSec": with,
            "withoutCountersPerSec": without,
            "ratio": with / without.max(1.0),
        });
    }
    writers.close().await;
    let store = PgStore::new(db.clone(), None, e2e::origins::cursor_key());
    let wsid = WorkspaceId::parse(ws).expect("workspace");
    store
        .check_counters(Some(&wsid), true)
        .await
        .expect("repair after the runs without triggers");
    out
}

/// Buckets whose counters differ from a recount, over `workspaces`.
pub async fn drift(db: &PgPool, workspaces: &[String]) -> usize {
    let store = PgStore::new(db.clone(), None, e2e::origins::cursor_key());
    let mut drifted = 0;
    for w in workspaces {
        let ws = WorkspaceId::parse(w).expect("workspace");
        drifted += store
            .check_counters(Some(&ws), false)
            .await
            .expect("check")
            .len();
    }
    drifted
}
