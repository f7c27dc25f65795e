//! Fills from a real streaming replica (`scripts/replica`, `DATABASE_REPLICA_URL`): never
//! older than an acknowledged write, however far the replica lags.

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use origin::store::postgres::PgStore;
use serde_json::json;
use sqlx::PgPool;

use crate::helpers::*;

/// The replica server's URL without a database (local default: `scripts/replica`).
fn replica_server() -> String {
    std::env::var("DATABASE_REPLICA_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5433".into())
}

/// The primary's WAL position, as the replica reports its replay.
async fn primary_position(db: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::int8")
        .fetch_one(db)
        .await
        .expect("primary position")
}

async fn replayed(replica: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT pg_wal_lsn_diff(pg_last_wal_replay_lsn(), '0/0')::int8")
        .fetch_one(replica)
        .await
        .expect("replica position")
}

/// Fills this process's origins sent to the primary because the replica was behind.
async fn sent_to_primary(app: &TestApp) -> u64 {
    let text = app.metrics().await;
    text.lines()
        .find_map(|l| l.strip_prefix("edgecache_replica_behind_total "))
        .map_or(0, |n| n.trim().parse().expect("a count"))
}

/// Waits (up to 30 s) until the replica has replayed the primary's WAL up to `position`
/// (the test's database may not have reached it yet: errors are waited out too).
async fn replay_reaches(replica: &PgPool, position: i64) {
    eventually(Duration::from_secs(30), || async {
        let caught_up = sqlx::query_scalar::<_, i64>(
            "SELECT pg_wal_lsn_diff(pg_last_wal_replay_lsn(), '0/0')::int8",
        )
        .fetch_one(replica)
        .await
        .is_ok_and(|at| at >= position);
        caught_up.then_some(())
    })
    .await;
}

/// Whether a replica in step takes `app`'s fills, each of them answering `total`. The count
/// of fills sent to the primary is the process's, which other tests' origins add to as
/// they run beside this one: a fill of a key never read before that leaves it unmoved, in
/// one of a few tries, is the proof.
async fn fills_take_the_replica(app: &TestApp, db: &PgPool, replica: &PgPool, total: i64) {
    let tries = AtomicU32::new(0);
    eventually(Duration::from_secs(10), || async {
        let n = tries.fetch_add(1, Ordering::Relaxed);
        replay_reaches(replica, primary_position(db).await).await;
        let behind = sent_to_primary(app).await;
        let user = token_for(&format!("fill_{total}_{n}"), &[WS], false, 3600);
        assert_eq!(app.counts(&user).await["total"], total);
        (sent_to_primary(app).await == behind).then_some(())
    })
    .await;
}

/// Resumes replay on the replica however the test ends, so the next run finds it moving.
struct Paused;

impl Paused {
    async fn pause(replica: &PgPool) -> Self {
        sqlx::query("SELECT pg_wal_replay_pause()")
            .execute(replica)
            .await
            .expect("pause");
        eventually(Duration::from_secs(10), || async {
            let state: String = sqlx::query_scalar("SELECT pg_get_wal_replay_pause_state()")
                .fetch_one(replica)
                .await
                .expect("pause state");
            (state == "paused").then_some(())
        })
        .await;
        Paused
    }
}

impl Drop for Paused {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .args([&replica_server(), "-Atqc", "SELECT pg_wal_replay_resume()"])
            .status();
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn a_fill_reads_the_replica_only_once_it_has_replayed_the_last_change_heard_of(db: PgPool) {
    let seeded = seed_workspaces(&db).await;
    let name: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(&db)
        .await
        .expect("database name");
    let replica = PgPool::connect_lazy(&format!("{}/{name}", replica_server())).expect("url");
    let _ = sqlx::query("SELECT pg_wal_replay_resume()")
        .execute(&replica)
        .await;
    replay_reaches(&replica, primary_position(&db).await).await;

    let store = |db: &PgPool| {
        Arc::new(PgStore::new(
            db.clone(),
            Some(replica.clone()),
            cursor_key(),
        ))
    };
    let config = test_config(&unique_namespace());
    let a = TestApp::spawn_on(
        db.clone(),
        store(&db),
        config.clone(),
        seeded.boards.clone(),
    )
    .await;
    // What the instance wrote as it started (its announcements) replayed too: the
    // replica is in step with every change the instance has heard of.
    replay_reaches(&replica, primary_position(&db).await).await;
    let token = member();
    let before = a.counts(&token).await["total"].as_i64().expect("total");
    fills_take_the_replica(&a, &db, &replica, before).await;

    let paused = Paused::pause(&replica).await;
    let created = a
        .post(
            &format!("/api/workspaces/{WS}/contacts"),
            &token,
            json!({"board_id": a.boards[0], "column_id": 1, "name": "Written while the replica is paused"}),
        )
        .await;
    assert_eq!(created.status(), 201);
    let on_replica: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM contacts WHERE workspace_id = $1 AND NOT archived",
    )
    .bind(WS)
    .fetch_one(&replica)
    .await
    .expect("replica count");
    assert_eq!(on_replica, before, "the replica is behind the write");

    assert_eq!(a.counts(&token).await["total"], before + 1, "the writer");
    let mut later = test_config(&unique_namespace());
    later.key_space = config.key_space.clone();
    let b = TestApp::spawn_on(db.clone(), store(&db), later, seeded.boards.clone()).await;
    let d = b.counts(&token).await;
    assert_eq!(d["_source"], "redis_cache", "B read what A cached");
    let other = token_for("another_member", &[WS], false, 3600);
    let behind = sent_to_primary(&b).await;
    let fresh = b.counts(&other).await;
    assert_eq!(
        (fresh["_source"].as_str(), fresh["total"].as_i64()),
        (Some("database"), Some(before + 1)),
        "an origin started after the write fills from the primary, not the paused replica"
    );
    assert!(sent_to_primary(&b).await > behind);

    drop(paused);
    let written = primary_position(&db).await;
    eventually(Duration::from_secs(30), || async {
        (replayed(&replica).await >= written).then_some(())
    })
    .await;
    // A replica that replayed the change takes fills again.
    fills_take_the_replica(&b, &db, &replica, before + 1).await;
}
