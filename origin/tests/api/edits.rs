//! An in-place edit drops only what it reaches: the page showing the contact, the lists it
//! entered, left or moved in, and the counts. Every other page stays cached, on every
//! instance, and everything it reached is fresh at once on every instance.

use serde_json::json;
use sqlx::PgPool;

use crate::helpers::*;

async fn some_board(db: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT min(board_id) FROM contacts WHERE workspace_id = $1")
        .bind(WS)
        .fetch_one(db)
        .await
        .expect("a board")
}

#[sqlx::test(migrations = "../migrations")]
async fn an_edit_refreshes_the_page_showing_the_contact_and_no_other(db: PgPool) {
    let a = TestApp::spawn(db.clone()).await;
    let b = a.sibling().await;
    let token = member();
    let board = some_board(&db).await;
    let page = |n: u32| format!("/api/boards/{board}/contacts?per_page=5&page={n}");
    for app in [&a, &b] {
        for n in [1, 2] {
            data(app.get(&page(n), &token).await).await;
            let cached = data(app.get(&page(n), &token).await).await;
            assert_eq!(cached["_cache"]["status"], "HIT");
        }
    }
    let shown = data(a.get(&page(2), &token).await).await["contacts"][0].clone();
    let id = shown["id"].as_i64().expect("id");
    let phone = format!("+1 555 {id}");
    a.patch_contact(id, &token, json!({ "phone": phone })).await;

    for app in [&a, &b] {
        let first = data(app.get(&page(1), &token).await).await;
        assert_eq!(first["_cache"]["status"], "HIT", "a page not showing it");
        let second = data(app.get(&page(2), &token).await).await;
        assert_eq!(second["contacts"][0]["id"], id);
        assert_eq!(second["contacts"][0]["phone"], phone.as_str());
    }
}

/// Each list filter as SQL, written apart from the store's predicates.
const FILTERS: [(&str, &str); 15] = [
    ("all", "NOT archived"),
    ("open", "NOT archived AND status = 'open'"),
    ("closed", "NOT archived AND status = 'closed'"),
    ("unassigned", "NOT archived AND assigned_to IS NULL"),
    ("assigned_to_me", "NOT archived AND assigned_to = 'user_3'"),
    ("high_priority", "NOT archived AND priority = 'high'"),
    ("medium_priority", "NOT archived AND priority = 'medium'"),
    ("low_priority", "NOT archived AND priority = 'low'"),
    ("needs_response", "NOT archived AND needs_response"),
    ("follow_up", "NOT archived AND follow_up"),
    ("favorites", "NOT archived AND favorite"),
    ("archived", "archived"),
    (
        "unhappy_customers",
        "NOT archived AND sentiment = 'negative'",
    ),
    (
        "new_customers",
        "NOT archived AND created_at > now() - interval '7 days'",
    ),
    (
        "recent_activity",
        "NOT archived AND last_activity_at > now() - interval '24 hours'",
    ),
];

const SORTS: [(&str, &str); 4] = [
    ("created_at", "created_at"),
    ("updated_at", "updated_at"),
    ("name", "name"),
    ("last_activity_at", "last_activity_at"),
];

async fn first_ids(db: &PgPool, board: i64, column: &str) -> Vec<i64> {
    sqlx::query_scalar(&format!(
        "SELECT id FROM contacts WHERE workspace_id = $1 AND board_id = $2 AND NOT archived \
         ORDER BY {column} DESC, id DESC LIMIT 3"
    ))
    .bind(WS)
    .bind(board)
    .fetch_all(db)
    .await
    .expect("ids")
}

/// After each kind of edit, every filter's total and every sort's first page, read from
/// the caches that held them before it, agree with SQL.
#[sqlx::test(migrations = "../migrations")]
async fn every_list_an_edit_changes_is_fresh_at_once(db: PgPool) {
    let a = TestApp::spawn(db.clone()).await;
    let b = a.sibling().await;
    let token = member();
    let board = some_board(&db).await;
    let id: i64 = sqlx::query_scalar(
        "SELECT id FROM contacts WHERE workspace_id = $1 AND board_id = $2 AND NOT archived \
         ORDER BY created_at LIMIT 1",
    )
    .bind(WS)
    .bind(board)
    .fetch_one(&db)
    .await
    .expect("a contact");
    let filter_page = |f: &str| format!("/api/boards/{board}/contacts?per_page=1&filter={f}");
    let sort_page =
        |s: &str| format!("/api/boards/{board}/contacts?per_page=3&sort_by={s}&sort_order=desc");
    let mut paths: Vec<String> = FILTERS.iter().map(|(f, _)| filter_page(f)).collect();
    paths.extend(SORTS.iter().map(|(s, _)| sort_page(s)));
    for app in [&a, &b] {
        for path in &paths {
            data(app.get(path, &token).await).await;
        }
    }

    let edits = [
        json!({"status": "closed"}),
        json!({"priority": "high"}),
        json!({"assigned_to": "user_3"}),
        json!({"assigned_to": null}),
        json!({"needs_response": true}),
        json!({"follow_up": true}),
        json!({"favorite": true}),
        json!({"sentiment": "negative"}),
        json!({"name": "Zzz Last"}),
        json!({"phone": "+1 555 0199"}),
    ];
    for edit in edits {
        a.patch_contact(id, &token, edit.clone()).await;
        for app in [&a, &b] {
            for (filter, predicate) in FILTERS {
                let page = data(app.get(&filter_page(filter), &token).await).await;
                let expected = sql_count(&db, &format!("board_id = {board} AND {predicate}")).await;
                assert_eq!(
                    page["pagination"]["total"], expected,
                    "{filter} after {edit}"
                );
            }
            for (sort, column) in SORTS {
                let page = data(app.get(&sort_page(sort), &token).await).await;
                assert_eq!(
                    page_ids(&page),
                    first_ids(&db, board, column).await,
                    "{sort} after {edit}"
                );
            }
        }
    }
}
