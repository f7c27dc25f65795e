//! Cursor pages through the HTTP API (caching per cursor, refusing foreign or altered
//! cursors) and the counters' check, repair and shard folds against Postgres.

use origin::store::Read;
use reqwest::StatusCode;
use shared::cursor::{Cursor, CursorKey};
use shared::query::{ContactListQuery, Filter};
use shared::{BoardId, UserId};
use sqlx::PgPool;

use crate::helpers::*;

#[sqlx::test(migrations = "../migrations")]
async fn a_cursor_page_equals_the_offset_page_and_is_cached_per_cursor(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let list = format!(
        "/api/boards/{}/contacts?sort_by=name&sort_order=asc&per_page=20",
        app.boards[0]
    );
    let first = data(app.get(&list, &member()).await).await;
    let cursor = first["pagination"]["next_cursor"]
        .as_str()
        .expect("a next cursor")
        .to_owned();
    let by_cursor = format!("{list}&cursor={cursor}");
    let next = data(app.get(&by_cursor, &member()).await).await;
    let again = data(app.get(&by_cursor, &member()).await).await;
    assert_eq!(
        (
            next["_cache"]["status"].as_str(),
            again["_cache"]["status"].as_str()
        ),
        (Some("MISS"), Some("HIT"))
    );
    let by_offset = data(app.get(&format!("{list}&page=2"), &member()).await).await;
    assert_eq!(page_ids(&next), page_ids(&by_offset));
    assert_eq!(next["pagination"]["page"], 2);
    assert_ne!(
        next["pagination"]["next_cursor"],
        first["pagination"]["next_cursor"]
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn altered_or_foreign_cursors_are_refused_with_400(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let list = format!("/api/boards/{}/contacts?per_page=10", app.boards[0]);
    let first = data(app.get(&list, &member()).await).await;
    let cursor = first["pagination"]["next_cursor"]
        .as_str()
        .expect("a next cursor")
        .to_owned();
    let mut altered = cursor.clone().into_bytes();
    altered[5] = if altered[5] == b'A' { b'B' } else { b'A' };
    let altered = String::from_utf8(altered).expect("ascii");
    for path in [
        format!("{list}&cursor={altered}"),
        format!("{list}&cursor={cursor}&sort_order=asc"),
        format!("{list}&cursor={cursor}&filter=open"),
        format!("{list}&cursor=not-a-cursor"),
    ] {
        let code = error_code(app.get(&path, &member()).await, StatusCode::BAD_REQUEST).await;
        assert_eq!(code, "invalid_cursor", "{path}");
    }
    // A position of the client's own choosing, well formed and bound to this very list, is
    // refused unless the servers' key signed it; and even one they signed is refused for a
    // list sorted by time unless its value is a real timestamp, before it reaches SQL.
    let (ws, board) = (ws(WS), BoardId(app.boards[0]));
    let user = UserId::parse("user_3").expect("valid");
    let sorted =
        ContactListQuery::from_pairs([("per_page", "10")], &ws, board, &user, &cursor_key())
            .expect("valid");
    let forger = CursorKey::from_token_secret(b"anyone's secret, but not the servers'");
    let position = |value: &str| Cursor {
        page: 2,
        value: value.into(),
        id: 1,
    };
    for (key, value) in [
        (&forger, "2026-01-01T00:00:00Z"),
        (&cursor_key(), "not a time"),
        (&cursor_key(), "2026-02-30T00:00:00Z"),
        (&cursor_key(), "2026-01-01T24:00:00Z"),
    ] {
        let made = position(value).encode(key, &sorted.binding(&ws, board));
        let path = format!("{list}&cursor={made}");
        let code = error_code(app.get(&path, &member()).await, StatusCode::BAD_REQUEST).await;
        assert_eq!(code, "invalid_cursor", "{value}");
    }
    let genuine =
        position("2026-01-01T00:00:00Z").encode(&cursor_key(), &sorted.binding(&ws, board));
    let taken = app
        .get(&format!("{list}&cursor={genuine}"), &member())
        .await;
    assert_eq!(
        taken.status(),
        StatusCode::OK,
        "the control: the servers' own signature"
    );
    let both = token_for("user_3", &[WS, OTHER_WS], false, 3600);
    let elsewhere = app
        .http
        .get(app.url(&format!("{list}&cursor={cursor}")))
        .bearer_auth(both)
        .header("X-Workspace-ID", OTHER_WS)
        .send()
        .await
        .expect("request");
    assert_eq!(
        error_code(elsewhere, StatusCode::BAD_REQUEST).await,
        "invalid_cursor"
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn counters_check_finds_drift_and_repair_restores_the_counts(db: PgPool) {
    let app = TestApp::spawn(db.clone()).await;
    let store = pg(&db);
    assert!(store
        .check_counters(None, false)
        .await
        .expect("check")
        .is_empty());
    let true_open = app.counts(&member()).await["open"].as_i64().expect("open");
    // Five more open contacts in one bucket, in a shard of its own: the app's shard folds
    // move the value, never the drift.
    let corrupted = sqlx::query(
        "INSERT INTO contact_counters AS c \
         SELECT workspace_id, board_id, column_id, assignee, 3, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0 \
         FROM contact_counters WHERE workspace_id = $1 LIMIT 1 \
         ON CONFLICT (workspace_id, board_id, column_id, assignee, shard) \
         DO UPDATE SET open = c.open + 5",
    )
    .bind(WS)
    .execute(&db)
    .await
    .expect("corrupt a counter");
    assert_eq!(corrupted.rows_affected(), 1);

    let other = ws(OTHER_WS);
    assert!(store
        .check_counters(Some(&other), false)
        .await
        .expect("check")
        .is_empty());
    let drift = store
        .check_counters(Some(&ws(WS)), true)
        .await
        .expect("repair");
    assert_eq!(drift.len(), 1, "{drift:?}");
    let [(name, stored, actual)] = drift[0].counters[..] else {
        panic!("one counter drifted: {drift:?}");
    };
    assert_eq!((name, stored), ("open", actual + 5));
    assert!(store
        .check_counters(None, false)
        .await
        .expect("check")
        .is_empty());
    let path = format!("/api/cache-settings/workspace/{WS}/counts?useCache=false");
    let counts = data(app.get(&path, &member()).await).await;
    assert_eq!(counts["open"], true_open);
}

#[sqlx::test(migrations = "../migrations")]
async fn clock_counts_are_exact_at_the_edges_of_their_windows(db: PgPool) {
    let app = TestApp::spawn(db.clone()).await;
    let board = app.boards[0];
    // Each minute around both windows' starts, so the first hour's partial count matters,
    // and contacts older than the hours the clock counters keep.
    for (created, active, minutes) in [
        ("7 days", "24 hours", -90..=90),
        ("9 days", "9 days", 0..=10),
    ] {
        sqlx::query(
            "INSERT INTO contacts (workspace_id, board_id, column_id, name, created_at, \
             last_activity_at, archived) \
             SELECT $1, $2, (SELECT min(id) FROM board_columns WHERE board_id = $2), 'edge', \
                    now() - $3::interval + m * interval '1 minute', \
                    now() - $4::interval + m * interval '1 minute', m % 5 = 0 \
             FROM generate_series($5::int, $6::int) m",
        )
        .bind(WS)
        .bind(board)
        .bind(created)
        .bind(active)
        .bind(minutes.start())
        .bind(minutes.end())
        .execute(&db)
        .await
        .expect("insert edge contacts");
    }
    for write in [
        "UPDATE contacts SET last_activity_at = now() WHERE name = 'edge' AND id % 3 = 0",
        "UPDATE contacts SET last_activity_at = last_activity_at - interval '40 minutes' \
         WHERE name = 'edge' AND id % 3 = 1",
        "UPDATE contacts SET archived = NOT archived WHERE name = 'edge' AND id % 4 = 0",
        "DELETE FROM contacts WHERE name = 'edge' AND id % 7 = 0",
    ] {
        sqlx::query(write).execute(&db).await.expect(write);
    }

    let (new, recent, board_recent): (i64, i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE NOT archived AND created_at > now() - interval '7 days'), \
                count(*) FILTER (WHERE NOT archived AND last_activity_at > now() - interval '24 hours'), \
                count(*) FILTER (WHERE NOT archived AND last_activity_at > now() - interval '24 hours' \
                                 AND board_id = $2) \
         FROM contacts WHERE workspace_id = $1",
    )
    .bind(WS)
    .bind(board)
    .fetch_one(&db)
    .await
    .expect("recount");
    let path = format!("/api/cache-settings/workspace/{WS}/counts?useCache=false");
    let counts = data(app.get(&path, &member()).await).await;
    assert_eq!(
        (
            counts["newCustomers"].as_i64(),
            counts["recentActivity"].as_i64()
        ),
        (Some(new), Some(recent))
    );
    let page = data(
        app.get(
            &format!("/api/boards/{board}/contacts?filter=recent_activity&useCache=false"),
            &member(),
        )
        .await,
    )
    .await;
    assert_eq!(page["pagination"]["total"].as_i64(), Some(board_recent));
    assert!(pg(&db)
        .check_counters(None, false)
        .await
        .expect("check")
        .is_empty());
}

/// Rows in shards other than 0, per counter table.
async fn shard_rows(db: &PgPool) -> (i64, i64) {
    sqlx::query_as(
        "SELECT (SELECT count(*) FROM contact_counters WHERE shard <> 0), \
                (SELECT count(*) FROM contact_clock_counters WHERE shard <> 0)",
    )
    .fetch_one(db)
    .await
    .expect("shard rows")
}

#[sqlx::test(migrations = "../migrations")]
async fn folding_the_shards_leaves_one_row_per_bucket_and_every_count_as_it_was(db: PgPool) {
    let store = pg(&db);
    let seeded = store.seed(&ws(WS), 600, 3).await.expect("seed");
    let user = UserId::parse("user_3").expect("user");
    let board = BoardId(seeded.boards[0]);
    let open = ContactListQuery {
        filter: Filter::Open,
        ..ContactListQuery::default()
    };
    let read = |q: ContactListQuery| {
        let (store, user) = (store.clone(), user.clone());
        async move {
            let counts = store
                .counts(Read::Primary, &ws(WS), &user)
                .await
                .expect("counts");
            let page = store
                .page(Read::Primary, &ws(WS), board, &q, &user)
                .await
                .expect("page");
            (counts, page.pagination.total)
        }
    };
    let before = read(open.clone()).await;
    let (buckets, clock_rows) = sqlx::query_as::<_, (i64, i64)>(
        "SELECT (SELECT count(*) FROM contact_counters), (SELECT count(*) FROM contact_clock_counters)",
    )
    .fetch_one(&db)
    .await
    .expect("rows");
    let tables = [
        (
            "contact_counters",
            "workspace_id, board_id, column_id, assignee",
            11,
        ),
        (
            "contact_clock_counters",
            "workspace_id, clock, hour, board_id, column_id",
            1,
        ),
    ];
    // The seeding wrote all its rows from one connection, into that connection's shard.
    for (table, _, _) in tables {
        sqlx::query(&format!("UPDATE {table} SET shard = 0"))
            .execute(&db)
            .await
            .expect("one shard");
    }
    // As writers on other connections leave them: each bucket in two more shards, whose
    // values cancel out, so the sums (and the check) stay what they were.
    for (shard, delta) in [(2, 7), (3, -7)] {
        for (table, key, values) in tables {
            let values = vec!["$2"; values].join(", ");
            sqlx::query(&format!(
                "INSERT INTO {table} SELECT {key}, $1::smallint, {values} \
                 FROM {table} WHERE shard = 0"
            ))
            .bind(shard)
            .bind(delta)
            .execute(&db)
            .await
            .expect("split into shards");
        }
    }
    assert_eq!(shard_rows(&db).await, (2 * buckets, 2 * clock_rows));
    assert!(store
        .check_counters(None, false)
        .await
        .expect("check")
        .is_empty());

    let moved = store.fold_counters().await.expect("fold");
    assert_eq!(
        moved,
        u64::try_from(2 * (buckets + clock_rows)).expect("count")
    );
    assert_eq!(shard_rows(&db).await, (0, 0));
    assert_eq!(read(open).await, before);
    assert!(store
        .check_counters(None, false)
        .await
        .expect("check")
        .is_empty());
    assert_eq!(store.fold_counters().await.expect("fold again"), 0);
}

/// An offset page whose previous page the instance holds is read from that page's
/// cursor (`Cache::continuation`); walked through the API, each page equals the store's
/// own offset page, before and after a contact added at the top moves every row down one.
#[sqlx::test(migrations = "../migrations")]
async fn offset_pages_read_on_from_the_cached_page_before_them_equal_the_stores(db: PgPool) {
    use shared::query::{SortBy, SortOrder};
    let seeded = seed_workspaces(&db).await;
    let mut config = test_config(&unique_namespace());
    // The instance's own bumps keep its mirror current; nothing else may expire it mid-walk.
    config.generation_max_age = std::time::Duration::from_secs(600);
    let app = TestApp::spawn_with(db, config, seeded.boards).await;
    let board = BoardId(app.boards[0]);
    let (store, user) = (pg(&app.db), UserId::parse("user_3").expect("user"));
    for (sort_by, sort_order) in [
        (SortBy::CreatedAt, SortOrder::Desc),
        (SortBy::Name, SortOrder::Asc),
    ] {
        for round in ["before", "after"] {
            if round == "after" {
                let first = data(
                    app.get(&format!("/api/boards/{board}/contacts"), &member())
                        .await,
                )
                .await;
                let column = first["contacts"][0]["column_id"].clone();
                let created = app
                    .post(
                        &format!("/api/workspaces/{WS}/contacts"),
                        &member(),
                        serde_json::json!({"board_id": board.0, "column_id": column, "name": "Aaron Aardvark"}),
                    )
                    .await;
                assert!(created.status().is_success(), "{}", created.status());
            }
            for page in 1..=4 {
                let q = ContactListQuery {
                    page,
                    per_page: 25,
                    sort_by,
                    sort_order,
                    ..ContactListQuery::default()
                };
                let served = data(
                    app.get(
                        &format!(
                            "/api/boards/{board}/contacts?per_page=25&page={page}&sort_by={}&sort_order={}",
                            sort_by.as_str(),
                            sort_order.as_str()
                        ),
                        &member(),
                    )
                    .await,
                )
                .await;
                let expected = store
                    .page(Read::Primary, &ws(WS), board, &q, &user)
                    .await
                    .expect("offset page");
                let ids: Vec<i64> = expected.contacts.iter().map(|c| c.id).collect();
                let case = format!("{sort_by:?} {sort_order:?} page {page}, {round} the insert");
                assert_eq!(page_ids(&served), ids, "{case}");
                assert_eq!(
                    served["pagination"]["next_cursor"].as_str(),
                    expected.pagination.next_cursor.as_deref(),
                    "{case}"
                );
            }
        }
    }
    // Pages 2 to 4 of each walk, none of the pages 1.
    assert_eq!(app.state.cache.stats().snapshot().pages_read_on, 2 * 2 * 3);
}
