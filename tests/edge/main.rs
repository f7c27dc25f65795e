//! The real wasm worker, built by worker-build and run by `wrangler dev` in workerd with
//! a local KV, in front of a real origin (real Postgres and Redis), driven over HTTP.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use e2e::{
    edge_metrics, free_port, random_suffix, start_wrangler_at, wait_edge_ready, wait_ok,
    worker_config, wrangler_command, Group, Objects,
};
use origin::auth::{issue, Claims};
use origin::config::{Config, Secret};
use origin::store::postgres::PgStore;
use origin::store::Store;
use origin::Application;
use reqwest::StatusCode;
use serde_json::{json, Value};
use shared::cursor::{Cursor, CursorKey};
use shared::keys::KeySpace;
use shared::query::ContactListQuery;
use shared::settings::CacheSettings;
use shared::{BoardId, UserId, WorkspaceId};
use sqlx::postgres::PgPoolOptions;
use sqlx::{ConnectOptions, PgPool};
use tokio::sync::oneshot;

const SECRET: &str = "e2e-secret-e2e-secret-e2e-secret-000001";

/// The key the origin and the worker sign cursors with (derived from `SECRET`).
fn cursor_key() -> CursorKey {
    CursorKey::from_token_secret(SECRET.as_bytes())
}
const INTERNAL_KEY: &str = "e2e-internal-key-0001";
const PUSH_KEY: &str = "e2e-push-key-000001";
const OLD_PUSH_KEY: &str = "e2e-push-key-000000";
const WS: &str = "15213";
const OTHER_WS: &str = "15214";

fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

fn token(user: &str, workspaces: &[&str]) -> String {
    signed(user, workspaces, None)
}

/// An admin of `WS`.
fn admin_token() -> String {
    signed("admin", &[WS], Some("admin"))
}

fn signed(user: &str, workspaces: &[&str], role: Option<&str>) -> String {
    let claims = Claims {
        sub: user.into(),
        workspaces: workspaces.iter().map(|w| w.to_string()).collect(),
        role: role.map(Into::into),
        roles: Default::default(),
        exp: 4_000_000_000,
    };
    issue(SECRET.as_bytes(), &claims).expect("token")
}

/// A fresh database for this run, migrated and seeded.
async fn database() -> PgPool {
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let admin = PgPoolOptions::new()
        .max_connections(1)
        .connect(&url)
        .await
        .expect("postgres");
    let name = format!("e2e_{}", random_suffix());
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&admin)
        .await
        .expect("create database");
    let options = url
        .parse::<sqlx::postgres::PgConnectOptions>()
        .expect("url")
        .database(&name)
        .disable_statement_logging();
    let db = PgPoolOptions::new()
        .max_connections(10)
        .connect_with(options)
        .await
        .expect("connect");
    let store = PgStore::new(db.clone(), None, cursor_key());
    store.migrate().await.expect("migrate");
    store
        .seed(&WorkspaceId::parse(WS).expect("ws"), 800, 2)
        .await
        .expect("seed");
    store
        .seed(&WorkspaceId::parse(OTHER_WS).expect("ws"), 200, 1)
        .await
        .expect("seed");
    let ws = WorkspaceId::parse(WS).expect("ws");
    store.seed_messages(&ws, 2, 200).await.expect("history");
    let mut settings = CacheSettings::default();
    settings.features.message_history = true;
    store.save_settings(&ws, &settings).await.expect("settings");
    db
}

struct Edge {
    base: String,
    http: reqwest::Client,
}

