//! Spawning origins on port 0 and talking to them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use origin::auth::{issue, Claims};
use origin::config::{Config, Secret};
use origin::state::AppState;
use origin::store::postgres::PgStore;
use origin::store::{Seeded, Store};
use origin::Application;
use reqwest::{Response, StatusCode};
use serde_json::Value;
use shared::cursor::CursorKey;
use shared::keys::KeySpace;
use shared::WorkspaceId;
use sqlx::PgPool;

pub const SECRET: &str = "test-secret-test-secret-test-secret-0001";
pub const INTERNAL_KEY: &str = "edge-internal-key-for-tests";
/// The key changes are pushed to the edge with (never the read key).
pub const PUSH_KEY: &str = "edge-push-key-for-tests";
pub const WS: &str = "15213";
pub const OTHER_WS: &str = "15214";

pub struct TestApp {
    pub base: String,
    pub state: Arc<AppState>,
    pub http: reqwest::Client,
    pub db: PgPool,
    pub boards: Vec<i64>,
}

pub fn ws(id: &str) -> WorkspaceId {
    WorkspaceId::parse(id).expect("valid workspace id")
}

/// A namespace no other test uses, so tests share one Redis without meeting.
pub fn unique_namespace() -> String {
    let mut bytes = [0u8; 6];
    getrandom::fill(&mut bytes).expect("randomness");
    let suffix: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("t{suffix}")
}

pub fn test_config(namespace: &str) -> Config {
    let mut config = Config::from_env().expect("default configuration is valid");
    config.listen_addr = "127.0.0.1:0".parse().expect("address");
    config.jwt_secret = Some(Secret(SECRET.into()));
    config.internal_key = Some(Secret(INTERNAL_KEY.into()));
    config.key_space = KeySpace::new(namespace).expect("namespace");
    config.seed_demo_contacts = 0;
    config.redis_url = Some(redis_url());
    config
}

/// The suites' Redis: `REDIS_URL`, by default the local one.
pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// The key the test apps sign cursors with (derived from `SECRET`, as theirs is).
pub fn cursor_key() -> CursorKey {
    CursorKey::from_token_secret(SECRET.as_bytes())
}

/// The Postgres store over a test's pool.
pub fn pg(db: &PgPool) -> Arc<dyn Store> {
    Arc::new(PgStore::new(db.clone(), None, cursor_key()))
}

/// Seeds two small workspaces (the second one for isolation checks).
pub async fn seed_workspaces(db: &PgPool) -> Seeded {
    let store = pg(db);
    let seeded = store.seed(&ws(WS), 600, 2).await.expect("seed");
    store.seed(&ws(OTHER_WS), 300, 1).await.expect("seed other");
    seeded
}

impl TestApp {
    pub async fn spawn(db: PgPool) -> Self {
        let seeded = seed_workspaces(&db).await;
        Self::spawn_with(db, test_config(&unique_namespace()), seeded.boards).await
    }

    pub async fn spawn_with(db: PgPool, config: Config, boards: Vec<i64>) -> Self {
        let store = pg(&db);
        Self::spawn_on(db, store, config, boards).await
    }

    /// An origin on `store`; `db` is the Postgres the test inspects directly.
    pub async fn spawn_on(
        db: PgPool,
        store: Arc<dyn Store>,
        config: Config,
        boards: Vec<i64>,
    ) -> Self {
        let app = Application::build(config, store).await.expect("build");
        let base = format!("http://127.0.0.1:{}", app.port());
        let state = app.state();
        tokio::spawn(app.run_until(std::future::pending()));
        Self {
            base,
            state,
            http: reqwest::Client::new(),
            db,
            boards,
        }
    }

