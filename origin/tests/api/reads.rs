use std::time::Duration;

use futures_util::future::join_all;
use serde_json::{json, Value};
use sqlx::PgPool;

use crate::helpers::*;

const COUNTS_FIELDS: [(&str, &str); 6] = [
    ("total", "NOT archived"),
    ("open", "NOT archived AND status = 'open'"),
    ("closed", "NOT archived AND status = 'closed'"),
    ("unassigned", "NOT archived AND assigned_to IS NULL"),
    ("assignedToMe", "NOT archived AND assigned_to = 'user_3'"),
    ("archived", "archived"),
];

#[sqlx::test(migrations = "../migrations")]
async fn counts_are_equal_in_every_layer_and_to_a_direct_sql_answer(db: PgPool) {
    let a = TestApp::spawn(db.clone()).await;
    let b = a.sibling().await;
    let token = member();

    let from_db = a.counts(&token).await;
    let from_memory = a.counts(&token).await;
    let from_redis = b.counts(&token).await;
    assert_eq!(
        [
            &from_db["_source"],
            &from_memory["_source"],
            &from_redis["_source"]
        ],
        [&json!("database"), &json!("memory"), &json!("redis_cache")]
    );
    assert_eq!(from_memory["_cache"]["status"], "HIT");
    for (field, predicate) in COUNTS_FIELDS {
        let expected = sql_count(&db, predicate).await;
        assert!(
            expected > 0 || field == "assignedToMe",
            "seed gave no {field}"
        );
        for answer in [&from_db, &from_memory, &from_redis] {
            assert_eq!(
                answer[field], expected,
                "{field} from {}",
                answer["_source"]
            );
        }
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn use_cache_false_reads_the_database_every_time(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let path = format!("/api/cache-settings/workspace/{WS}/counts?useCache=false");
    for _ in 0..2 {
        let d = data(app.get(&path, &member()).await).await;
        assert_eq!(
            (d["_source"].as_str(), d["_cached"].as_bool()),
            (Some("database"), Some(false))
        );
        assert_eq!(d["_cache"]["status"], "BYPASS");
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn a_list_page_matches_sql_for_filter_sort_and_page(db: PgPool) {
    let app = TestApp::spawn(db.clone()).await;
    let board = app.boards[0];
    let path = format!(
        "/api/boards/{board}/contacts?filter=open&sort_by=name&sort_order=asc&per_page=10&page=3"
    );
    let first = data(app.get(&path, &member()).await).await;
    let second = data(app.get(&path, &member()).await).await;
    assert_eq!(
        (
            first["_cache"]["status"].as_str(),
            second["_cache"]["status"].as_str()
        ),
        (Some("MISS"), Some("HIT"))
    );
    assert_eq!(first["contacts"], second["contacts"]);

    let expected: Vec<i64> = sqlx::query_scalar(
        "SELECT id FROM contacts WHERE workspace_id = $1 AND board_id = $2 AND NOT archived AND status = 'open' \
         ORDER BY name ASC, id ASC LIMIT 10 OFFSET 20",
    )
    .bind(WS)
    .bind(board)
    .fetch_all(&db)
    .await
    .expect("sql page");
    let got: Vec<i64> = first["contacts"]
        .as_array()
        .expect("contacts")
        .iter()
        .map(|c| c["id"].as_i64().expect("id"))
        .collect();
    assert_eq!(got, expected);
    let total: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM contacts WHERE workspace_id = $1 AND board_id = $2 AND NOT archived AND status = 'open'",
    )
    .bind(WS)
    .bind(board)
    .fetch_one(&db)
    .await
    .expect("sql total");
    let p = &first["pagination"];
    assert_eq!(
        [
            &p["page"],
            &p["per_page"],
            &p["total"],
            &p["total_pages"],
            &p["total_exact"],
            &p["has_more"]
        ],
        [
            &json!(3),
            &json!(10),
            &json!(total),
            &json!((total + 9) / 10),
            &json!(true),
            &json!(true)
        ]
    );
    assert!(p["next_cursor"].is_string(), "{p}");
}

#[sqlx::test(migrations = "../migrations")]
async fn filtered_totals_over_all_boards_equal_the_counts(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let counts = app.counts(&member()).await;
    for (filter, field) in [
        ("open", "open"),
        ("high_priority", "highPriority"),
        ("assigned_to_me", "assignedToMe"),
        ("archived", "archived"),
    ] {
        let mut total = 0;
        for board in &app.boards {
            let d = data(
                app.get(
                    &format!("/api/boards/{board}/contacts?filter={filter}"),
                    &member(),
                )
                .await,
            )
            .await;
            total += d["pagination"]["total"].as_i64().expect("total");
        }
        assert_eq!(counts[field], total, "{filter}");
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn search_finds_contacts_by_name_case_insensitively(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let board = app.boards[0];
    let d = data(
        app.get(
            &format!("/api/boards/{board}/contacts?search=GRACE%20hop"),
            &member(),
        )
        .await,
    )
    .await;
    let contacts = d["contacts"].as_array().expect("contacts");
    assert!(!contacts.is_empty());
    assert!(contacts.iter().all(|c| c["name"]
        .as_str()
        .is_some_and(|n| n.starts_with("Grace Hop"))));
}

#[sqlx::test(migrations = "../migrations")]
async fn an_entry_is_recomputed_once_its_ttl_has_passed(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let saved = app
        .post(
            &format!("/api/cache-settings/workspace/{WS}/settings"),
            &admin(),
            json!({"cacheConfig": {"contactCountsTTL": 1}}),
        )
        .await;
    data(saved).await;
    let first = app.counts(&member()).await;
    assert_eq!(
        app.counts(&member()).await["_timestamp"],
        first["_timestamp"],
        "served from cache while fresh"
    );
    let recomputed = eventually(Duration::from_secs(5), || async {
        let d = app.counts(&member()).await;
        (d["_timestamp"] != first["_timestamp"]).then_some(d)
    })
    .await;
    assert_eq!(recomputed["_source"], "database");
}

#[sqlx::test(migrations = "../migrations")]
async fn two_hundred_concurrent_misses_cause_one_database_query(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let token = member();
    let before = app.db_queries();
    let answers: Vec<Value> = join_all((0..200).map(|_| app.counts(&token))).await;
    assert_eq!(app.db_queries() - before, 1);
    assert!(answers.iter().all(|a| a["total"] == answers[0]["total"]));
}

#[sqlx::test(migrations = "../migrations")]
async fn concurrent_misses_on_two_instances_cause_one_database_query(db: PgPool) {
    let a = TestApp::spawn(db).await;
    let b = a.sibling().await;
    let token = member();
    let (before_a, before_b) = (a.db_queries(), b.db_queries());
    let reads = (0..40).map(|i| {
        if i % 2 == 0 {
            a.counts(&token)
        } else {
            b.counts(&token)
        }
    });
    join_all(reads).await;
    assert_eq!(a.db_queries() - before_a + b.db_queries() - before_b, 1);
}

/// Another application writing a blank assignee is refused, so the unassigned count and
/// the unassigned list agree whoever writes.
#[sqlx::test(migrations = "../migrations")]
async fn a_blank_assignee_is_refused_so_counts_and_lists_agree(db: PgPool) {
    let app = TestApp::spawn(db.clone()).await;
    let id: i64 = sqlx::query_scalar("SELECT id FROM contacts WHERE workspace_id = $1 LIMIT 1")
        .bind(WS)
        .fetch_one(&db)
        .await
        .expect("a contact");
    for blank in ["", "  ", "\t"] {
        let refused = sqlx::query("UPDATE contacts SET assigned_to = $1 WHERE id = $2")
            .bind(blank)
            .bind(id)
            .execute(&db)
            .await
            .expect_err("a blank assignee");
        let code = refused.as_database_error().and_then(|e| e.code());
        assert_eq!(code.as_deref(), Some("23514"), "{blank:?}: {refused}");
    }
    let counts = app.counts(&member()).await;
    assert_eq!(
        counts["unassigned"],
        sql_count(&db, "NOT archived AND assigned_to IS NULL").await
    );
}