impl Edge {
    async fn get(&self, path: &str, token: &str, ws: &str) -> (StatusCode, Value) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(token)
            .header("X-Workspace-ID", ws)
            .send()
            .await
            .expect("request");
        let status = r.status();
        (status, r.json().await.expect("every answer is JSON"))
    }

    async fn metrics(&self) -> Value {
        edge_metrics(&self.base).await
    }

    /// The open contacts of `WS`'s counts once the edge holds them (a HIT).
    async fn open_once_cached(&self, counts: &str, token: &str) -> i64 {
        let cached = self
            .within_a_second(counts, token, WS, |now| {
                now["data"]["_cache"]["status"] == "HIT"
            })
            .await;
        cached["data"]["open"].as_i64().expect("open")
    }

    /// Reads `path` in `ws` until `done` holds of the answer, and returns it: a change the origin took
    /// must reach the edge within a second, with no call from the client.
    async fn within_a_second(
        &self,
        path: &str,
        token: &str,
        ws: &str,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        self.within(Duration::from_secs(1), path, token, ws, done)
            .await
    }

    /// Reads `path` in `ws` until `done` holds of the answer, and returns it, failing
    /// past `limit`.
    async fn within(
        &self,
        limit: Duration,
        path: &str,
        token: &str,
        ws: &str,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let since = Instant::now();
        loop {
            let (_, now) = self.get(path, token, ws).await;
            if done(&now) {
                return now;
            }
            assert!(
                since.elapsed() < limit,
                "{path} still answers as before after {limit:?}: {now}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A member's live change stream at the origin.
struct Events {
    stream: reqwest::Response,
    buffer: String,
}

impl Events {
    async fn open(port: u16, token: &str) -> Self {
        let stream = reqwest::Client::new()
            .get(format!(
                "http://127.0.0.1:{port}/api/workspaces/{WS}/events"
            ))
            .bearer_auth(token)
            .send()
            .await
            .expect("events");
        assert_eq!(stream.status(), StatusCode::OK);
        Self {
            stream,
            buffer: String::new(),
        }
    }

    /// Waits (at most 5 s) for a change of `scope` announced at or after `since_ms`.
    async fn next_since(&mut self, scope: &str, since_ms: i64) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            while let Some(end) = self.buffer.find('\n') {
                let line: String = self.buffer.drain(..=end).collect();
                let Some(data) = line.trim_end().strip_prefix("data:") else {
                    continue;
                };
                let change: Value = serde_json::from_str(data.trim()).expect("event data");
                if change["scope"] == scope && change["at"].as_i64() >= Some(since_ms) {
                    return;
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let chunk = tokio::time::timeout(left, self.stream.chunk())
                .await
                .unwrap_or_else(|_| panic!("no {scope} event within 5 s"))
                .expect("the stream")
                .expect("the stream stays open");
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
}

/// An origin on a free port over `db`'s database, pushing its changes to the edge on
/// `edge_port`, its cache keys under `namespace`. It runs on a runtime of its own, so that
/// stopping it ends its background work too (its pushes to the edge), as a process's end
/// would.
struct Origin {
    port: u16,
    stop: oneshot::Sender<()>,
    thread: std::thread::JoinHandle<std::io::Result<()>>,
}

impl Origin {
    async fn start(db: &PgPool, edge_port: u16, namespace: &str) -> Self {
        let mut config = Config::from_env().expect("config");
        config.edge_url = Some(format!("http://127.0.0.1:{edge_port}"));
        config.listen_addr = "127.0.0.1:0".parse().expect("addr");
        config.jwt_secret = Some(Secret(SECRET.into()));
        config.internal_key = Some(Secret(INTERNAL_KEY.into()));
        config.edge_push_key = Some(Secret(PUSH_KEY.into()));
        config.key_space = KeySpace::new(namespace).expect("namespace");
        config.redis_url = Some(redis_url());
        let database = (*db.connect_options()).clone();
        let (ready, port) = oneshot::channel();
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("origin runtime");
            runtime.block_on(async move {
                let db = PgPoolOptions::new()
                    .max_connections(10)
                    .connect_with(database)
                    .await
                    .expect("connect");
                let store = PgStore::new(db, None, cursor_key());
                let app = Application::build(config, Arc::new(store))
                    .await
                    .expect("origin");
                let _ = ready.send(app.port());
                app.run_until(async {
                    let _ = stopped.await;
                })
                .await
            })
        });
        let port = port.await.expect("the origin starts");
        Self { port, stop, thread }
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        tokio::task::spawn_blocking(move || self.thread.join())
            .await
            .expect("joined")
            .expect("origin thread")
            .expect("origin stopped cleanly");
    }
}

/// Posts `body` as user_3, an agent, to `conversation` through the origin's API; the
/// posted message.
async fn post_message(origin_port: u16, conversation: i64, user: &str, body: &str) -> Value {
    let posted = reqwest::Client::new()
        .post(format!(
            "http://127.0.0.1:{origin_port}/api/workspaces/{WS}/conversations/{conversation}/messages"
        ))
        .bearer_auth(user)
        .json(&json!({"sender_type": "agent", "sender_id": "user_3", "body": body}))
        .send()
        .await
        .expect("post");
    assert_eq!(posted.status(), StatusCode::CREATED);
    posted.json().await.expect("json")
}

/// The origin's own answer to what the edge was asked.
async fn origin_get(port: u16, path: &str, token: &str) -> Value {
    reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}{path}"))
        .bearer_auth(token)
        .header("X-Workspace-ID", WS)
        .send()
        .await
        .expect("origin")
        .json()
        .await
        .expect("json")
}

/// The first `n` open contacts of the workspace, by id.
async fn open_contacts(db: &PgPool, n: i64) -> Vec<i64> {
    sqlx::query_scalar(
        "SELECT id FROM contacts WHERE workspace_id = $1 AND NOT archived AND status = 'open' \
         ORDER BY id LIMIT $2",
    )
    .bind(WS)
    .bind(n)
    .fetch_all(db)
    .await
    .expect("open contacts")
}

/// Replaces the storage of every generations object in a stopped edge's `state_dir` with
/// bytes that are no database, keeping the real files aside for `repair_generations`.
fn break_generations(state_dir: &std::path::Path) -> Vec<(PathBuf, PathBuf)> {
    let objects = state_dir.join("v3/do/contact-list-cache-WorkspaceGenerations");
    let aside = state_dir.join("generations-aside");
    std::fs::create_dir_all(&aside).expect("aside");
    let mut moved = Vec::new();
    for file in std::fs::read_dir(&objects).expect("objects' storage") {
        let path = file.expect("entry").path();
        let name = path.file_name().expect("name").to_owned();
        if name.to_string_lossy().starts_with("metadata") {
            continue;
        }
        let kept = aside.join(&name);
        std::fs::rename(&path, &kept).expect("set aside");
        if path.extension().is_some_and(|e| e == "sqlite") {
            std::fs::write(&path, vec![0x5a; 8192]).expect("break");
        }
        moved.push((path, kept));
    }
    assert!(!moved.is_empty(), "no generations object in {objects:?}");
    moved
}

fn repair_generations(moved: Vec<(PathBuf, PathBuf)>) {
    for (path, kept) in moved {
        std::fs::rename(kept, path).expect("put back");
    }
}

/// Closes contact `id` through the origin's API, as a product's own backend would.
async fn close_at_origin(port: u16, token: &str, id: i64) {
    let closed = reqwest::Client::new()
        .patch(format!(
            "http://127.0.0.1:{port}/api/workspaces/{WS}/contacts/{id}"
        ))
        .bearer_auth(token)
        .json(&json!({"status": "closed"}))
        .send()
        .await
        .expect("write");
    assert_eq!(closed.status(), StatusCode::OK);
}

/// The data of an answer without the fields that describe how it was served.
fn payload(answer: &Value) -> Value {
    let mut data = answer["data"].clone();
    if let Some(map) = data.as_object_mut() {
        map.retain(|k, _| !k.starts_with('_'));
    }
    data
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_serves_from_kv_checks_auth_invalidates_and_degrades_when_the_origin_stops() {
    let db = database().await;
    let boards: Vec<i64> =
        sqlx::query_scalar("SELECT id FROM boards WHERE workspace_id = $1 ORDER BY id")
            .bind(WS)
            .fetch_all(&db)
            .await
            .expect("boards");
    let namespace = format!("e{}", random_suffix());
    let port = free_port();
    let origin = Origin::start(&db, port, &namespace).await;
    let origin_port = origin.port;

    let state_dir = std::env::temp_dir().join(format!("edgecache-kv-{}", random_suffix()));
    let vars = [
        ("JWT_SECRET", SECRET),
        ("INTERNAL_API_KEY", INTERNAL_KEY),
        ("EDGE_PUSH_KEY", PUSH_KEY),
        ("EDGE_PUSH_KEY_PREVIOUS", OLD_PUSH_KEY),
        ("CACHE_NAMESPACE", &namespace),
        ("ORIGIN_TIMEOUT_MS", "3000"),
        ("EDGE_MAX_CONVERSATION_COUNTERS", "40"),
    ];
    let mut wrangler = start_wrangler_at(port, origin_port, &vars, &state_dir);
    let edge = Edge {
        base: format!("http://127.0.0.1:{port}"),
        http: reqwest::Client::new(),
    };
    wait_edge_ready(&edge.base, Duration::from_secs(600)).await;
    let user = token("user_3", &[WS]);

    // A first read misses, the second is a KV hit with the same data.
    let counts = format!("/api/workspaces/{WS}/counts");
    let (s1, miss) = edge.get(&counts, &user, WS).await;
    let (s2, hit) = edge.get(&counts, &user, WS).await;
    assert_eq!((s1, s2), (StatusCode::OK, StatusCode::OK), "{miss}");
    assert_eq!(miss["data"]["_cache"]["status"], "MISS");
    assert_eq!(hit["data"]["_cache"]["status"], "HIT");
    assert_eq!(hit["data"]["_cache"]["source"], "cloudflare_kv");
    assert!(hit["data"]["_cache"]["edge_location"].is_string());
    assert_eq!(payload(&miss), payload(&hit));
    let total: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM contacts WHERE workspace_id = $1 AND NOT archived",
    )
    .bind(WS)
    .fetch_one(&db)
    .await
    .expect("total");
    assert_eq!(hit["data"]["total"], total);
    // Further hits are answered from the isolate's copy of the entry: no KV read.
    let before = edge.metrics().await;
    for _ in 0..5 {
        let (_, again) = edge.get(&counts, &user, WS).await;
        assert_eq!(again["data"]["_cache"]["status"], "HIT");
        assert_eq!(payload(&again), payload(&hit));
    }
    let after = edge.metrics().await;
    let moved = |path: &[&str]| {
        let at = |m: &Value| path.iter().fold(m.clone(), |v, p| v[p].clone()).as_u64();
        at(&after).expect("counter") - at(&before).expect("counter")
    };
    assert_eq!(moved(&["cache", "isolate_copy_hits"]), 5, "{after}");
    assert_eq!(moved(&["operations", "kv_reads"]), 0, "{after}");

    // A page through the edge equals the origin's answer for the same query.
    let page = format!(
        "/api/boards/{}/contacts?filter=open&sort_by=name&sort_order=asc&per_page=7&page=2",
        boards[0]
    );
    let (_, via_edge) = edge.get(&page, &user, WS).await;
    let (_, via_edge_again) = edge.get(&page, &user, WS).await;
    assert_eq!(via_edge_again["data"]["_cache"]["status"], "HIT");
    let direct = origin_get(origin_port, &page, &user).await;
    assert_eq!(payload(&via_edge), payload(&direct));
    assert_eq!(
        via_edge["data"]["contacts"].as_array().map(Vec::len),
        Some(7)
    );

    // The page's cursor leads to the next page, cached at the edge per cursor; an
    // altered cursor is refused at the edge itself.
    let cursor = via_edge["data"]["pagination"]["next_cursor"]
        .as_str()
        .expect("a next cursor")
        .to_owned();
    let next = format!("{page}&cursor={cursor}");
    let (_, next_miss) = edge.get(&next, &user, WS).await;
    let (_, next_hit) = edge.get(&next, &user, WS).await;
    assert_eq!(
        [
            &next_miss["data"]["_cache"]["status"],
            &next_hit["data"]["_cache"]["status"]
        ],
        [&json!("MISS"), &json!("HIT")]
    );
    assert_eq!(
        payload(&next_hit),
        payload(&origin_get(origin_port, &next, &user).await)
    );
    assert_eq!(next_hit["data"]["pagination"]["page"], 3);
    let (status, refused) = edge
        .get(&format!("{page}&cursor={cursor}x"), &user, WS)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    assert_eq!(refused["error"]["code"], "invalid_cursor");
    // A well-formed position for this very list, signed with a key other than the servers',
    // and one they signed with no timestamp for a list sorted by time: both refused.
    let (ws_id, board) = (WorkspaceId::parse(WS).expect("ws"), BoardId(boards[0]));
    let reader = UserId::parse("user_3").expect("user");
    let by_time =
        ContactListQuery::from_pairs([("per_page", "7")], &ws_id, board, &reader, &cursor_key())
            .expect("valid");
    let forger = CursorKey::from_token_secret(b"anyone's secret, but not the servers'");
    for (key, value) in [
        (&forger, "2026-01-01T00:00:00Z"),
        (&cursor_key(), "2026-02-30T00:00:00Z"),
    ] {
        let made = Cursor {
            page: 2,
            value: value.into(),
            id: 1,
        }
        .encode(key, &by_time.binding(&ws_id, board));
        let page = format!(
            "/api/boards/{}/contacts?per_page=7&cursor={made}",
            boards[0]
        );
        let (status, refused) = edge.get(&page, &user, WS).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{value}: {refused}");
        assert_eq!(refused["error"]["code"], "invalid_cursor");
    }

    // Search goes through the edge too (not cached while the search feature is off).
    let search = format!("/api/boards/{}/contacts?search=GRACE&per_page=5", boards[0]);
    let (_, searched) = edge.get(&search, &user, WS).await;
    let direct_search = origin_get(origin_port, &search, &user).await;
    assert_eq!(payload(&searched), payload(&direct_search));
    assert!(searched["data"]["contacts"][0]["name"]
        .as_str()
        .is_some_and(|n| n.starts_with("Grace")));

    // Cross-tenant probes: the other workspace's pages sit in KV; no spelling of the
    // workspace header, and no path trick, serves them (or their marker) to this token.
    sqlx::query("UPDATE contacts SET company = 'MARK-' || workspace_id")
        .execute(&db)
        .await
        .expect("markers");
    let theirs = token("user_3", &[OTHER_WS]);
    let their_boards: Vec<i64> =
        sqlx::query_scalar("SELECT id FROM boards WHERE workspace_id = $1 ORDER BY id")
            .bind(OTHER_WS)
            .fetch_all(&db)
            .await
            .expect("boards");
    let foreign = format!("MARK-{OTHER_WS}");
    for board in &their_boards {
        let path = format!("/api/boards/{board}/contacts?per_page=20&sort_by=name");
        // The markers were written straight to Postgres: the origins learn it by NOTIFY
        // and push it to the edge, so the page is cached once that has settled.
        edge.within_a_second(&path, &theirs, OTHER_WS, |hit| {
            hit["data"]["_cache"]["status"] == "HIT" && hit.to_string().contains(&foreign)
        })
        .await;
        let spellings: [&[&str]; 9] = [
            &[WS],
            &[OTHER_WS],
            &[WS, OTHER_WS],
            &[OTHER_WS, WS],
            &["15213,15214"],
            &["15214,15213"],
            &[" 15214 "],
            &["%31%35%32%31%34"],
            &[],
        ];
        for spelling in spellings {
            for probe in [
                path.clone(),
                format!("/api/workspaces/{OTHER_WS}/counts"),
                format!("/api/boards/{board}/contacts/?per_page=20&sort_by=name"),
                format!("/api/boards/{board}/contacts.css?per_page=20&sort_by=name"),
            ] {
                let mut request = edge
                    .http
                    .get(format!("{}{probe}", edge.base))
                    .bearer_auth(&user);
                for value in spelling {
                    request = request.header("X-Workspace-ID", *value);
                }
                let r = request.send().await.expect("probe");
                let status = r.status();
                let body = r.text().await.expect("body");
                assert!(
                    status.is_client_error(),
                    "{probe} {spelling:?}: {status} {body}"
                );
                assert!(
                    !body.contains(&foreign),
                    "{probe} {spelling:?} leaked: {body}"
                );
            }
        }
    }

    // Browsers from the allow-list get CORS headers; others do not.
    for (origin, allowed) in [
        ("http://localhost:3000", true),
        ("http://evil.example", false),
    ] {
        let preflight = edge
            .http
            .request(reqwest::Method::OPTIONS, format!("{}{counts}", edge.base))
            .header("Origin", origin)
            .send()
            .await
            .expect("preflight");
        let header = preflight
            .headers()
            .get("access-control-allow-origin")
            .cloned();
        assert_eq!(header.is_some_and(|h| h == origin), allowed, "{origin}");
    }

    // Auth is checked before KV: a cached key is still refused without the right token.
    let stranger = token("user_3", &[OTHER_WS]);
    let (status, body) = edge.get(&counts, &stranger, WS).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, body) = edge.get(&counts, "not-a-token", WS).await;
    assert_eq!(
        (status, body["success"].clone()),
        (StatusCode::UNAUTHORIZED, json!(false))
    );
    let (status, _) = edge
        .get(
            &format!("/api/workspaces/{WS}/counts"),
            &user,
            "15213,15214",
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // Bad input and unknown routes answer JSON errors.
    for (path, expected) in [
        (
            format!("/api/boards/{}/contacts?per_page=0", boards[0]),
            StatusCode::BAD_REQUEST,
        ),
        (
            "/api/boards/abc/contacts".to_owned(),
            StatusCode::BAD_REQUEST,
        ),
        (
            format!("/api/boards/{}/contacts.css", boards[0]),
            StatusCode::NOT_FOUND,
        ),
        ("/nope".to_owned(), StatusCode::NOT_FOUND),
    ] {
        let (status, body) = edge.get(&path, &user, WS).await;
        assert_eq!(status, expected, "{path}: {body}");
        assert_eq!(body["success"], false);
    }

    // Invalidating the board makes its next read fresh; the whole workspace needs an
    // admin, at the edge as at the origin.
    let invalidate = |body: Value| {
        edge.http
            .post(format!("{}/api/cache/invalidate", edge.base))
            .bearer_auth(&user)
            .header("X-Workspace-ID", WS)
            .json(&body)
            .send()
    };
    let everything = invalidate(json!({"action": "workspace"}))
        .await
        .expect("invalidate");
    assert_eq!(everything.status(), StatusCode::FORBIDDEN);
    let invalidated: Value =
        invalidate(json!({"boardId": boards[0], "contactId": 1, "action": "contact_updated"}))
            .await
            .expect("invalidate")
            .json()
            .await
            .expect("json");
    // The board, the counts, the conversation list and the message searches (a deleted
    // contact's conversations leave both).
    assert_eq!(invalidated["data"]["invalidated"], 4, "{invalidated}");
    assert_eq!(
        invalidated["data"]["origin_notified"], true,
        "{invalidated}"
    );
    let (_, after) = edge.get(&page, &user, WS).await;
    assert_eq!(after["data"]["_cache"]["status"], "MISS");

    // A write through the origin reaches the edge by itself, within a second (once the
    // origin's own push of the invalidation above has settled, the counts are cached).
    let open = edge.open_once_cached(&counts, &user).await;
    let id = open_contacts(&db, 1).await[0];
    close_at_origin(origin_port, &user, id).await;
    edge.within_a_second(&counts, &user, WS, |now| now["data"]["open"] == open - 1)
        .await;

    // A live event goes out only once the edge shows the change: a client that rereads
    // through the edge on the event reads the write, every time.
    let mut events = Events::open(origin_port, &user).await;
    for id in open_contacts(&db, 10).await {
        let open = edge.open_once_cached(&counts, &user).await;
        let written_ms = chrono::Utc::now().timestamp_millis();
        close_at_origin(origin_port, &user, id).await;
        events.next_since("counts", written_ms).await;
        let (_, reread) = edge.get(&counts, &user, WS).await;
        assert_eq!(
            reread["data"]["open"],
            open - 1,
            "reread on the event: {reread}"
        );
    }
    // An open stream would hold the origin's graceful stop below.
    drop(events);

    // Message history: a conversation's pages are cached at the edge; a message posted
    // through the origin reaches the head page within a second, while older pages stay
    // cached (a new message moves only the head's generation). Another workspace's token
    // reads none of it.
    let conversation: i64 = sqlx::query_scalar(
        "SELECT id FROM conversations WHERE workspace_id = $1 ORDER BY id LIMIT 1",
    )
    .bind(WS)
    .fetch_one(&db)
    .await
    .expect("a conversation");
    let head = format!("/api/conversations/{conversation}/messages?limit=10");
    let (_, head_miss) = edge.get(&head, &user, WS).await;
    let (_, head_hit) = edge.get(&head, &user, WS).await;
    assert_eq!(head_miss["data"]["_cache"]["status"], "MISS", "{head_miss}");
    assert_eq!(head_hit["data"]["_cache"]["source"], "cloudflare_kv");
    assert_eq!(
        payload(&head_hit),
        payload(&origin_get(origin_port, &head, &user).await)
    );
    let before = head_hit["data"]["pagination"]["next_cursor"]
        .as_str()
        .expect("an older page");
    let older = format!("/api/conversations/{conversation}/messages?limit=10&before={before}");
    let (_, older_miss) = edge.get(&older, &user, WS).await;
    let (_, older_hit) = edge.get(&older, &user, WS).await;
    assert_eq!(older_miss["data"]["_cache"]["status"], "MISS");
    assert_eq!(older_hit["data"]["_cache"]["status"], "HIT");
    let posted = post_message(origin_port, conversation, &user, "on its way").await;
    edge.within_a_second(&head, &user, WS, |now| {
        now["data"]["messages"][0]["id"] == posted["data"]["id"]
    })
    .await;
    let (_, older_kept) = edge.get(&older, &user, WS).await;
    assert_eq!(older_kept["data"]["_cache"]["status"], "HIT");
    assert_eq!(payload(&older_kept), payload(&older_hit));

    // A message touches its contact's activity: an in-place edit, which the edge takes as
    // the origin does. Its contact is active already (the message above), so no count
    // moves and the counts stay cached; a page of its board not showing it stays cached;
    // the page showing it shows its new activity within a second.
    let (contact, board, rank): (i64, i64, i64) = sqlx::query_as(
        "SELECT c.id, c.board_id, (SELECT count(*) FROM contacts o WHERE o.board_id = c.board_id \
           AND NOT o.archived AND (o.created_at, o.id) > (c.created_at, c.id)) \
         FROM conversations v JOIN contacts c ON c.id = v.contact_id WHERE v.id = $1",
    )
    .bind(conversation)
    .fetch_one(&db)
    .await
    .expect("the conversation's contact");
    // Every change of the message above taken by the edge first (the outbox is empty).
    let deadline = Instant::now() + Duration::from_secs(5);
    while origin_get(origin_port, "/api/cache-settings/status", &admin_token()).await["data"]
        ["edgePush"]["outboxDepth"]
        != 0
    {
        assert!(Instant::now() < deadline, "the outbox never drained");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let page_of = |page: i64| format!("/api/boards/{board}/contacts?per_page=50&page={page}");
    let (showing, other) = (
        page_of(rank / 50 + 1),
        page_of(if rank < 50 { 2 } else { 1 }),
    );
    let counts = format!("/api/workspaces/{WS}/counts");
    let mut cached = Vec::new();
    for path in [&showing, &other, &counts] {
        cached.push(
            edge.within_a_second(path, &user, WS, |now| {
                now["data"]["_cache"]["status"] == "HIT"
            })
            .await,
        );
    }
    let shows = |page: &Value| {
        page["data"]["contacts"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["id"] == contact).cloned())
    };
    let before = shows(&cached[0]).expect("the page shows the contact");
    assert!(shows(&cached[1]).is_none(), "the other page does not");
    post_message(origin_port, conversation, &user, "touched").await;
    edge.within_a_second(&showing, &user, WS, |now| {
        shows(now).is_some_and(|c| c["last_activity_at"] != before["last_activity_at"])
    })
    .await;
    for (path, held) in [(&other, &cached[1]), (&counts, &cached[2])] {
        let (_, now) = edge.get(path, &user, WS).await;
        assert_eq!(now["data"]["_cache"]["status"], "HIT", "{path}: {now}");
        assert_eq!(payload(&now), payload(held), "{path}");
    }

    // A hundred readers of the counts past their TTL (2 s here): each is answered from KV
    // at once (STALE, or HIT once the refill landed), and the isolate refills the entry
    // once, not once per reader.
    let set_ttl = |secs: u32| {
        reqwest::Client::new()
            .post(format!(
                "http://127.0.0.1:{origin_port}/api/cache-settings/workspace/{WS}/settings"
            ))
            .bearer_auth(admin_token())
            .json(&json!({"cacheConfig": {"contactCountsTTL": secs}}))
            .send()
    };
    assert_eq!(set_ttl(2).await.expect("settings").status(), StatusCode::OK);
    edge.within_a_second(&counts, &user, WS, |now| {
        now["data"]["_cache"]["status"] == "MISS"
    })
    .await;
    edge.within_a_second(&counts, &user, WS, |now| {
        now["data"]["_cache"]["status"] == "HIT"
    })
    .await;
    // Waiting out the TTL is the point here: past it, the entry is stale.
    tokio::time::sleep(Duration::from_millis(3_100)).await;
    let refills = || async {
        let metrics = edge.metrics().await;
        metrics["refills"]["started"].as_u64().expect("refills")
    };
    let before = refills().await;
    let started = Instant::now();
    let mut readers = tokio::task::JoinSet::new();
    for _ in 0..100 {
        let (http, url, user) = (
            edge.http.clone(),
            format!("{}{counts}", edge.base),
            user.clone(),
        );
        readers.spawn(async move {
            let r = http
                .get(url)
                .bearer_auth(user)
                .header("X-Workspace-ID", WS)
                .send()
                .await
                .expect("read");
            assert_eq!(r.status(), StatusCode::OK);
            let body: Value = r.json().await.expect("json");
            body["data"]["_cache"]["status"].as_str().map(str::to_owned)
        });
    }
    let statuses = readers.join_all().await;
    let took = started.elapsed();
    assert!(
        statuses
            .iter()
            .all(|s| matches!(s.as_deref(), Some("STALE" | "HIT"))),
        "{statuses:?}"
    );
    assert!(statuses.iter().any(|s| s.as_deref() == Some("STALE")));
    let started_refills = refills().await - before;
    assert!(
        started_refills >= 1 && started_refills <= 1 + took.as_secs(),
        "{started_refills} refills for 100 readers in {took:?}"
    );
    assert_eq!(
        set_ttl(300).await.expect("settings").status(),
        StatusCode::OK
    );

    // The workspace's object keeps the counters of the 40 conversations with messages
    // last (this test's setting): three hundred conversations later it holds no more, and
    // the conversations it folded away are never served from before the fold.
    let held_head = edge
        .within_a_second(&head, &user, WS, |now| {
            now["data"]["_cache"]["status"] == "HIT"
        })
        .await;
    let mut held = Vec::new();
    for i in 0..300 {
        let r = reqwest::Client::new()
            .post(format!("{}/internal/changes", edge.base))
            .header("X-Internal-Key", PUSH_KEY)
            .json(&json!({"workspaceId": WS, "conversation": [1_000_000 + i, "appended"]}))
            .send()
            .await
            .expect("push");
        assert_eq!(r.status(), StatusCode::OK);
        let r: Value = r.json().await.expect("json");
        held.push(r["data"]["countersHeld"].as_u64().expect("countersHeld"));
    }
    let most = held.iter().max().copied().unwrap_or(0);
    assert!(
        most <= held[0] + 2 * 40 + 2,
        "the object grew from {} to {most} counters",
        held[0]
    );
    // Its answers carry what the reads' keys and the bumps name, not its table.
    let largest = edge.metrics().await["generations"]["largest_answer"]
        .as_u64()
        .expect("largest_answer");
    assert!(
        largest > 0 && largest < most / 2,
        "an answer of {largest} counters from an object of {most}"
    );
    let (_, after_fold) = edge.get(&head, &user, WS).await;
    assert_eq!(payload(&after_fold), payload(&held_head));
    let later = post_message(origin_port, conversation, &user, "after the fold").await;
    edge.within_a_second(&head, &user, WS, |now| {
        now["data"]["messages"][0]["id"] == later["data"]["id"]
    })
    .await;
    // An edit (an admin's: the seeded message is someone else's) reaches every page of
    // its conversation at the edge, the older ones too.
    let edited_id = &older_hit["data"]["messages"][2]["id"];
    let edited = reqwest::Client::new()
        .patch(format!(
            "http://127.0.0.1:{origin_port}/api/workspaces/{WS}/conversations/{conversation}/messages/{edited_id}"
        ))
        .bearer_auth(admin_token())
        .json(&json!({"body": "edited at the origin"}))
        .send()
        .await
        .expect("edit");
    assert_eq!(edited.status(), StatusCode::OK);
    edge.within_a_second(&older, &user, WS, |now| {
        now["data"]["messages"][2]["body"] == "edited at the origin"
    })
    .await;
    let deleted = reqwest::Client::new()
        .delete(format!(
            "http://127.0.0.1:{origin_port}/api/workspaces/{WS}/conversations/{conversation}/messages/{edited_id}"
        ))
        .bearer_auth(admin_token())
        .send()
        .await
        .expect("delete");
    assert_eq!(deleted.status(), StatusCode::OK);
    // The delete leaves a tombstone in place, at the edge too.
    edge.within_a_second(&older, &user, WS, |now| {
        let tombstone = &now["data"]["messages"][2];
        &tombstone["id"] == edited_id
            && tombstone["body"].is_null()
            && tombstone["deleted_by"] == "admin"
    })
    .await;
    // Message search through the edge, cached with the search feature: a message posted
    // at the origin is found by the next search within a second, and a search none of its
    // words can match is a hit again as soon as the origin vouches for the edge (the
    // origin's tests show its key did not move); another workspace's search is refused.
    edge.open_once_cached(&counts, &user).await;
    let on = reqwest::Client::new()
        .post(format!(
            "http://127.0.0.1:{origin_port}/api/cache-settings/workspace/{WS}/settings"
        ))
        .bearer_auth(admin_token())
        .json(&json!({"features": {"search": true}}))
        .send()
        .await
        .expect("settings");
    assert_eq!(on.status(), StatusCode::OK);
    // The settings reach the edge (as a change of the whole workspace) first.
    edge.within_a_second(&counts, &user, WS, |now| {
        now["data"]["_cache"]["status"] == "MISS"
    })
    .await;
    let quiet = format!("/api/workspaces/{WS}/messages/search?q=screenshot");
    let parcel = format!("/api/workspaces/{WS}/messages/search?q=parcel");
    for path in [&quiet, &parcel] {
        edge.get(path, &user, WS).await;
        edge.within_a_second(path, &user, WS, |now| {
            now["data"]["_cache"]["status"] == "HIT"
        })
        .await;
    }
    let (_, quiet_hit) = edge.get(&quiet, &user, WS).await;
    assert!(!quiet_hit["data"]["hits"]
        .as_array()
        .expect("hits")
        .is_empty());
    let said = post_message(
        origin_port,
        conversation,
        &user,
        "Your parcel left the depot",
    )
    .await;
    let found = edge
        .within_a_second(&parcel, &user, WS, |now| {
            now["data"]["hits"][0]["message"]["id"] == said["data"]["id"]
        })
        .await;
    assert_eq!(
        found["data"]["hits"][0]["snippet"],
        "Your <mark>parcel</mark> left the depot"
    );
    let quiet_kept = edge
        .within_a_second(&quiet, &user, WS, |now| {
            now["data"]["_cache"]["status"] == "HIT"
        })
        .await;
    assert_eq!(payload(&quiet_kept), payload(&quiet_hit));
    let (status, _) = edge
        .get(
            &format!("/api/workspaces/{OTHER_WS}/messages/search?q=parcel"),
            &user,
            WS,
        )
        .await;
    assert!(status.is_client_error(), "{status}");
    let (status, refused) = edge
        .get(&format!("{parcel}&cursor=forged"), &user, WS)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    assert_eq!(refused["error"]["code"], "invalid_cursor");

    let (status, refused) = edge
        .get(&format!("{head}&before={before}x"), &user, WS)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    assert_eq!(refused["error"]["code"], "invalid_cursor");
    let (status, refused) = edge
        .get(
            &format!("/api/conversations/{conversation}/messages?limit=0"),
            &user,
            WS,
        )
        .await;
    assert_eq!(
        (status, refused["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_limit"))
    );
    let outsider = token("user_3", &[OTHER_WS]);
    let (status, _) = edge.get(&head, &outsider, WS).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) = edge.get(&head, &outsider, OTHER_WS).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    // With message history off, saved at the origin, the edge keeps nothing of it.
    let off = reqwest::Client::new()
        .post(format!(
            "http://127.0.0.1:{origin_port}/api/cache-settings/workspace/{WS}/settings"
        ))
        .bearer_auth(admin_token())
        .json(&json!({"features": {"messageHistory": false}}))
        .send()
        .await
        .expect("settings");
    assert_eq!(off.status(), StatusCode::OK);
    edge.within_a_second(&head, &user, WS, |now| {
        now["data"]["_cache"]["status"] == "BYPASS"
    })
    .await;
    let (_, still) = edge.get(&head, &user, WS).await;
    assert_eq!(still["data"]["_cache"]["status"], "BYPASS");

    // Each secret has one job: the read key the worker holds pushes nothing, the push
    // keys (the current one and, during a rotation, the previous) are taken.
    let push = |key: &'static str| {
        edge.http
            .post(format!("{}/internal/changes", edge.base))
            .header("X-Internal-Key", key)
            .json(&json!({"workspaceId": WS, "boards": [boards[1]]}))
            .send()
    };
    assert_eq!(
        push(INTERNAL_KEY).await.expect("push").status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        push(OLD_PUSH_KEY).await.expect("push").status(),
        StatusCode::OK
    );

    // The generations live in one Durable Object per workspace: concurrent bumps at one
    // location all take effect, each seeing a new value of its own (none lost or merged).
    // A push the local runtime drops under this load (a reset connection, a retryable
    // 503) is sent again, as the origin's outbox does; only acknowledged bumps count.
    let field = format!("b{}", boards[1]);
    let mut pushes = tokio::task::JoinSet::new();
    for _ in 0..1000 {
        let (http, url) = (edge.http.clone(), format!("{}/internal/changes", edge.base));
        let (board, field) = (boards[1], field.clone());
        pushes.spawn(async move {
            let mut failures = Vec::new();
            while failures.len() < 20 {
                let sent = http
                    .post(&url)
                    .header("X-Internal-Key", PUSH_KEY)
                    .json(&json!({"workspaceId": WS, "boards": [board]}))
                    .send()
                    .await;
                let failure = match sent {
                    Ok(p) if p.status() != StatusCode::SERVICE_UNAVAILABLE => {
                        assert_eq!(p.status(), StatusCode::OK);
                        let body: Value = p.json().await.expect("json");
                        return body["data"]["generations"][&field]
                            .as_u64()
                            .expect("the board's new generation");
                    }
                    Ok(p) => p.text().await.unwrap_or_default(),
                    Err(e) => e.to_string(),
                };
                failures.push(failure);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            panic!("a push never went through: {failures:?}");
        });
    }
    let mut seen = pushes.join_all().await;
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(seen.len(), 1000, "a bump was lost or merged");
    let (one, two) = tokio::join!(
        invalidate(json!({"boardId": boards[0], "action": "contact_updated"})),
        invalidate(json!({"boardId": boards[0], "action": "contact_moved"}))
    );
    let mut both = Vec::new();
    for answer in [one, two] {
        let answer = answer.expect("invalidate");
        assert_eq!(answer.status(), StatusCode::OK);
        let body: Value = answer.json().await.expect("json");
        both.push(body["data"]["generations"][format!("b{}", boards[0])].clone());
    }
    assert_ne!(
        both[0], both[1],
        "two concurrent invalidations both took effect"
    );

    // An edge down for 30 s still holds the counts cached before the outage, but the
    // origin's last word that it had every change is 30 s old: the first read after its
    // return goes through to the origin, fresh, and hits come back once the outbox (which
    // tries at most 2 s apart) has delivered every change and said so.
    let open = edge.open_once_cached(&counts, &user).await;
    drop(wrangler);
    let ids = open_contacts(&db, 3).await;
    for id in &ids {
        close_at_origin(origin_port, &user, *id).await;
    }
    tokio::time::sleep(Duration::from_secs(30)).await;
    wrangler = start_wrangler_at(port, origin_port, &vars, &state_dir);
    wait_ok(&format!("{}/health", edge.base), Duration::from_secs(120)).await;
    let (_, first) = edge.get(&counts, &user, WS).await;
    assert_eq!(first["data"]["open"], open - ids.len() as i64, "{first}");
    wait_edge_ready(&edge.base, Duration::from_secs(10)).await;
    edge.within_a_second(&counts, &user, WS, |now| {
        now["data"]["_cache"]["status"] == "HIT" && now["data"]["open"] == open - ids.len() as i64
    })
    .await;

    // Redis losing the outbox (evicted, or restarted empty) may lose changes the edge never
    // heard of: the outbox comes back with a new incarnation, and the edge starts over, so
    // no entry it stored before is served as a hit again.
    let held = edge.open_once_cached(&counts, &user).await;
    let outbox = KeySpace::new(&namespace).expect("namespace").edge_outbox();
    let deleted = std::process::Command::new("redis-cli")
        .args(["-u", &redis_url(), "DEL", &outbox])
        .stdout(std::process::Stdio::null())
        .status()
        .expect("redis-cli");
    assert!(deleted.success());
    // The edge drops its entries once the outbox is lost.
    let missed = edge
        .within(Duration::from_secs(5), &counts, &user, WS, |now| {
            now["data"]["_cache"]["status"] == "MISS"
        })
        .await;
    assert_eq!(missed["data"]["open"], held);
    edge.within_a_second(&counts, &user, WS, |now| {
        now["data"]["_cache"]["status"] == "HIT"
    })
    .await;

    // A location that cannot read the generations (here: the objects' storage is broken)
    // does not guess: the counts it holds in KV are older than a write it missed, and it
    // asks the origin instead of serving them.
    let open = edge.open_once_cached(&counts, &user).await;
    drop(wrangler);
    let id = open_contacts(&db, 1).await[0];
    close_at_origin(origin_port, &user, id).await;
    let broken = break_generations(&state_dir);
    wrangler = start_wrangler_at(port, origin_port, &vars, &state_dir);
    wait_ok(&format!("{}/health", edge.base), Duration::from_secs(120)).await;
    let (status, unread) = edge.get(&counts, &user, WS).await;
    assert_eq!(status, StatusCode::OK, "{unread}");
    assert_eq!(unread["data"]["_cache"]["status"], "BYPASS", "{unread}");
    assert_eq!(unread["data"]["open"], open - 1, "{unread}");
    drop(wrangler);
    repair_generations(broken);
    wrangler = start_wrangler_at(port, origin_port, &vars, &state_dir);
    wait_ok(&format!("{}/health", edge.base), Duration::from_secs(120)).await;
    // The change made while the objects were broken reaches the edge.
    edge.within(Duration::from_secs(45), &counts, &user, WS, |now| {
        now["data"]["open"] == open - 1 && now["data"]["_cache"]["status"] == "HIT"
    })
    .await;

    // A member past its share of the workspace's requests: the origin sheds its edge
    // misses (429), and the edge, holding nothing to stand in, passes the wait on.
    let rate = |per_user: Value| async move {
        let saved = reqwest::Client::new()
            .post(format!(
                "http://127.0.0.1:{origin_port}/api/cache-settings/workspace/{WS}/settings"
            ))
            .bearer_auth(admin_token())
            .json(&json!({"rateLimits": {"requestsPerUserPerMinute": per_user}}))
            .send()
            .await
            .expect("settings");
        assert_eq!(saved.status(), StatusCode::OK);
    };
    edge.open_once_cached(&counts, &user).await;
    rate(json!(2)).await;
    // The settings reach the edge (as a change of the whole workspace) before the member
    // spends its share.
    edge.within_a_second(&counts, &user, WS, |now| {
        now["data"]["_cache"]["status"] == "MISS"
    })
    .await;
    let greedy = token("user_11", &[WS]);
    let held = edge
        .within_a_second(&counts, &greedy, WS, |now| {
            now["data"]["_cache"]["status"] == "HIT"
        })
        .await;
    let mut shed = None;
    for n in 1..=6 {
        let r = edge
            .http
            .get(format!(
                "{}/api/boards/{}/contacts?per_page=3&page={n}",
                edge.base, boards[0]
            ))
            .bearer_auth(&greedy)
            .header("X-Workspace-ID", WS)
            .send()
            .await
            .expect("request");
        if r.status() == StatusCode::TOO_MANY_REQUESTS {
            shed = Some(r);
            break;
        }
        assert_eq!(r.status(), StatusCode::OK);
    }
    let shed = shed.expect("the origin sheds a member past its share");
    let wait = shed
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().expect("ascii").to_owned());
    assert!(wait.is_some_and(|w| w.parse::<u64>().is_ok_and(|s| s >= 1)));
    let body: Value = shed.json().await.expect("a JSON error");
    assert_eq!(body["error"]["code"], "rate_limited");
    // The same member once the edge cannot hear the origins (their pushes refused, so no
    // drained mark vouches for what KV holds): its read goes to the origin, which sheds it,
    // and the edge stands in with what it holds, marked STALE, never passed off as fresh.
    drop(wrangler);
    let deaf: Vec<(&str, &str)> = vars
        .iter()
        .map(|&(name, value)| match name {
            "EDGE_PUSH_KEY" | "EDGE_PUSH_KEY_PREVIOUS" => (name, "not-the-origins-push-key"),
            _ => (name, value),
        })
        .collect();
    wrangler = start_wrangler_at(port, origin_port, &deaf, &state_dir);
    wait_ok(&format!("{}/health", edge.base), Duration::from_secs(120)).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let stood_in = loop {
        let r = edge
            .http
            .get(format!("{}{counts}", edge.base))
            .bearer_auth(&greedy)
            .header("X-Workspace-ID", WS)
            .send()
            .await
            .expect("request");
        assert_eq!(
            r.status(),
            StatusCode::OK,
            "a held answer stands in for the 429"
        );
        let header = r.headers().get("x-cache-status").cloned();
        let body: Value = r.json().await.expect("json");
        assert_ne!(
            body["data"]["_cache"]["status"], "HIT",
            "unvouched for: {body}"
        );
        if body["data"]["_cache"]["status"] == "STALE" {
            assert_eq!(header.as_ref().map(|v| v.as_bytes()), Some(&b"STALE"[..]));
            break body;
        }
        assert!(
            Instant::now() < deadline,
            "the shed read was never stood in for: {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(payload(&stood_in), payload(&held));
    drop(wrangler);
    wrangler = start_wrangler_at(port, origin_port, &vars, &state_dir);
    wait_ok(&format!("{}/health", edge.base), Duration::from_secs(120)).await;
    rate(Value::Null).await;
    wait_edge_ready(&edge.base, Duration::from_secs(10)).await;

    // With the origin stopped, a cached key is served stale and an uncached one is a 503.
    let short_ttl = reqwest::Client::new()
        .post(format!(
            "http://127.0.0.1:{origin_port}/api/cache-settings/workspace/{WS}/settings"
        ))
        .bearer_auth(admin_token())
        .json(&json!({"cacheConfig": {"contactCountsTTL": 2}}))
        .send()
        .await
        .expect("settings");
    assert_eq!(short_ttl.status(), StatusCode::OK);
    // The settings reach the edge as a change of the whole workspace.
    edge.within_a_second(&counts, &user, WS, |now| {
        now["data"]["_cache"]["status"] == "MISS"
    })
    .await;
    let other_user = token("user_7", &[WS]);
    let (_, fresh) = edge.get(&counts, &other_user, WS).await;
    assert_eq!(fresh["data"]["_cache"]["status"], "MISS");
    origin.stop().await;

    let deadline = Instant::now() + Duration::from_secs(10);
    let stale = loop {
        let (status, body) = edge.get(&counts, &other_user, WS).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        if body["data"]["_cache"]["status"] == "STALE" {
            break body;
        }
        assert!(Instant::now() < deadline, "never served stale: {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(payload(&stale), payload(&fresh));
    // A key nothing holds: a 503 JSON error with Retry-After, never an exception page.
    let miss = edge
        .http
        .get(format!("{}{counts}", edge.base))
        .bearer_auth(token("user_8", &[WS]))
        .header("X-Workspace-ID", WS)
        .send()
        .await
        .expect("request");
    assert_eq!(miss.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        miss.headers().get("retry-after").map(|v| v.as_bytes()),
        Some(&b"5"[..])
    );
    let body: Value = miss.json().await.expect("a JSON error");
    assert_eq!(body["success"], false);
    assert_eq!(body["error"]["code"], "origin_unavailable");

    // An invalidation the origin cannot take is a retryable 503 and changes nothing here.
    let refused = invalidate(json!({"boardId": boards[0], "action": "contact_updated"}))
        .await
        .expect("invalidate");
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    let (_, still) = edge.get(&counts, &other_user, WS).await;
    assert_eq!(still["data"]["_cache"]["status"], "STALE");
    drop(wrangler);
}

/// The generations objects run in a `wrangler dev` of their own, which the edge reaches
/// through wrangler's dev registry, so they can be taken away from a running edge.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_its_objects_away_the_edge_serves_what_it_holds_as_stale_and_asks_the_origin_for_the_rest(
) {
    let db = database().await;
    let board: i64 = sqlx::query_scalar("SELECT min(id) FROM boards WHERE workspace_id = $1")
        .bind(WS)
        .fetch_one(&db)
        .await
        .expect("a board");
    let namespace = format!("e{}", random_suffix());
    let port = free_port();
    let origin = Origin::start(&db, port, &namespace).await;
    let dir = std::env::temp_dir().join(format!("edgecache-split-{}", random_suffix()));
    std::fs::create_dir_all(&dir).expect("split dir");
    let build = e2e::built_worker();
    let configs = [
        (
            "objects.toml",
            worker_config(&build, "edgecache-objects", Objects::Own),
        ),
        (
            "front.toml",
            worker_config(&build, "edgecache-front", Objects::In("edgecache-objects")),
        ),
    ];
    for (name, config) in &configs {
        std::fs::write(dir.join(name), config).expect("config");
    }
    let vars = [
        ("JWT_SECRET", SECRET),
        ("INTERNAL_API_KEY", INTERNAL_KEY),
        ("EDGE_PUSH_KEY", PUSH_KEY),
        ("CACHE_NAMESPACE", &namespace),
        // Counters are asked for again after 100 ms, so the objects' absence is met soon.
        ("EDGE_GENERATION_MAX_AGE_MS", "100"),
    ];
    let start = |config: &str, port: u16| {
        let mut command = wrangler_command(
            port,
            origin.port,
            &vars,
            &dir.join(format!("{config}.state")),
        );
        // Its own inspector port: the default one is taken by any edge started beside it.
        command
            .args(["--inspector-port", &free_port().to_string()])
            .arg("--config")
            .arg(dir.join(config))
            .env("WRANGLER_REGISTRY_PATH", dir.join("registry"));
        Group::spawn(command).expect("wrangler dev starts")
    };
    let objects_port = free_port();
    let objects = start("objects.toml", objects_port);
    wait_ok(
        &format!("http://127.0.0.1:{objects_port}/health"),
        Duration::from_secs(300),
    )
    .await;
    let _front = start("front.toml", port);
    let edge = Edge {
        base: format!("http://127.0.0.1:{port}"),
        http: reqwest::Client::new(),
    };
    wait_edge_ready(&edge.base, Duration::from_secs(120)).await;
    let user = token("user_3", &[WS]);
    let counts = format!("/api/workspaces/{WS}/counts");
    let page = format!("/api/boards/{board}/contacts?filter=open&per_page=5");
    let mut held = Vec::new();
    for path in [&counts, &page] {
        edge.get(path, &user, WS).await;
        let (status, hit) = edge.get(path, &user, WS).await;
        assert_eq!(status, StatusCode::OK, "{hit}");
        assert_eq!(hit["data"]["_cache"]["status"], "HIT", "{hit}");
        held.push(payload(&hit));
    }

    // The objects gone, what the edge holds is served STALE, as it was, once the isolate's
    // copy of the counters is past its age.
    drop(objects);
    for (path, was) in [&counts, &page].into_iter().zip(&held) {
        let stale = edge
            .within(Duration::from_secs(5), path, &user, WS, |now| {
                now["data"]["_cache"]["status"] != "HIT"
            })
            .await;
        assert_eq!(stale["data"]["_cache"]["status"], "STALE", "{stale}");
        assert_eq!(stale["data"]["_cache"]["source"], "cloudflare_kv");
        assert_eq!(&payload(&stale), was);
    }

    // A write the edge cannot record: what it holds is never served as fresh, and what it
    // does not hold comes from the origin, with the write.
    let closed = open_contacts(&db, 1).await[0];
    close_at_origin(origin.port, &user, closed).await;
    for _ in 0..5 {
        let (_, now) = edge.get(&counts, &user, WS).await;
        assert_eq!(now["data"]["_cache"]["status"], "STALE", "{now}");
    }
    let open: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM contacts WHERE workspace_id = $1 AND NOT archived AND status = 'open'",
    )
    .bind(WS)
    .fetch_one(&db)
    .await
    .expect("open");
    assert_eq!(held[0]["open"], open + 1, "the write closed one");
    let unheld = format!("/api/boards/{board}/contacts?filter=open&per_page=6");
    let (status, asked) = edge.get(&unheld, &user, WS).await;
    assert_eq!(status, StatusCode::OK, "{asked}");
    assert_eq!(asked["data"]["_cache"]["status"], "BYPASS", "{asked}");
    let ids = |answer: &Value| -> Vec<i64> {
        answer["data"]["contacts"]
            .as_array()
            .expect("contacts")
            .iter()
            .filter_map(|c| c["id"].as_i64())
            .collect()
    };
    assert!(!ids(&asked).contains(&closed), "{asked}");
    assert_eq!(ids(&asked).len(), 6);

    // The objects back, the origin's pending change reaches the edge, which is fresh again.
    let objects = start("objects.toml", objects_port);
    wait_ok(
        &format!("http://127.0.0.1:{objects_port}/health"),
        Duration::from_secs(120),
    )
    .await;
    let fresh = edge
        .within(Duration::from_secs(30), &counts, &user, WS, |now| {
            now["data"]["_cache"]["status"] == "HIT"
        })
        .await;
    assert_eq!(fresh["data"]["open"], open, "{fresh}");
    drop(objects);
    origin.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}
