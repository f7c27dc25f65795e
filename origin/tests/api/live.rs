//! Live changes over HTTP (API.md "Live changes"), Postgres and Redis real: a member's
//! stream names each change and carries none of its data, opens with a single-use
//! ticket, never shows another workspace's changes, resumes from `Last-Event-ID` on any
//! instance (or says the whole workspace changed when it missed too much), and is capped
//! per workspace.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::PgPool;

use crate::helpers::*;

/// An open event stream, read event by event.
struct Events {
    response: reqwest::Response,
    buffer: String,
}

impl Events {
    async fn open(app: &TestApp, ws: &str, query: &str, last: Option<u64>) -> reqwest::Response {
        let mut request = app
            .http
            .get(app.url(&format!("/api/workspaces/{ws}/events{query}")));
        if let Some(id) = last {
            request = request.header("Last-Event-ID", id.to_string());
        }
        request.send().await.expect("request")
    }

    /// A stream of `ws` opened with a fresh ticket of `token`'s.
    async fn with_ticket(app: &TestApp, ws: &str, token: &str, last: Option<u64>) -> Self {
        let ticket = ticket(app, ws, token).await;
        Self::of(Self::open(app, ws, &format!("?ticket={ticket}"), last).await)
    }

    fn of(response: reqwest::Response) -> Self {
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers()["content-type"],
            "text/event-stream",
            "an event stream"
        );
        Self {
            response,
            buffer: String::new(),
        }
    }

    /// The next change: its id and data.
    async fn next(&mut self) -> (Option<u64>, Value) {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let field = |name: &str| {
                    block
                        .lines()
                        .find_map(|l| l.strip_prefix(name))
                        .map(|v| v.trim_start().to_owned())
                };
                let Some(data) = field("data:") else {
                    continue;
                };
                assert_eq!(field("event:").as_deref(), Some("change"), "{block}");
                let id = field("id:").map(|id| id.parse().expect("a numeric id"));
                return (id, serde_json::from_str(&data).expect("JSON data"));
            }
            let chunk = tokio::time::timeout(Duration::from_secs(5), self.response.chunk())
                .await
                .expect("a change within 5 s")
                .expect("the stream")
                .expect("the stream is open");
            self.buffer
                .push_str(std::str::from_utf8(&chunk).expect("UTF-8"));
        }
    }
}

async fn ticket(app: &TestApp, ws: &str, token: &str) -> String {
    let r = app
        .http
        .post(app.url(&format!("/api/workspaces/{ws}/events/ticket")))
        .bearer_auth(token)
        .send()
        .await
        .expect("ticket");
    let d = data(r).await;
    assert_eq!(d["expires_in"], 60);
    d["ticket"].as_str().expect("ticket").to_owned()
}

/// A contact of `ws` and its board.
async fn a_contact(db: &PgPool, ws: &str) -> (i64, i64) {
    sqlx::query_as("SELECT id, board_id FROM contacts WHERE workspace_id = $1 ORDER BY id LIMIT 1")
        .bind(ws)
        .fetch_one(db)
        .await
        .expect("a contact")
}

/// Flips the contact's favorite flag through the API: its board and the counts change.
async fn touch(app: &TestApp, ws: &str, token: &str, id: i64, favorite: bool) {
    let r = app
        .http
        .patch(app.url(&format!("/api/workspaces/{ws}/contacts/{id}")))
        .bearer_auth(token)
        .json(&json!({ "favorite": favorite }))
        .send()
        .await
        .expect("patch");
    assert_eq!(r.status(), StatusCode::OK);
}

#[sqlx::test(migrations = "../migrations")]
async fn a_member_is_told_what_changed_and_never_the_data(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let (contact, board) = a_contact(&app.db, WS).await;
    let mut events = Events::with_ticket(&app, WS, &member(), None).await;
    touch(&app, WS, &member(), contact, true).await;
    let (first, changed) = events.next().await;
    assert_eq!(changed["scope"], "board");
    assert_eq!(changed["id"], board);
    assert!(changed["at"].as_i64().is_some());
    assert_eq!(
        changed.as_object().map(|o| o.len()),
        Some(3),
        "scope, id and when; never the contact: {changed}"
    );
    let (second, counts) = events.next().await;
    assert_eq!(
        (counts["scope"].as_str(), &counts["id"]),
        (Some("counts"), &Value::Null)
    );
    assert_eq!(second, first.map(|f| f + 1), "ids follow each other");

    let conversation = app
        .state
        .store
        .seed_messages(&ws(WS), 1, 3)
        .await
        .expect("history")
        .conversations[0];
    let posted = app
        .post(
            &format!("/api/workspaces/{WS}/conversations/{conversation}/messages"),
            &member(),
            json!({"sender_type": "agent", "body": "hello"}),
        )
        .await;
    assert_eq!(posted.status(), StatusCode::CREATED);
    let mut seen = Vec::new();
    while !seen.contains(&json!(["conversation", conversation])) {
        let (_, e) = events.next().await;
        seen.push(json!([e["scope"], e["id"]]));
    }
    data(
        app.post(
            &format!("/api/cache-settings/workspace/{WS}/settings"),
            &admin(),
            json!({"cacheConfig": {"contactsTTL": 90}}),
        )
        .await,
    )
    .await;
    let mut scopes = Vec::new();
    while !scopes.contains(&json!("workspace")) {
        scopes.push(events.next().await.1["scope"].clone());
    }
    assert!(scopes.contains(&json!("settings")), "{scopes:?}");
}

