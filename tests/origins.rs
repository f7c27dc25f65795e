//! Origins built in release mode, run as processes of their own on loopback ports with
//! the layers a run asks for; shared by the benchmark and the reliability harnesses.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use origin::auth::{issue, Claims};
use shared::cursor::CursorKey;
use shared::settings::MAX_RATE_PER_MIN;

use crate::{free_port, root, wait_ok, Group};

pub const SECRET: &str = "bench-secret-bench-secret-bench-secret-01";
pub const INTERNAL_KEY: &str = "bench-internal-key-0001";
/// The key origins push changes to the edge with (never the read key).
pub const PUSH_KEY: &str = "bench-push-key-00001";

/// The key these origins sign cursors with (derived from `SECRET`, as theirs is).
pub fn cursor_key() -> CursorKey {
    CursorKey::from_token_secret(SECRET.as_bytes())
}

pub fn origin_binary() -> PathBuf {
    root().join("target/release/origin")
}

pub struct Origin {
    pub port: u16,
    process: Group,
}

impl Origin {
    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.process.id()
    }
}

/// Which layers an origin under test has.
pub struct Layers {
    pub l1_bytes: u64,
    pub redis: Option<String>,
    pub namespace: String,
}

pub async fn origin(database_url: &str, layers: &Layers) -> Origin {
    origin_with(database_url, layers, &[]).await
}

/// An origin with extra environment (`REQUEST_TIMEOUT_MS`, …) after the layers'.
pub async fn origin_with(database_url: &str, layers: &Layers, env: &[(&str, &str)]) -> Origin {
    origin_under(&[], database_url, layers, env).await
}

/// `origin_with`, run by `wrapper` (a program and its arguments, e.g. valgrind's).
pub async fn origin_under(
    wrapper: &[&str],
    database_url: &str,
    layers: &Layers,
    env: &[(&str, &str)],
) -> Origin {
    let port = free_port();
    let unlimited = MAX_RATE_PER_MIN.to_string();
    let mut command = match wrapper.split_first() {
        Some((program, args)) => {
            let mut command = Command::new(program);
            command.args(args).arg(origin_binary());
            command
        }
        None => Command::new(origin_binary()),
    };
    command
        .env("DATABASE_URL", database_url)
        .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .env("JWT_SECRET", SECRET)
        .env("INTERNAL_API_KEY", INTERNAL_KEY)
        .env("EDGE_PUSH_KEY", PUSH_KEY)
        .env("CACHE_NAMESPACE", &layers.namespace)
        .env("L1_MAX_BYTES", layers.l1_bytes.to_string())
        .env("SEED_DEMO_CONTACTS", "0")
        .env("RATE_LIMIT_REQUESTS_PER_MIN", &unlimited)
        .env("RATE_LIMIT_REQUESTS_PER_USER_PER_MIN", &unlimited)
        .env("RATE_LIMIT_SEARCHES_PER_USER_PER_MIN", &unlimited)
        .env("RATE_LIMIT_WRITES_PER_MIN", &unlimited)
        .env("RUST_LOG", "warn")
        .env_remove("REDIS_URL")
        .env_remove("DATABASE_READ_URL")
        .stdout(Stdio::null());
    if let Some(url) = &layers.redis {
        command.env("REDIS_URL", url);
    }
    command.envs(env.iter().copied());
    let process = Group::spawn(command).expect("origin starts (cargo build --release -p origin)");
    let origin = Origin { port, process };
    // A wrapped origin (valgrind) starts many times slower.
    let start = if wrapper.is_empty() { 30 } else { 180 };
    wait_ok(
        &format!("{}/api/cache-settings/health", origin.base()),
        Duration::from_secs(start),
    )
    .await;
    origin
}

/// A token of `SECRET` for `user` in `ws`, valid for as long as any run lasts.
pub fn token(user: &str, ws: &str, admin: bool) -> String {
    let claims = Claims {
        sub: user.into(),
        workspaces: vec![ws.into()],
        role: admin.then(|| "admin".into()),
        roles: Default::default(),
        exp: 4_000_000_000,
    };
    issue(SECRET.as_bytes(), &claims).expect("token")
}

/// The URL of database `name` on the server of `DATABASE_URL` (local default).
pub fn database_url(name: &str) -> String {
    let base = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    format!(
        "{}/{name}",
        base.rsplit_once('/').expect("url with a database").0
    )
}

/// Runs `statement` (CREATE or DROP DATABASE) on the server of `DATABASE_URL`.
pub async fn on_server(statement: &str) {
    let base = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let admin = sqlx::PgPool::connect(&base).await.expect("postgres");
    sqlx::query(statement)
        .execute(&admin)
        .await
        .unwrap_or_else(|e| panic!("{statement}: {e}"));
    admin.close().await;
}

/// Runs `origin` with `args` against the database at `url` (no Redis, errors only logged),
/// its output dropped; panics with `what` failed unless it succeeds.
fn run_origin(url: &str, args: &[String], what: &str) {
    let status = Command::new(origin_binary())
        .args(args)
        .env("DATABASE_URL", url)
        .env_remove("REDIS_URL")
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .status()
        .expect("origin");
    assert!(status.success(), "{what} failed");
}

/// Applies the migrations to the database at `url` (`origin migrate`).
pub fn migrate(url: &str) {
    run_origin(url, &["migrate".into()], &format!("migrating {url}"));
}

/// `origin seed` of one workspace into the database at `url`: contacts on boards, and
/// `history` conversations holding that many messages.
pub fn seed(url: &str, ws: &str, contacts: u32, boards: u32, history: (u32, u64)) {
    let args = [
        "seed".to_owned(),
        "--workspace".into(),
        ws.into(),
        "--contacts".into(),
        contacts.to_string(),
        "--boards".into(),
        boards.to_string(),
        "--conversations".into(),
        history.0.to_string(),
        "--messages".into(),
        history.1.to_string(),
    ];
    run_origin(url, &args, &format!("seeding {ws}"));
}

/// The workspace's boards, in order.
pub async fn boards(db: &sqlx::PgPool, ws: &str) -> Vec<i64> {
    sqlx::query_scalar("SELECT id FROM boards WHERE workspace_id = $1 ORDER BY id")
        .bind(ws)
        .fetch_all(db)
        .await
        .expect("boards")
}
