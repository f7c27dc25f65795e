use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use sqlx::PgPool;

use crate::helpers::*;

async fn some_open_contact(db: &PgPool) -> (i64, i64) {
    sqlx::query_as(
        "SELECT id, board_id FROM contacts WHERE workspace_id = $1 AND status = 'open' AND NOT archived ORDER BY id LIMIT 1",
    )
    .bind(WS)
    .fetch_one(db)
    .await
    .expect("an open contact")
}

#[sqlx::test(migrations = "../migrations")]
async fn a_write_through_the_api_is_visible_on_the_next_read(db: PgPool) {
    let app = TestApp::spawn(db.clone()).await;
    let token = member();
    let before = app.counts(&token).await;
    let (id, board) = some_open_contact(&db).await;
    let page_path = format!("/api/boards/{board}/contacts?filter=closed&per_page=100");
    data(app.get(&page_path, &token).await).await;

    let patched = app
        .patch_contact(id, &token, json!({"status": "closed"}))
        .await;
    assert_eq!(patched["status"], "closed");

    let after = app.counts(&token).await;
    assert_eq!(after["_source"], "database");
    assert_eq!(after["open"], before["open"].as_i64().expect("open") - 1);
    assert_eq!(
        after["closed"],
        before["closed"].as_i64().expect("closed") + 1
    );
    let page = data(app.get(&page_path, &token).await).await;
    assert_eq!(page["_cache"]["status"], "MISS");
}

#[sqlx::test(migrations = "../migrations")]
async fn a_move_between_columns_and_a_delete_invalidate_the_board(db: PgPool) {
    let app = TestApp::spawn(db.clone()).await;
    let token = member();
    let (id, board) = some_open_contact(&db).await;
    let column: i64 = sqlx::query_scalar("SELECT max(id) FROM board_columns WHERE board_id = $1")
        .bind(board)
        .fetch_one(&db)
        .await
        .expect("column");
    let path = format!("/api/boards/{board}/contacts?column_id={column}&per_page=100");
    let before = data(app.get(&path, &token).await).await["pagination"]["total"]
        .as_i64()
        .expect("total");

    let moved = app
        .post(
            &format!("/api/workspaces/{WS}/contacts/{id}/move"),
            &token,
            json!({"column_id": column}),
        )
        .await;
    assert_eq!(data(moved).await["column_id"], column);
    let after = data(app.get(&path, &token).await).await;
    assert_eq!(after["pagination"]["total"], before + 1);

    let deleted = app
        .http
        .delete(app.url(&format!("/api/workspaces/{WS}/contacts/{id}")))
        .bearer_auth(&token)
        .send()
        .await
        .expect("delete");
    data(deleted).await;
    let after_delete = data(app.get(&path, &token).await).await;
    assert_eq!(after_delete["pagination"]["total"], before);
}

#[sqlx::test(migrations = "../migrations")]
async fn a_write_on_one_instance_reaches_another_within_a_second(db: PgPool) {
    let a = TestApp::spawn(db.clone()).await;
    let b = a.sibling().await;
    let token = member();
    a.counts(&token).await;
    let cached = b.counts(&token).await;
    assert_eq!(b.counts(&token).await["_source"], "memory");

    let (id, _) = some_open_contact(&db).await;
    a.patch_contact(id, &token, json!({"archived": true})).await;

    let expected = cached["total"].as_i64().expect("total") - 1;
    eventually(Duration::from_secs(1), || async {
        (b.counts(&token).await["total"] == expected).then_some(())
    })
    .await;
}