#[sqlx::test(migrations = "../migrations")]
async fn tickets_are_single_use_and_for_one_workspace(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let t = ticket(&app, WS, &member()).await;
    Events::of(Events::open(&app, WS, &format!("?ticket={t}"), None).await);
    let again = Events::open(&app, WS, &format!("?ticket={t}"), None).await;
    assert_eq!(
        error_code(again, StatusCode::UNAUTHORIZED).await,
        "unauthorized"
    );
    let made_up = Events::open(&app, WS, "?ticket=00ff", None).await;
    assert_eq!(
        error_code(made_up, StatusCode::UNAUTHORIZED).await,
        "unauthorized"
    );
    let bare = Events::open(&app, WS, "", None).await;
    assert_eq!(
        error_code(bare, StatusCode::UNAUTHORIZED).await,
        "unauthorized"
    );
    let outsider = token_for("user_9", &[OTHER_WS], false, 3600);
    let theirs = ticket(&app, OTHER_WS, &outsider).await;
    let crossed = Events::open(&app, WS, &format!("?ticket={theirs}"), None).await;
    assert_eq!(
        error_code(crossed, StatusCode::FORBIDDEN).await,
        "forbidden"
    );
    let r = app
        .http
        .post(app.url(&format!("/api/workspaces/{WS}/events/ticket")))
        .bearer_auth(&outsider)
        .send()
        .await
        .expect("ticket");
    assert_eq!(error_code(r, StatusCode::FORBIDDEN).await, "forbidden");
    let with_token = app
        .http
        .get(app.url(&format!("/api/workspaces/{WS}/events")))
        .bearer_auth(member())
        .send()
        .await
        .expect("stream");
    Events::of(with_token);
    let bad_last = Events::open(
        &app,
        WS,
        &format!(
            "?ticket={}&last_event_id=x",
            ticket(&app, WS, &member()).await
        ),
        None,
    )
    .await;
    assert_eq!(
        error_code(bad_last, StatusCode::BAD_REQUEST).await,
        "invalid_last_event_id"
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn no_member_sees_another_workspaces_changes(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let outsider = token_for("user_9", &[OTHER_WS], false, 3600);
    let mut mine = Events::with_ticket(&app, WS, &member(), None).await;
    let mut theirs = Events::with_ticket(&app, OTHER_WS, &outsider, None).await;
    let (their_contact, their_board) = a_contact(&app.db, OTHER_WS).await;
    let (my_contact, my_board) = a_contact(&app.db, WS).await;
    touch(&app, OTHER_WS, &outsider, their_contact, true).await;
    touch(&app, WS, &member(), my_contact, true).await;
    assert_eq!(
        mine.next().await.1["id"],
        my_board,
        "the first change this member sees is its own"
    );
    assert_eq!(theirs.next().await.1["id"], their_board);
}

#[sqlx::test(migrations = "../migrations")]
async fn a_client_resumes_on_any_instance_or_learns_it_missed_too_much(db: PgPool) {
    seed_workspaces(&db).await;
    let mut config = test_config(&unique_namespace());
    config.live_buffer = 6;
    let app = TestApp::spawn_with(db, config, Vec::new()).await;
    let sibling = app.sibling().await;
    let mut watching_sibling = Events::with_ticket(&sibling, WS, &member(), None).await;
    let mut events = Events::with_ticket(&app, WS, &member(), None).await;
    let (contact, _) = a_contact(&app.db, WS).await;
    for favorite in [true, false] {
        touch(&app, WS, &member(), contact, favorite).await;
    }
    let mut seen = Vec::new();
    for _ in 0..4 {
        seen.push(events.next().await);
    }
    let on_sibling = async {
        let mut got = Vec::new();
        for _ in 0..4 {
            got.push(watching_sibling.next().await);
        }
        got
    }
    .await;
    assert_eq!(
        on_sibling, seen,
        "every instance streams the same changes under the same ids"
    );
    let first = seen[0].0.expect("numbered");
    for instance in [&app, &sibling] {
        let mut resumed = Events::with_ticket(instance, WS, &member(), Some(first)).await;
        for expected in &seen[1..] {
            assert_eq!(&resumed.next().await, expected);
        }
    }
    for favorite in [true, false] {
        touch(&app, WS, &member(), contact, favorite).await;
    }
    let mut late = Events::with_ticket(&app, WS, &member(), Some(first)).await;
    let (id, told) = late.next().await;
    assert_eq!(
        told["scope"], "workspace",
        "the buffer of 6 no longer reaches back"
    );
    assert!(id.is_some_and(|id| id >= first + 7), "{id:?}");
}

#[sqlx::test(migrations = "../migrations")]
async fn streams_per_workspace_are_capped(db: PgPool) {
    seed_workspaces(&db).await;
    let mut config = test_config(&unique_namespace());
    config.live_max_connections = 1;
    let app = TestApp::spawn_with(db, config, Vec::new()).await;
    let first = Events::with_ticket(&app, WS, &member(), None).await;
    let t = ticket(&app, WS, &member()).await;
    let refused = Events::open(&app, WS, &format!("?ticket={t}"), None).await;
    assert_eq!(
        error_code(refused, StatusCode::TOO_MANY_REQUESTS).await,
        "rate_limited"
    );
    let outsider = token_for("user_9", &[OTHER_WS], false, 3600);
    Events::with_ticket(&app, OTHER_WS, &outsider, None).await;
    drop(first);
    eventually(Duration::from_secs(5), || async {
        let t = ticket(&app, WS, &member()).await;
        let r = Events::open(&app, WS, &format!("?ticket={t}"), None).await;
        (r.status() == StatusCode::OK).then_some(())
    })
    .await;
}

#[sqlx::test(migrations = "../migrations")]
async fn a_change_written_straight_to_postgres_is_told_once_whichever_instances_hear_it(
    db: PgPool,
) {
    let app = TestApp::spawn(db).await;
    let sibling = app.sibling().await;
    let mut events = Events::with_ticket(&app, WS, &member(), None).await;
    let (contact, board) = a_contact(&app.db, WS).await;
    let (marker, marker_board): (i64, i64) = sqlx::query_as(
        "SELECT id, board_id FROM contacts WHERE workspace_id = $1 AND board_id <> $2 LIMIT 1",
    )
    .bind(WS)
    .bind(board)
    .fetch_one(&app.db)
    .await
    .expect("a contact on another board");
    sqlx::query("UPDATE contacts SET favorite = NOT favorite WHERE id = $1")
        .bind(contact)
        .execute(&app.db)
        .await
        .expect("a write of another application");
    let mut told = Vec::new();
    while told.last() != Some(&json!(["counts", null])) {
        let (_, e) = events.next().await;
        told.push(json!([e["scope"], e["id"]]));
    }
    assert_eq!(told, [json!(["board", board]), json!(["counts", null])]);
    touch(&sibling, WS, &member(), marker, true).await;
    let (_, next) = events.next().await;
    assert_eq!(
        (next["scope"].clone(), next["id"].clone()),
        (json!("board"), json!(marker_board)),
        "no second instance told the first change again"
    );
}

impl Events {
    /// Reads until the server ends the stream; how long that took.
    async fn until_closed(mut self, limit: Duration) -> Duration {
        let started = std::time::Instant::now();
        loop {
            let chunk = tokio::time::timeout(limit, self.response.chunk())
                .await
                .expect("the stream ends in time")
                .expect("the stream");
            if chunk.is_none() {
                return started.elapsed();
            }
        }
    }
}

/// A stream does not outlive the token that opened it, whether the token itself or a
/// ticket of it opened the stream: the client renews with a new ticket.
#[sqlx::test(migrations = "../migrations")]
async fn a_stream_ends_when_its_token_expires(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let short = token_for("user_3", &[WS], false, 2);
    let by_ticket = Events::with_ticket(&app, WS, &short, None).await;
    let by_token = Events::of(
        app.http
            .get(app.url(&format!("/api/workspaces/{WS}/events")))
            .bearer_auth(&short)
            .send()
            .await
            .expect("request"),
    );
    let long = Events::with_ticket(&app, WS, &member(), None).await;
    for stream in [by_ticket, by_token] {
        let lasted = stream.until_closed(Duration::from_secs(10)).await;
        assert!(lasted <= Duration::from_secs(4), "{lasted:?}");
    }
    let open = tokio::time::timeout(
        Duration::from_millis(500),
        long.until_closed(Duration::from_secs(1)),
    )
    .await;
    assert!(open.is_err(), "a stream of a long-lived token stays open");
}

/// A posted message is told as a change of its conversation and of the workspace's
/// message searches, so a client showing a search knows to run it again.
#[sqlx::test(migrations = "../migrations")]
async fn a_posted_message_is_told_to_searches_too(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let seeded = app
        .state
        .store
        .seed_messages(&ws(WS), 1, 3)
        .await
        .expect("history");
    let mut events = Events::with_ticket(&app, WS, &member(), None).await;
    let conversation = seeded.conversations[0];
    let posted = app
        .http
        .post(app.url(&format!(
            "/api/workspaces/{WS}/conversations/{conversation}/messages"
        )))
        .bearer_auth(member())
        .json(&serde_json::json!({"sender_type": "agent", "body": "a parcel left"}))
        .send()
        .await
        .expect("post");
    assert_eq!(posted.status(), StatusCode::CREATED);
    // The two scopes are told in either order.
    let mut told = Vec::new();
    while !["search", "conversation"]
        .iter()
        .all(|scope| told.contains(&Value::from(*scope)))
    {
        let (_, e) = events.next().await;
        assert!(told.len() < 8, "no search and conversation among {told:?}");
        told.push(e["scope"].clone());
    }
}