    /// A second instance on the same database and Redis namespace.
    pub async fn sibling(&self) -> Self {
        let mut config = self.state.config.clone();
        config.listen_addr = "127.0.0.1:0".parse().expect("address");
        Self::spawn_with(self.db.clone(), config, self.boards.clone()).await
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get(&self, path: &str, token: &str) -> Response {
        self.http
            .get(self.url(path))
            .bearer_auth(token)
            .header("X-Workspace-ID", WS)
            .send()
            .await
            .expect("request")
    }

    /// The Prometheus text of `/metrics` (it needs no token).
    pub async fn metrics(&self) -> String {
        self.http
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text")
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> Response {
        self.http
            .post(self.url(path))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .expect("request")
    }

    pub async fn counts(&self, token: &str) -> Value {
        data(
            self.get(&format!("/api/cache-settings/workspace/{WS}/counts"), token)
                .await,
        )
        .await
    }

    /// PATCHes a contact of the test workspace; the updated contact.
    pub async fn patch_contact(&self, id: i64, token: &str, body: Value) -> Value {
        let r = self
            .http
            .patch(self.url(&format!("/api/workspaces/{WS}/contacts/{id}")))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .expect("patch");
        data(r).await
    }

    /// The health data (no token).
    pub async fn health(&self) -> Value {
        let r = self
            .http
            .get(self.url("/api/cache-settings/health"))
            .send()
            .await
            .expect("request");
        data(r).await
    }

    pub fn db_queries(&self) -> u64 {
        self.state.cache.stats().db_queries()
    }
}

pub fn token_for(user: &str, workspaces: &[&str], admin: bool, exp_offset: i64) -> String {
    let exp = chrono::Utc::now().timestamp() + exp_offset;
    let claims = Claims {
        sub: user.into(),
        workspaces: workspaces.iter().map(|w| w.to_string()).collect(),
        role: admin.then(|| "admin".into()),
        roles: Default::default(),
        exp: u64::try_from(exp).unwrap_or(0),
    };
    issue(SECRET.as_bytes(), &claims).expect("token")
}

/// An admin of the test workspace, acting as `user_3`.
pub fn admin() -> String {
    token_for("user_3", &[WS], true, 3600)
}

/// A plain member of the test workspace.
pub fn member() -> String {
    token_for("user_3", &[WS], false, 3600)
}

/// The `data` of a success envelope; fails the test on anything else.
#[track_caller]
pub fn expect_success(status: StatusCode, body: &Value) -> Value {
    assert_eq!(status, StatusCode::OK, "unexpected answer: {body}");
    assert_eq!(body["success"], true, "{body}");
    body["data"].clone()
}

pub async fn data(response: Response) -> Value {
    let status = response.status();
    let body: Value = response.json().await.expect("json body");
    expect_success(status, &body)
}

/// The error code of an error envelope, after checking the status.
pub async fn error_code(response: Response, expected: StatusCode) -> String {
    let status = response.status();
    let body: Value = response.json().await.expect("every error is JSON");
    assert_eq!(status, expected, "{body}");
    assert_eq!(body["success"], false, "{body}");
    body["error"]["message"].as_str().expect("error message");
    body["error"]["code"]
        .as_str()
        .expect("error code")
        .to_owned()
}

/// Polls `probe` until it returns `Some`, failing after `limit`: for effects that are
/// asynchronous by design (pub/sub, NOTIFY, TTL expiry).
pub async fn eventually<T, F, Fut>(limit: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "condition not met within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Counts straight from SQL, written independently of the store's predicates.
pub async fn sql_count(db: &PgPool, predicate: &str) -> i64 {
    sqlx::query_scalar(&format!(
        "SELECT count(*) FROM contacts WHERE workspace_id = '{WS}' AND {predicate}"
    ))
    .fetch_one(db)
    .await
    .expect("count")
}

/// The ids of a page's contacts, in order.
pub fn page_ids(page: &Value) -> Vec<i64> {
    page["contacts"]
        .as_array()
        .expect("contacts")
        .iter()
        .map(|c| c["id"].as_i64().expect("id"))
        .collect()
}
