//! Message history over HTTP (API.md "Message history"), Postgres and Redis real: pages
//! cached through the layers when `messageHistory` is on, appending that leaves older
//! pages cached while the head page is fresh at once on every instance, edits and
//! deletes, the toggle, tenant isolation and bad input.

use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::PgPool;

use crate::helpers::*;

/// An origin over the two seeded workspaces, with history in the first and the feature on.
async fn spawn(db: PgPool) -> (TestApp, Vec<i64>) {
    let app = TestApp::spawn(db).await;
    let seeded = app
        .state
        .store
        .seed_messages(&ws(WS), 3, 300)
        .await
        .expect("history");
    set_history(&app, true).await;
    (app, seeded.conversations)
}

async fn set_history(app: &TestApp, on: bool) {
    let saved = app
        .post(
            &format!("/api/cache-settings/workspace/{WS}/settings"),
            &admin(),
            json!({"features": {"messageHistory": on}}),
        )
        .await;
    data(saved).await;
}

async fn messages(app: &TestApp, conversation: i64, query: &str) -> Value {
    data(
        app.get(
            &format!("/api/conversations/{conversation}/messages{query}"),
            &member(),
        )
        .await,
    )
    .await
}

fn ids(page: &Value) -> Vec<i64> {
    page["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["id"].as_i64().expect("id"))
        .collect()
}

fn status(page: &Value) -> &str {
    page["_cache"]["status"].as_str().expect("status")
}

fn before(page: &Value) -> String {
    let cursor = page["pagination"]["next_cursor"].as_str().expect("cursor");
    format!("?limit=20&before={cursor}")
}

/// A write under the workspace's conversations, as its admin (who may change any message).
async fn write(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    body: Value,
) -> reqwest::Response {
    as_user(app, &admin(), method, path, body).await
}

async fn post(app: &TestApp, conversation: i64, body: &str) -> Value {
    let r = write(
        app,
        reqwest::Method::POST,
        &format!("/{conversation}/messages"),
        json!({"sender_type": "agent", "body": body}),
    )
    .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    r.json::<Value>().await.expect("json")["data"].clone()
}

#[sqlx::test(migrations = "../migrations")]
async fn a_new_message_changes_only_the_head_page_on_every_instance(db: PgPool) {
    let (app, conversations) = spawn(db).await;
    let sibling = app.sibling().await;
    let c = conversations[0];
    let head = messages(&app, c, "?limit=20").await;
    assert_eq!(status(&head), "MISS");
    assert_eq!(head["pagination"]["limit"], 20);
    assert_eq!(head["pagination"]["has_more"], true);
    let older_path = before(&head);
    let older = messages(&app, c, &older_path).await;
    assert_eq!(status(&older), "MISS");
    assert!(ids(&older)[0] < *ids(&head).last().expect("a message"));
    assert_eq!(status(&messages(&app, c, "?limit=20").await), "HIT");
    assert_eq!(status(&messages(&sibling, c, &older_path).await), "HIT");
    assert_eq!(status(&messages(&sibling, c, "?limit=20").await), "HIT");

    let posted = post(&app, c, "hello from the test").await;
    for instance in [&app, &sibling] {
        let fresh = messages(instance, c, "?limit=20").await;
        assert_eq!(
            fresh["messages"][0]["id"], posted["id"],
            "the head is fresh at once"
        );
        assert_eq!(fresh["messages"][0]["body"], "hello from the test");
        assert_eq!(ids(&fresh)[1..], ids(&head)[..19]);
        let kept = messages(instance, c, &older_path).await;
        assert_eq!(status(&kept), "HIT", "appending leaves older pages cached");
        assert_eq!(ids(&kept), ids(&older));
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn edits_and_deletes_reach_every_page_of_their_conversation(db: PgPool) {
    let (app, conversations) = spawn(db).await;
    let c = conversations[0];
    let head = messages(&app, c, "?limit=20").await;
    let older_path = before(&head);
    let older = messages(&app, c, &older_path).await;
    let target = ids(&older)[3];
    let other_conversation = messages(&app, conversations[1], "").await;
    let r = write(
        &app,
        reqwest::Method::PATCH,
        &format!("/{c}/messages/{target}"),
        json!({"body": "edited"}),
    )
    .await;
    let edited = data(r).await;
    assert_eq!(edited["body"], "edited");
    assert!(edited["edited_at"].is_string());
    assert_eq!(edited["edited_by"], "user_3");
    let shown = messages(&app, c, &older_path).await;
    assert_eq!(shown["messages"][3]["body"], "edited");
    assert_eq!(status(&shown), "MISS");
    assert_eq!(
        status(&messages(&app, conversations[1], "").await),
        "HIT",
        "another conversation's pages stay"
    );
    assert_eq!(
        ids(&other_conversation),
        ids(&messages(&app, conversations[1], "").await)
    );

    let r = write(
        &app,
        reqwest::Method::DELETE,
        &format!("/{c}/messages/{target}"),
        json!({}),
    )
    .await;
    data(r).await;
    let shown = messages(&app, c, &older_path).await;
    let tombstone = &shown["messages"][3];
    assert_eq!(
        tombstone["id"], target,
        "the cached page shows the tombstone in place"
    );
    assert_eq!(tombstone["body"], Value::Null);
    assert_eq!(tombstone["deleted_by"], "user_3");
    assert!(tombstone["deleted_at"].is_string());
    assert_eq!(shown["messages"].as_array().map(Vec::len), Some(20));
    let again = write(
        &app,
        reqwest::Method::DELETE,
        &format!("/{c}/messages/{target}"),
        json!({}),
    )
    .await;
    assert_eq!(error_code(again, StatusCode::NOT_FOUND).await, "not_found");
}

#[sqlx::test(migrations = "../migrations")]
async fn a_message_is_its_contacts_latest_activity(db: PgPool) {
    let (app, conversations) = spawn(db).await;
    let c = conversations[2];
    let list =
        |board: i64| format!("/api/boards/{board}/contacts?sort_by=last_activity_at&per_page=5");
    let board = app.boards[0];
    let first = data(app.get(&list(board), &member()).await).await;
    let posted = post(&app, c, "any news?").await;
    let contact: i64 = sqlx::query_scalar("SELECT contact_id FROM conversations WHERE id = $1")
        .bind(c)
        .fetch_one(&app.db)
        .await
        .expect("contact");
    let board_of: i64 = sqlx::query_scalar("SELECT board_id FROM contacts WHERE id = $1")
        .bind(contact)
        .fetch_one(&app.db)
        .await
        .expect("board");
    let now = data(app.get(&list(board_of), &member()).await).await;
    assert_eq!(
        page_ids(&now)[0],
        contact,
        "the contact's activity moved it first"
    );
    assert_eq!(now["contacts"][0]["last_activity_at"], posted["created_at"]);
    if board_of == board {
        assert_ne!(page_ids(&now), page_ids(&first));
    }
    let listed = data(
        app.get(
            &format!("/api/workspaces/{WS}/conversations?limit=1"),
            &member(),
        )
        .await,
    )
    .await;
    assert_eq!(listed["conversations"][0]["id"], c);
    assert_eq!(listed["pagination"]["has_more"], true);
}

#[sqlx::test(migrations = "../migrations")]
async fn with_the_feature_off_messages_come_from_the_database(db: PgPool) {
    let (app, conversations) = spawn(db).await;
    let c = conversations[0];
    messages(&app, c, "").await;
    assert_eq!(status(&messages(&app, c, "").await), "HIT");
    set_history(&app, false).await;
    for _ in 0..2 {
        let page = messages(&app, c, "").await;
        assert_eq!(status(&page), "BYPASS");
        assert_eq!(page["_cache"]["source"], "database");
    }
    set_history(&app, true).await;
    assert_eq!(status(&messages(&app, c, "").await), "MISS");
    assert_eq!(
        status(&messages(&app, c, "?useCache=false").await),
        "BYPASS"
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn no_member_reads_or_writes_another_workspaces_history(db: PgPool) {
    let (app, conversations) = spawn(db).await;
    let theirs = app
        .state
        .store
        .seed_messages(&ws(OTHER_WS), 1, 10)
        .await
        .expect("their history")
        .conversations[0];
    let mine = conversations[0];
    let outsider = token_for("user_9", &[OTHER_WS], false, 3600);
    let r = app
        .get(&format!("/api/conversations/{mine}/messages"), &outsider)
        .await;
    assert_eq!(error_code(r, StatusCode::FORBIDDEN).await, "forbidden");
    let r = app
        .get(&format!("/api/conversations/{theirs}/messages"), &member())
        .await;
    assert_eq!(error_code(r, StatusCode::NOT_FOUND).await, "not_found");
    let r = app
        .http
        .get(app.url(&format!("/api/conversations/{mine}/messages")))
        .bearer_auth(&outsider)
        .header("X-Workspace-ID", OTHER_WS)
        .send()
        .await
        .expect("request");
    assert_eq!(error_code(r, StatusCode::NOT_FOUND).await, "not_found");
    let r = write(
        &app,
        reqwest::Method::POST,
        &format!("/{theirs}/messages"),
        json!({"sender_type": "agent", "body": "x"}),
    )
    .await;
    assert_eq!(error_code(r, StatusCode::NOT_FOUND).await, "not_found");
    let r = app
        .http
        .get(app.url(&format!("/api/workspaces/{OTHER_WS}/conversations")))
        .bearer_auth(member())
        .send()
        .await
        .expect("request");
    assert_eq!(error_code(r, StatusCode::FORBIDDEN).await, "forbidden");
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM messages WHERE conversation_id = $1")
        .bind(theirs)
        .fetch_one(&app.db)
        .await
        .expect("count");
    assert_eq!(count, 10, "nothing was written to their conversation");
}

#[sqlx::test(migrations = "../migrations")]
async fn bad_history_input_is_a_clear_4xx(db: PgPool) {
    let (app, conversations) = spawn(db).await;
    let c = conversations[0];
    let path = format!("/{c}/messages");
    let cases = [
        (json!({"sender_type": "agent", "body": ""}), "invalid_body"),
        (
            json!({"sender_type": "agent", "body": "a\u{0}b"}),
            "invalid_body",
        ),
        (
            json!({"sender_type": "agent", "body": "x".repeat(10_001)}),
            "invalid_body",
        ),
        (json!({"sender_type": "robot", "body": "x"}), "invalid_json"),
        (
            json!({"sender_type": "agent", "body": "x", "extra": 1}),
            "invalid_json",
        ),
        (
            json!({"sender_type": "agent", "sender_id": "a b", "body": "x"}),
            "invalid_sender_id",
        ),
    ];
    for (body, code) in cases {
        let r = write(&app, reqwest::Method::POST, &path, body.clone()).await;
        assert_eq!(error_code(r, StatusCode::BAD_REQUEST).await, code, "{body}");
    }
    let r = write(
        &app,
        reqwest::Method::POST,
        "/999999999/messages",
        json!({"sender_type": "agent", "body": "x"}),
    )
    .await;
    assert_eq!(error_code(r, StatusCode::NOT_FOUND).await, "not_found");
    let r = write(
        &app,
        reqwest::Method::POST,
        "",
        json!({"contact_id": 999_999_999}),
    )
    .await;
    assert_eq!(error_code(r, StatusCode::NOT_FOUND).await, "not_found");
    let head = messages(&app, c, "?limit=5").await;
    let newest = ids(&head)[0];
    let r = write(
        &app,
        reqwest::Method::PATCH,
        &format!("/{c}/messages/{newest}"),
        json!({"body": "a\u{0}b"}),
    )
    .await;
    assert_eq!(error_code(r, StatusCode::BAD_REQUEST).await, "invalid_body");
    let cursor = head["pagination"]["next_cursor"].as_str().expect("cursor");
    let last = if cursor.ends_with('A') { "B" } else { "A" };
    let tampered = format!("{}{last}", &cursor[..cursor.len() - 1]);
    for (query, code) in [
        ("?limit=0".to_owned(), "invalid_limit"),
        ("?limit=101".to_owned(), "invalid_limit"),
        (format!("?before={tampered}"), "invalid_cursor"),
        ("?limit=5&limit=6".to_owned(), "duplicate_parameter"),
    ] {
        let r = app
            .get(
                &format!("/api/conversations/{c}/messages{query}"),
                &member(),
            )
            .await;
        assert_eq!(
            error_code(r, StatusCode::BAD_REQUEST).await,
            code,
            "{query}"
        );
    }
    let other_conversation = conversations[1];
    let r = app
        .get(
            &format!("/api/conversations/{other_conversation}/messages?before={cursor}"),
            &member(),
        )
        .await;
    assert_eq!(
        error_code(r, StatusCode::BAD_REQUEST).await,
        "invalid_cursor",
        "a cursor of another conversation"
    );
    let r = app.get("/api/conversations/abc/messages", &member()).await;
    assert_eq!(
        error_code(r, StatusCode::BAD_REQUEST).await,
        "invalid_conversation_id"
    );
    assert_eq!(
        messages(&app, c, "?limit=5").await["messages"],
        head["messages"],
        "nothing changed"
    );
}

/// A token for `user` in the test workspace with `role` (`integration`, say).
fn with_role(user: &str, role: &str) -> String {
    let claims = origin::auth::Claims {
        sub: user.into(),
        workspaces: vec![WS.into()],
        role: Some(role.into()),
        roles: Default::default(),
        exp: 4_000_000_000,
    };
    origin::auth::issue(SECRET.as_bytes(), &claims).expect("token")
}

/// A write under the workspace's conversations, as `token`'s user.
async fn as_user(
    app: &TestApp,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: Value,
) -> reqwest::Response {
    app.http
        .request(
            method,
            app.url(&format!("/api/workspaces/{WS}/conversations{path}")),
        )
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("write")
}

#[sqlx::test(migrations = "../migrations")]
async fn a_member_writes_only_as_itself_and_changes_only_its_own_messages(db: PgPool) {
    let (app, conversations) = spawn(db).await;
    let c = conversations[0];
    let (ada, bob) = (
        token_for("user_3", &[WS], false, 3600),
        token_for("user_4", &[WS], false, 3600),
    );
    let post = reqwest::Method::POST;
    let path = format!("/{c}/messages");
    for (body, why) in [
        (
            json!({"sender_type": "agent", "sender_id": "user_4", "body": "as bob"}),
            "another agent",
        ),
        (
            json!({"sender_type": "contact", "body": "refund me"}),
            "the customer",
        ),
        (json!({"sender_type": "bot", "body": "beep"}), "a bot"),
    ] {
        let r = as_user(&app, &ada, post.clone(), &path, body).await;
        assert_eq!(
            error_code(r, StatusCode::FORBIDDEN).await,
            "forbidden",
            "{why}"
        );
    }
    let widget = with_role("widget_1", "integration");
    let r = as_user(
        &app,
        &widget,
        post.clone(),
        &path,
        json!({"sender_type": "contact", "body": "hi"}),
    )
    .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let own = as_user(
        &app,
        &ada,
        post.clone(),
        &path,
        json!({"sender_type": "agent", "body": "mine"}),
    )
    .await;
    assert_eq!(own.status(), StatusCode::CREATED);
    let own: Value = own.json().await.expect("json");
    assert_eq!(own["data"]["sender_id"], "user_3", "the token's user");
    let id = own["data"]["id"].as_i64().expect("id");
    let head = messages(&app, c, "?limit=20").await;
    assert_eq!(head["messages"][0]["id"], id);

    let one = format!("/{c}/messages/{id}");
    let patch = reqwest::Method::PATCH;
    let r = as_user(
        &app,
        &bob,
        patch.clone(),
        &one,
        json!({"body": "bob was here"}),
    )
    .await;
    assert_eq!(error_code(r, StatusCode::FORBIDDEN).await, "forbidden");
    let r = as_user(&app, &bob, reqwest::Method::DELETE, &one, json!({})).await;
    assert_eq!(error_code(r, StatusCode::FORBIDDEN).await, "forbidden");
    let r = as_user(
        &app,
        &ada,
        patch.clone(),
        &one,
        json!({"body": "mine, edited"}),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let boss = token_for("user_9", &[WS], true, 3600);
    let r = as_user(&app, &boss, patch, &one, json!({"body": "moderated"})).await;
    assert_eq!(r.status(), StatusCode::OK, "an admin changes any message");
    let head = messages(&app, c, "?limit=20").await;
    assert_eq!(
        head["messages"][0]["body"], "moderated",
        "the cached head follows"
    );
}

/// A message search through the layers: cached with the search feature, found by the
/// next search on every instance once a message is acknowledged, gone once it is deleted,
/// while a cached search none of its words can match stays cached.
#[sqlx::test(migrations = "../migrations")]
async fn a_message_is_found_by_the_next_search_and_leaves_other_searches_cached(db: PgPool) {
    let (app, conversations) = spawn(db).await;
    let saved = app
        .post(
            &format!("/api/cache-settings/workspace/{WS}/settings"),
            &admin(),
            json!({"features": {"search": true}}),
        )
        .await;
    data(saved).await;
    let sibling = app.sibling().await;
    async fn search(on: &TestApp, q: &str) -> Value {
        let path = format!("/api/workspaces/{WS}/messages/search?q={q}");
        data(on.get(&path, &member()).await).await
    }
    let hits = |answer: &Value| -> Vec<i64> {
        answer["hits"]
            .as_array()
            .expect("hits")
            .iter()
            .map(|h| h["message"]["id"].as_i64().expect("id"))
            .collect()
    };
    for q in ["parcel", "invoice"] {
        assert_eq!(status(&search(&app, q).await), "MISS");
        assert_eq!(status(&search(&app, q).await), "HIT");
        search(&sibling, q).await;
    }
    let posted = post(&app, conversations[0], "Your parcel left the depot").await;
    let id = posted["id"].as_i64().expect("id");
    for on in [&app, &sibling] {
        let found = search(on, "parcel").await;
        assert_eq!(hits(&found), [id], "{found}");
        assert_eq!(
            found["hits"][0]["snippet"],
            "Your <mark>parcel</mark> left the depot"
        );
        let other = search(on, "invoice").await;
        assert_eq!(
            status(&other),
            "HIT",
            "a search no word of the message matches"
        );
    }
    let deleted = write(
        &app,
        reqwest::Method::DELETE,
        &format!("/{}/messages/{id}", conversations[0]),
        json!(null),
    )
    .await;
    assert!(deleted.status().is_success(), "{}", deleted.status());
    for on in [&app, &sibling] {
        assert_eq!(hits(&search(on, "parcel").await), Vec::<i64>::new());
    }
    // Letters the database folds into quotes or colons are words, not query syntax.
    for q in ["%CA%BBOahu", "%E2%91%B4", "caf%C3%A9%3A%2A%20%26%20%21"] {
        let r = app
            .get(
                &format!("/api/workspaces/{WS}/messages/search?q={q}"),
                &member(),
            )
            .await;
        assert_eq!(r.status(), StatusCode::OK, "{q}");
    }
    let bad = app
        .get(
            &format!("/api/workspaces/{WS}/messages/search?q=%22%22"),
            &member(),
        )
        .await;
    assert_eq!(
        error_code(bad, StatusCode::BAD_REQUEST).await,
        "invalid_search"
    );
}