/// A write answers only once every subscribed instance has dropped the generations it
/// bumped, so the very next read on any instance is fresh: no waiting, no window.
#[sqlx::test(migrations = "../migrations")]
async fn a_write_acknowledged_on_one_instance_is_fresh_at_once_on_another(db: PgPool) {
    let a = TestApp::spawn(db.clone()).await;
    let b = a.sibling().await;
    let change = shared::invalidation::Changed::Boards(vec![]);
    let bump = eventually(Duration::from_secs(5), || async {
        let bump = origin::invalidation::changed(&a.state, &ws(WS), &change).await;
        (bump.notified == 2).then_some(bump)
    })
    .await;
    assert_eq!(bump.acknowledged, 2, "{bump:?}");

    let token = member();
    for _ in 0..5 {
        b.counts(&token).await;
        let cached = b.counts(&token).await;
        assert_eq!(cached["_source"], "memory");
        let (id, _) = some_open_contact(&db).await;
        a.patch_contact(id, &token, json!({"archived": true})).await;
        let after = b.counts(&token).await;
        assert_eq!(after["total"], cached["total"].as_i64().expect("total") - 1);
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn a_direct_sql_update_invalidates_within_a_second(db: PgPool) {
    let app = TestApp::spawn(db.clone()).await;
    let token = member();
    let before = app.counts(&token).await;
    assert_eq!(app.counts(&token).await["_source"], "memory");
    let (id, _) = some_open_contact(&db).await;
    sqlx::query("UPDATE contacts SET favorite = NOT favorite WHERE id = $1")
        .bind(id)
        .execute(&db)
        .await
        .expect("direct update");
    let was_favorite: bool = sqlx::query_scalar("SELECT favorite FROM contacts WHERE id = $1")
        .bind(id)
        .fetch_one(&db)
        .await
        .expect("favorite");
    let delta = if was_favorite { 1 } else { -1 };
    let expected = before["favorites"].as_i64().expect("favorites") + delta;
    eventually(Duration::from_secs(1), || async {
        (app.counts(&token).await["favorites"] == expected).then_some(())
    })
    .await;
}

/// Every origin down (here: the only one, its pool and listener closed) while another
/// application writes: nobody hears the notice, and Redis keeps the count from before.
/// An origin that starts next catches up on the store's count of outside changes before
/// it serves, and a listener that reconnects does the same.
#[sqlx::test(migrations = "../migrations")]
async fn a_write_made_while_no_origin_listened_is_caught_up_on(db: PgPool) {
    let seeded = seed_workspaces(&db).await;
    let own = sqlx::postgres::PgPoolOptions::new()
        .connect_with(db.connect_options().as_ref().clone())
        .await
        .expect("a pool of the first origin's own");
    let first = TestApp::spawn_on(
        db.clone(),
        pg(&own),
        test_config(&unique_namespace()),
        seeded.boards,
    )
    .await;
    let token = member();
    let before = first.counts(&token).await["favorites"]
        .as_i64()
        .expect("favorites");
    own.close().await;

    let unfavored = |n: i64| {
        sqlx::query_scalar::<_, i64>(
            "UPDATE contacts SET favorite = true WHERE id IN (SELECT id FROM contacts \
             WHERE workspace_id = $1 AND NOT favorite AND NOT archived ORDER BY id LIMIT $2) RETURNING id",
        )
        .bind(WS)
        .bind(n)
        .fetch_all(&db)
    };
    unfavored(2).await.expect("a write while no origin listens");
    let next = first.sibling().await;
    assert_eq!(
        next.counts(&token).await["favorites"],
        before + 2,
        "read at once after the start"
    );

    sqlx::query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND query ILIKE 'LISTEN%'",
    )
    .execute(&db)
    .await
    .expect("the listener cut");
    unfavored(1)
        .await
        .expect("a write while the listener reconnects");
    eventually(Duration::from_secs(3), || async {
        (next.counts(&token).await["favorites"] == before + 3).then_some(())
    })
    .await;
}

/// An instance that dies between a write's COMMIT and its invalidation leaves the write in
/// Postgres and nobody told: its note of the write in flight outlives it, and once it
/// drops out of the registry another instance moves the workspace on.
#[sqlx::test(migrations = "../migrations")]
async fn a_write_whose_instance_died_before_its_bump_is_caught_up_on(db: PgPool) {
    let app = TestApp::spawn(db.clone()).await;
    let token = member();
    let before = app.counts(&token).await["favorites"]
        .as_i64()
        .expect("favorites");
    assert_eq!(app.counts(&token).await["_source"], "memory");

    let redis = app.state.cache.redis().expect("redis").clone();
    let keys = app.state.cache.keys();
    let ghost = "ghost";
    redis
        .register(&keys.instances(), ghost, Duration::from_millis(100))
        .await
        .expect("listed");
    redis
        .count(&keys.intents(ghost), WS, 1)
        .await
        .expect("noted");
    let mut tx = db.begin().await.expect("tx");
    sqlx::query("SELECT set_config('edgecache.skip_notify', 'on', true)")
        .execute(&mut *tx)
        .await
        .expect("quiet, as the API's writes are");
    sqlx::query(
        "UPDATE contacts SET favorite = true WHERE id = (SELECT id FROM contacts \
         WHERE workspace_id = $1 AND NOT favorite AND NOT archived ORDER BY id LIMIT 1)",
    )
    .bind(WS)
    .execute(&mut *tx)
    .await
    .expect("the write the instance committed");
    tx.commit().await.expect("commit");

    eventually(Duration::from_secs(5), || async {
        (app.counts(&token).await["favorites"] == before + 1).then_some(())
    })
    .await;
}

#[sqlx::test(migrations = "../migrations")]
async fn invalidating_a_workspace_reports_the_bump_and_leaves_others_cached(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let other = token_for("user_3", &[OTHER_WS], false, 3600);
    let other_path = format!("/api/cache-settings/workspace/{OTHER_WS}/counts");
    let get_other = || async {
        let r = app
            .http
            .get(app.url(&other_path))
            .bearer_auth(&other)
            .send()
            .await
            .expect("request");
        data(r).await
    };
    app.counts(&member()).await;
    get_other().await;

    let report = data(
        app.post(
            "/api/cache-settings/invalidate",
            &admin(),
            json!({"workspaceId": WS}),
        )
        .await,
    )
    .await;
    assert_eq!(
        report["patterns"],
        json!([
            format!("counts:{WS}:*"),
            format!("contacts:{WS}:*"),
            format!("search:{WS}:*"),
            format!("messages:{WS}:*")
        ])
    );
    assert_eq!(report["sharedWithAllInstances"], true);
    assert!(report["instancesNotified"].as_u64().expect("notified") >= 1);

    assert_eq!(app.counts(&member()).await["_source"], "database");
    assert_eq!(get_other().await["_source"], "memory");
}

#[sqlx::test(migrations = "../migrations")]
async fn settings_persist_and_a_bad_ttl_changes_nothing(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let path = format!("/api/cache-settings/workspace/{WS}/settings");
    let saved = app
        .post(&path, &admin(), json!({"cacheEnabled": true, "features": {"search": true}, "cacheConfig": {"contactsTTL": 90}}))
        .await;
    let saved = data(saved).await;
    assert_eq!(saved["settings"]["cache"]["config"]["contactsTTL"], 90);
    assert_eq!(saved["workspace_id"], WS);

    let refused = app
        .post(
            &path,
            &admin(),
            json!({"cacheEnabled": false, "cacheConfig": {"searchTTL": 0}}),
        )
        .await;
    assert_eq!(
        error_code(refused, reqwest::StatusCode::BAD_REQUEST).await,
        "invalid_ttl"
    );

    let restarted = app.sibling().await;
    let read = data(restarted.get(&path, &admin()).await).await;
    assert_eq!(read["cacheConfig"]["contactsTTL"], 90);
    assert_eq!(read["features"]["search"], true);
    assert_eq!(read["cacheEnabled"], true);
}

#[sqlx::test(migrations = "../migrations")]
async fn warming_fills_counts_and_the_first_page_of_every_board(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let warmed = data(
        app.post(
            "/api/cache-settings/warm-cache",
            &admin(),
            json!({"workspaceId": WS, "userId": "user_3"}),
        )
        .await,
    )
    .await;
    assert_eq!(warmed["entriesWarmed"], 1 + app.boards.len());
    assert_eq!(warmed["boards"], json!(app.boards));
    assert_eq!(app.counts(&member()).await["_source"], "memory");
    let board = app.boards[1];
    let page = data(
        app.get(&format!("/api/boards/{board}/contacts"), &member())
            .await,
    )
    .await;
    assert_eq!(page["_source"], "memory");
}

#[sqlx::test(migrations = "../migrations")]
async fn the_performance_test_measures_each_layer(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let perf = data(
        app.post(
            "/api/cache-settings/test-performance",
            &admin(),
            json!({"workspaceId": WS, "userId": "user_3"}),
        )
        .await,
    )
    .await;
    let p = &perf["performance"];
    assert_eq!(
        [
            &p["standard"]["type"],
            &p["redisCold"]["type"],
            &p["redisWarm"]["type"],
            &p["memory"]["type"]
        ],
        [
            &json!("database"),
            &json!("redis_miss"),
            &json!("redis_hit"),
            &json!("memory_hit")
        ]
    );
    assert_eq!(
        [&p["redisCold"]["source"], &p["redisWarm"]["source"]],
        [&json!("database"), &json!("redis_cache")]
    );
    for layer in ["standard", "redisCold", "redisWarm", "memory"] {
        assert!(p[layer]["timeMs"].as_f64().expect("time") > 0.0, "{layer}");
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn a_member_may_invalidate_one_board_and_its_counts_but_not_the_others(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let token = member();
    let (b0, b1) = (app.boards[0], app.boards[1]);
    for board in [b0, b1] {
        data(
            app.get(&format!("/api/boards/{board}/contacts"), &token)
                .await,
        )
        .await;
    }
    app.counts(&token).await;
    let report = data(
        app.post(
            "/api/cache-settings/invalidate",
            &token,
            json!({"workspaceId": WS, "boardId": b0}),
        )
        .await,
    )
    .await;
    assert_eq!(
        report["patterns"],
        json!([
            format!("contacts:{WS}:board_{b0}:*"),
            format!("counts:{WS}:*")
        ])
    );
    let read = |board: i64| {
        let path = format!("/api/boards/{board}/contacts");
        let app = &app;
        let token = token.clone();
        async move { data(app.get(&path, &token).await).await["_source"].clone() }
    };
    assert_eq!(read(b0).await, "database");
    assert_eq!(read(b1).await, "memory");
    assert_eq!(app.counts(&token).await["_source"], "database");
}

#[sqlx::test(migrations = "../migrations")]
async fn three_instances_stay_coherent_after_writes_and_invalidations(db: PgPool) {
    let a = TestApp::spawn(db.clone()).await;
    let (b, c) = (a.sibling().await, a.sibling().await);
    let token = member();
    for app in [&a, &b, &c] {
        app.counts(&token).await;
        assert_eq!(app.counts(&token).await["_source"], "memory");
    }
    let (id, _) = some_open_contact(&db).await;
    b.patch_contact(id, &token, json!({"status": "closed"}))
        .await;
    let open = sql_count(&db, "NOT archived AND status = 'open'").await;
    for app in [&a, &b, &c] {
        eventually(Duration::from_secs(1), || async {
            (app.counts(&token).await["open"] == open).then_some(())
        })
        .await;
    }

    sqlx::query("UPDATE contacts SET status = 'open' WHERE id = $1")
        .bind(id)
        .execute(&db)
        .await
        .expect("direct write");
    data(
        c.post(
            "/api/cache-settings/invalidate",
            &admin(),
            json!({"workspaceId": WS}),
        )
        .await,
    )
    .await;
    for app in [&a, &b, &c] {
        eventually(Duration::from_secs(1), || async {
            (app.counts(&token).await["open"] == open + 1).then_some(())
        })
        .await;
    }
}

/// A board invalidation names a board of the workspace; a workspace-wide one needs an
/// admin, which the edge's key is not; and invalidations are charged to a budget.
#[sqlx::test(migrations = "../migrations")]
async fn invalidations_are_bounded_by_board_role_and_budget(db: PgPool) {
    let seeded = seed_workspaces(&db).await;
    let mut config = test_config(&unique_namespace());
    config.writes_per_user_per_min = 5;
    let app = TestApp::spawn_with(db.clone(), config, seeded.boards).await;
    let foreign: i64 = sqlx::query_scalar("SELECT id FROM boards WHERE workspace_id = $1 LIMIT 1")
        .bind(OTHER_WS)
        .fetch_one(&db)
        .await
        .expect("a board of the other workspace");
    for board in [foreign, 999_999_999] {
        let r = app
            .post(
                "/api/cache-settings/invalidate",
                &member(),
                json!({"workspaceId": WS, "boardId": board}),
            )
            .await;
        assert_eq!(error_code(r, StatusCode::NOT_FOUND).await, "not_found");
    }

    let with_key = |body: serde_json::Value| {
        app.http
            .post(app.url("/api/cache-settings/invalidate"))
            .header("X-Internal-Key", INTERNAL_KEY)
            .header("X-Workspace-ID", WS)
            .json(&body)
            .send()
    };
    let everything = with_key(json!({"workspaceId": WS})).await.expect("request");
    assert_eq!(
        error_code(everything, StatusCode::FORBIDDEN).await,
        "forbidden"
    );
    let one_board = with_key(json!({"workspaceId": WS, "boardId": app.boards[0]}))
        .await
        .expect("request");
    assert_eq!(one_board.status(), StatusCode::OK);

    let mut accepted = 0;
    let refused = loop {
        let r = app
            .post(
                "/api/cache-settings/invalidate",
                &member(),
                json!({"workspaceId": WS, "boardId": app.boards[0]}),
            )
            .await;
        if r.status() != StatusCode::OK {
            break r;
        }
        accepted += 1;
        assert!(accepted <= 5, "more invalidations than the budget allows");
    };
    assert_eq!(accepted, 5);
    assert_eq!(
        error_code(refused, StatusCode::TOO_MANY_REQUESTS).await,
        "rate_limited"
    );
}

/// Changes made while the edge cannot be reached wait in the outbox and all arrive once it
/// answers; each is deleted from the outbox only then. A recording server stands in for
/// the worker here (the worker itself takes them in `tests/edge`).
#[sqlx::test(migrations = "../migrations")]
async fn changes_wait_in_the_outbox_until_the_edge_takes_them(db: PgPool) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let seeded = seed_workspaces(&db).await;
    let namespace = unique_namespace();
    let mut config = test_config(&namespace);
    config.edge_url = Some(format!("http://127.0.0.1:{port}"));
    config.edge_push_key = Some(origin::config::Secret(PUSH_KEY.into()));
    let outbox = config.key_space.edge_outbox();
    let app = TestApp::spawn_with(db.clone(), config, seeded.boards).await;
    let ids: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT id, board_id FROM contacts WHERE workspace_id = $1 AND NOT favorite \
         AND board_id = (SELECT min(board_id) FROM contacts WHERE workspace_id = $1) \
         ORDER BY id LIMIT 12",
    )
    .bind(WS)
    .fetch_all(&db)
    .await
    .expect("contacts");
    for (id, _) in &ids {
        app.patch_contact(*id, &member(), json!({"favorite": true}))
            .await;
    }
    let status = || async { data(app.get("/api/cache-settings/status", &admin()).await).await };
    // While the edge is away the outbox folds what it holds (twelve edits of one board:
    // one change of the board): bounded by folding, nothing dropped.
    let waiting = eventually(Duration::from_secs(10), || async {
        let push = status().await["edgePush"].clone();
        let depth = push["outboxDepth"].as_u64().unwrap_or(0);
        (push["edgeReachable"] == false && depth > 0 && depth < 3).then_some(push)
    })
    .await;
    assert_eq!(waiting["lastLagMs"], serde_json::Value::Null, "{waiting}");

    let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::<serde_json::Value>::new()));
    let record = received.clone();
    let edge = axum::Router::new().route(
        "/internal/changes",
        axum::routing::post(
            move |headers: axum::http::HeaderMap, body: String| async move {
                if headers.get("x-internal-key").map(|v| v.as_bytes()) != Some(PUSH_KEY.as_bytes())
                {
                    return axum::http::StatusCode::UNAUTHORIZED;
                }
                let push = serde_json::from_str(&body).expect("a push is JSON");
                record.lock().expect("record").push(push);
                axum::http::StatusCode::OK
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("the edge's port");
    tokio::spawn(async move { axum::serve(listener, edge).await });

    eventually(Duration::from_secs(10), || async {
        let got = received.lock().expect("record").clone();
        ids.iter()
            .all(|(_, board)| {
                got.iter().any(|p| {
                    p["workspaceId"] == WS
                        && p["boards"]
                            .as_array()
                            .is_some_and(|b| b.contains(&json!(board)))
                })
            })
            .then_some(())
    })
    .await;
    let mut redis = redis::Client::open(redis_url())
        .expect("redis")
        .get_multiplexed_async_connection()
        .await
        .expect("connection");
    eventually(Duration::from_secs(5), || {
        let mut redis = redis.clone();
        let outbox = outbox.clone();
        async move {
            let left: u64 = redis::cmd("XLEN")
                .arg(&outbox)
                .query_async(&mut redis)
                .await
                .expect("xlen");
            (left == 0).then_some(())
        }
    })
    .await;
    let delivered = eventually(Duration::from_secs(5), || async {
        let push = status().await["edgePush"].clone();
        (push["edgeReachable"] == true && push["lastLagMs"].is_u64()).then_some(push)
    })
    .await;
    assert!(
        delivered["lastLagMs"].as_u64() >= Some(1),
        "the changes waited for the edge: {delivered}"
    );
    let _ = redis::cmd("DEL")
        .arg(&outbox)
        .query_async::<()>(&mut redis)
        .await;
}
