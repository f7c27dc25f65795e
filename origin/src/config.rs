//! Typed configuration from environment variables, validated once at start-up.
//! Every variable has a local default that works on a developer machine; secrets
//! are never logged (`Debug` hides them).

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use shared::cursor::CursorKey;
use shared::keys::KeySpace;
use shared::settings::{rate_in_bounds, MAX_RATE_PER_MIN};

#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(String);

/// A value that must not reach a log line.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// Where the truth lives: `DATABASE_URL` names Postgres; without it, an embedded SQLite
/// file under `DATA_DIR` lets the origin run with nothing installed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreConfig {
    Postgres {
        url: Secret,
        /// A read replica for cache fills; `None` reads the primary.
        read_url: Option<Secret>,
    },
    Sqlite {
        path: PathBuf,
    },
}

impl StoreConfig {
    fn from_settings(s: &Settings) -> Result<Self, ConfigError> {
        let read_url = set(&s.database_read_url).map(Secret);
        let store = match set(&s.database_url) {
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                Self::Postgres {
                    url: Secret(url),
                    read_url,
                }
            }
            Some(url) => match url
                .strip_prefix("sqlite://")
                .or(url.strip_prefix("sqlite:"))
            {
                Some(path) if !path.is_empty() => Self::Sqlite { path: path.into() },
                _ => {
                    return Err(ConfigError(
                        "DATABASE_URL must be postgres://… or sqlite:<path>".into(),
                    ))
                }
            },
            None => Self::Sqlite {
                path: s.data_dir.join("edgecache.sqlite3"),
            },
        };
        if matches!(store, Self::Sqlite { .. }) && set(&s.database_read_url).is_some() {
            return Err(ConfigError(
                "DATABASE_READ_URL needs a Postgres DATABASE_URL".into(),
            ));
        }
        Ok(store)
    }
}

/// The settings as read from the environment (or the same-named flags); `origin --help`
/// lists them with their defaults. README's "Configuration" says what each is for.
#[derive(Debug, Clone, clap::Args)]
pub struct Settings {
    /// Where the origin listens.
    #[arg(long, env = "LISTEN_ADDR", default_value = "127.0.0.1:8080")]
    listen_addr: SocketAddr,
    /// The store: postgres://… or sqlite:<path>; unset: embedded SQLite under DATA_DIR.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// Where the embedded store keeps its file when DATABASE_URL is unset.
    #[arg(long, env = "DATA_DIR", default_value = "data")]
    data_dir: PathBuf,
    /// A Postgres read replica for cache fills.
    #[arg(long, env = "DATABASE_READ_URL", hide_env_values = true)]
    database_read_url: Option<String>,
    /// L2 Redis (redis://, redis+cluster://, redis+sentinel://); unset or "off": L1 only.
    #[arg(long, env = "REDIS_URL", hide_env_values = true)]
    redis_url: Option<String>,
    /// HS256 key of bearer tokens (at least 32 bytes); unset: random per process.
    #[arg(long, env = "JWT_SECRET", hide_env_values = true)]
    jwt_secret: Option<String>,
    /// Where set, a token's `aud` must be this.
    #[arg(long, env = "JWT_AUDIENCE")]
    jwt_audience: Option<String>,
    /// Where set, a token's `iss` must be this.
    #[arg(long, env = "JWT_ISSUER")]
    jwt_issuer: Option<String>,
    /// The key the edge worker reads with, in X-Internal-Key (at least 16 bytes).
    #[arg(long, env = "INTERNAL_API_KEY", hide_env_values = true)]
    internal_api_key: Option<String>,
    /// The read key before the current one, still taken while the edge moves over.
    #[arg(long, env = "INTERNAL_API_KEY_PREVIOUS", hide_env_values = true)]
    internal_api_key_previous: Option<String>,
    /// The edge worker's base URL, to push every change to.
    #[arg(long, env = "EDGE_URL")]
    edge_url: Option<String>,
    /// The key changes are pushed to the edge with (not the read key).
    #[arg(long, env = "EDGE_PUSH_KEY", hide_env_values = true)]
    edge_push_key: Option<String>,
    /// Allows a plain-http EDGE_URL on another host (a private network).
    #[arg(long, env = "EDGE_URL_ALLOW_PLAINTEXT", default_value_t = false)]
    edge_url_allow_plaintext: bool,
    /// Prefix of every Redis key and channel.
    #[arg(long, env = "CACHE_NAMESPACE", default_value = "ec")]
    cache_namespace: String,
    /// L1 size bound in bytes; 0 turns L1 off.
    #[arg(long, env = "L1_MAX_BYTES", default_value_t = 256 * 1024 * 1024)]
    l1_max_bytes: u64,
    /// Postgres pool size.
    #[arg(long, env = "DB_MAX_CONNECTIONS", default_value_t = 20)]
    db_max_connections: u32,
    /// Cache fills and uncached reads one instance runs against the store at once; the
    /// others queue in the instance, where stale-if-slow can still answer them.
    #[arg(long, env = "DB_READ_CONCURRENCY", default_value_t = 8)]
    db_read_concurrency: u32,
    /// Searches no cache answers one instance runs at once for one workspace; past it a
    /// search is a 503 with Retry-After, so one workspace's searching never takes all of
    /// DB_READ_CONCURRENCY from the others' reads.
    #[arg(long, env = "SEARCH_CONCURRENCY_PER_WORKSPACE", default_value_t = 2)]
    search_concurrency_per_workspace: u32,
    /// How long a search may take before it is given up (a 503 with Retry-After).
    #[arg(long, env = "SEARCH_TIMEOUT_MS", default_value_t = 2_000)]
    search_timeout_ms: u64,
    /// Live changes each instance keeps per watched workspace for clients that reconnect.
    #[arg(long, env = "LIVE_BUFFER", default_value_t = 256)]
    live_buffer: usize,
    /// Event streams one instance serves per workspace at once.
    #[arg(long, env = "LIVE_MAX_CONNECTIONS", default_value_t = 2_000)]
    live_max_connections: usize,
    /// Of those, the streams one member may hold.
    #[arg(long, env = "LIVE_MAX_CONNECTIONS_PER_USER", default_value_t = 20)]
    live_max_connections_per_user: usize,
    /// How long a request waits for a database connection (ms).
    #[arg(long, env = "DB_ACQUIRE_TIMEOUT_MS", default_value_t = 500)]
    db_acquire_timeout_ms: u64,
    /// Per Redis operation (ms).
    #[arg(long, env = "REDIS_TIMEOUT_MS", default_value_t = 250)]
    redis_timeout_ms: u64,
    /// Request deadline (ms).
    #[arg(long, env = "REQUEST_TIMEOUT_MS", default_value_t = 10_000)]
    request_timeout_ms: u64,
    /// How long past its TTL a value may be served stale during an outage (s).
    #[arg(long, env = "STALE_GRACE_SECS", default_value_t = 3600)]
    stale_grace_secs: u64,
    /// How long a read with a stale value waits for a fresh one (ms).
    #[arg(long, env = "STALE_IF_SLOW_MS", default_value_t = 1000)]
    stale_if_slow_ms: u64,
    /// Longest an instance trusts its copy of the generations without Redis, and so the
    /// longest a write waits for the other instances to acknowledge its bump (ms).
    #[arg(long, env = "GENERATION_MAX_AGE_MS", default_value_t = 1000)]
    generation_max_age_ms: u64,
    /// Writes per user per workspace per minute.
    #[arg(long, env = "RATE_LIMIT_WRITES_PER_MIN", default_value_t = 60)]
    rate_limit_writes_per_min: u32,
    /// Requests per workspace per minute.
    #[arg(long, env = "RATE_LIMIT_REQUESTS_PER_MIN", default_value_t = 6000)]
    rate_limit_requests_per_min: u32,
    /// Requests per member of a workspace per minute (within the workspace's).
    #[arg(
        long,
        env = "RATE_LIMIT_REQUESTS_PER_USER_PER_MIN",
        default_value_t = 1200
    )]
    rate_limit_requests_per_user_per_min: u32,
    /// Searches per member of a workspace per minute that no cache answers.
    #[arg(
        long,
        env = "RATE_LIMIT_SEARCHES_PER_USER_PER_MIN",
        default_value_t = 120
    )]
    rate_limit_searches_per_user_per_min: u32,
    /// Demo contacts seeded on first start (0: none).
    #[arg(long, env = "SEED_DEMO_CONTACTS", default_value_t = 200_000)]
    seed_demo_contacts: u32,
}

/// An optional setting: a variable set to blanks counts as unset, as in a shell's
/// `VAR= command`.
impl Config {
    /// The keys the edge may read with: the current one and, during a rotation, the one
    /// before it.
    pub fn read_keys(&self) -> Vec<&str> {
        [&self.internal_key, &self.internal_key_previous]
            .into_iter()
            .flatten()
            .map(|k| k.0.as_str())
            .collect()
    }

    /// The key cursors are signed and checked with, derived from the token secret as the
    /// edge derives it. Commands that never serve (seeding, counter checks) may run without
    /// a token secret: they get a random key, never one anybody could derive.
    pub fn cursor_key(&self) -> CursorKey {
        match &self.jwt_secret {
            Some(secret) => CursorKey::from_token_secret(secret.0.as_bytes()),
            None => {
                let mut random = [0u8; 32];
                if let Err(e) = getrandom::fill(&mut random) {
                    tracing::error!(error = %e, "no randomness for a cursor key");
                }
                CursorKey::from_token_secret(&random)
            }
        }
    }
}

fn set(value: &Option<String>) -> Option<String> {
    value.clone().filter(|v| !v.trim().is_empty())
}

/// `Settings` alone, for what reads the environment without a command line (tests).
#[derive(clap::Parser)]
struct FromEnv {
    #[command(flatten)]
    settings: Settings,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub listen_addr: SocketAddr,
    pub store: StoreConfig,
    /// `None` runs with L1 and the store only.
    pub redis_url: Option<String>,
    /// HS256 key of the bearer tokens; `None` makes one up per process (local use only).
    pub jwt_secret: Option<Secret>,
    /// `aud` and `iss` a token must carry, where set.
    pub jwt_audience: Option<String>,
    pub jwt_issuer: Option<String>,
    /// The edge worker's read key; `None` disables internal-key access. It opens reads
    /// only (see `auth::Caller::person`), and is no push key.
    pub internal_key: Option<Secret>,
    /// The previous read key, accepted as well while a rotation goes on.
    pub internal_key_previous: Option<Secret>,
    /// The edge worker's base URL: every change is pushed to it (with `edge_push_key`).
    /// `None` leaves the edge to its TTLs and its own invalidations.
    pub edge_url: Option<String>,
    /// The key the edge takes pushes with; it reads nothing at the origin.
    pub edge_push_key: Option<Secret>,
    pub edge_url_allow_plaintext: bool,
    pub key_space: KeySpace,
    pub l1_max_bytes: u64,
    pub db_max_connections: u32,
    /// Store reads (fills, uncached reads) one instance runs at once.
    pub db_read_concurrency: u32,
    pub search_concurrency_per_workspace: u32,
    pub search_timeout: Duration,
    pub live_buffer: usize,
    pub live_max_connections: usize,
    pub live_max_connections_per_user: usize,
    pub db_acquire_timeout: Duration,
    pub redis_timeout: Duration,
    pub request_timeout: Duration,
    /// How long past its TTL a value is kept to be served stale when Postgres is down.
    pub stale_grace: Duration,
    /// How long a read with a stale value at hand waits for a fresh one before serving the
    /// stale one; at most half the request timeout, so stale always beats the 504.
    pub stale_if_slow: Duration,
    /// Upper bound on how long an instance trusts its copy of the generations without
    /// asking Redis, should a pub/sub message be lost.
    pub generation_max_age: Duration,
    /// Contact writes one user may make in one workspace per minute.
    pub writes_per_user_per_min: u32,
    /// Authenticated requests one workspace may make per minute (all users together).
    pub requests_per_workspace_per_min: u32,
    pub requests_per_user_per_min: u32,
    pub searches_per_user_per_min: u32,
    /// Contacts of the demo workspace seeded on first start; 0 seeds nothing.
    pub seed_demo_contacts: u32,
}

impl Config {
    /// The configuration from the environment alone.
    pub fn from_env() -> Result<Self, ConfigError> {
        let parsed = <FromEnv as clap::Parser>::try_parse_from(["origin"])
            .map_err(|e| ConfigError(e.to_string()))?;
        Self::from_settings(parsed.settings)
    }

    pub fn from_settings(s: Settings) -> Result<Self, ConfigError> {
        let config = Self {
            listen_addr: s.listen_addr,
            store: StoreConfig::from_settings(&s)?,
            redis_url: set(&s.redis_url).filter(|u| u != "off"),
            jwt_secret: set(&s.jwt_secret).map(Secret),
            jwt_audience: set(&s.jwt_audience),
            jwt_issuer: set(&s.jwt_issuer),
            internal_key: set(&s.internal_api_key).map(Secret),
            internal_key_previous: set(&s.internal_api_key_previous).map(Secret),
            edge_url: set(&s.edge_url),
            edge_push_key: set(&s.edge_push_key).map(Secret),
            edge_url_allow_plaintext: s.edge_url_allow_plaintext,
            key_space: KeySpace::new(&s.cache_namespace).map_err(|e| ConfigError(e.message))?,
            l1_max_bytes: s.l1_max_bytes,
            db_max_connections: s.db_max_connections,
            db_read_concurrency: s.db_read_concurrency,
            search_concurrency_per_workspace: s.search_concurrency_per_workspace,
            search_timeout: Duration::from_millis(s.search_timeout_ms),
            live_buffer: s.live_buffer,
            live_max_connections: s.live_max_connections,
            live_max_connections_per_user: s.live_max_connections_per_user,
            db_acquire_timeout: Duration::from_millis(s.db_acquire_timeout_ms),
            redis_timeout: Duration::from_millis(s.redis_timeout_ms),
            request_timeout: Duration::from_millis(s.request_timeout_ms),
            stale_grace: Duration::from_secs(s.stale_grace_secs),
            stale_if_slow: Duration::from_millis(s.stale_if_slow_ms),
            generation_max_age: Duration::from_millis(s.generation_max_age_ms),
            writes_per_user_per_min: s.rate_limit_writes_per_min,
            requests_per_workspace_per_min: s.rate_limit_requests_per_min,
            requests_per_user_per_min: s.rate_limit_requests_per_user_per_min,
            searches_per_user_per_min: s.rate_limit_searches_per_user_per_min,
            seed_demo_contacts: s.seed_demo_contacts,
        };
        config.validate()
    }

    fn validate(mut self) -> Result<Self, ConfigError> {
        self.stale_if_slow = self.stale_if_slow.min(self.request_timeout / 2);
        if let Some(secret) = &self.jwt_secret {
            if secret.0.len() < 32 {
                return Err(ConfigError("JWT_SECRET must be at least 32 bytes".into()));
            }
        }
        for (name, key) in [
            ("INTERNAL_API_KEY", &self.internal_key),
            ("INTERNAL_API_KEY_PREVIOUS", &self.internal_key_previous),
            ("EDGE_PUSH_KEY", &self.edge_push_key),
        ] {
            if key.as_ref().is_some_and(|k| k.0.len() < 16) {
                return Err(ConfigError(format!("{name} must be at least 16 bytes")));
            }
        }
        // One job per secret: a leaked push key must not read, a leaked read key not push.
        let push = self.edge_push_key.as_ref().map(|k| k.0.as_str());
        let reads = [&self.internal_key, &self.internal_key_previous];
        if push.is_some_and(|p| reads.iter().any(|r| r.as_ref().is_some_and(|r| r.0 == p))) {
            return Err(ConfigError(
                "EDGE_PUSH_KEY must differ from INTERNAL_API_KEY (each secret has one job)".into(),
            ));
        }
        if let Some(url) = &self.edge_url {
            if !self.edge_url_allow_plaintext && !shared::access::secure_or_local(url) {
                return Err(ConfigError(format!(
                    "EDGE_URL {url} must be https (or loopback; EDGE_URL_ALLOW_PLAINTEXT=true to allow)"
                )));
            }
        }
        // The limiter charges every request MAX_RATE_PER_MIN / limit cells (`limits.rs`), so
        // a larger limit would silently act as MAX_RATE_PER_MIN.
        for (name, per_min) in [
            ("RATE_LIMIT_WRITES_PER_MIN", self.writes_per_user_per_min),
            (
                "RATE_LIMIT_REQUESTS_PER_MIN",
                self.requests_per_workspace_per_min,
            ),
            (
                "RATE_LIMIT_REQUESTS_PER_USER_PER_MIN",
                self.requests_per_user_per_min,
            ),
            (
                "RATE_LIMIT_SEARCHES_PER_USER_PER_MIN",
                self.searches_per_user_per_min,
            ),
        ] {
            if !rate_in_bounds(per_min) {
                return Err(ConfigError(format!(
                    "{name} must be 1 to {MAX_RATE_PER_MIN}, got {per_min}"
                )));
            }
        }
        if self.live_buffer == 0 || self.live_max_connections == 0 {
            return Err(ConfigError(
                "LIVE_BUFFER and LIVE_MAX_CONNECTIONS must be at least 1".into(),
            ));
        }
        if self.db_read_concurrency == 0 || self.search_concurrency_per_workspace == 0 {
            return Err(ConfigError(
                "DB_READ_CONCURRENCY and SEARCH_CONCURRENCY_PER_WORKSPACE must be at least 1"
                    .into(),
            ));
        }
        if self.db_max_connections == 0 {
            return Err(ConfigError("DB_MAX_CONNECTIONS must be at least 1".into()));
        }
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    fn config(flags: &[&str]) -> Result<Config, ConfigError> {
        let args = std::iter::once("origin").chain(flags.iter().copied());
        let parsed = FromEnv::try_parse_from(args).map_err(|e| ConfigError(e.to_string()))?;
        Config::from_settings(parsed.settings)
    }

    #[test]
    fn the_push_key_is_no_read_key_and_a_remote_edge_needs_tls() {
        let (read, push) = ("read-key-0123456789", "push-key-0123456789");
        let edge = |url: &'static str, push: &'static str| {
            config(&[
                "--internal-api-key",
                read,
                "--edge-push-key",
                push,
                "--edge-url",
                url,
            ])
        };
        assert!(edge("https://edge.example", push).is_ok());
        assert!(edge("http://127.0.0.1:8787", push).is_ok());
        assert!(
            edge("https://edge.example", read).is_err(),
            "one job per secret"
        );
        let plain = edge("http://edge.example", push).expect_err("plain http elsewhere");
        assert!(plain.to_string().contains("https"), "{plain}");
        let allowed = config(&[
            "--edge-push-key",
            push,
            "--edge-url",
            "http://edge.internal",
            "--edge-url-allow-plaintext",
        ]);
        assert!(allowed.is_ok());
        for url in ["http://localhost/x", "http://[::1]:80", "https://a.b"] {
            assert!(shared::access::secure_or_local(url), "{url}");
        }
        for url in [
            "http://127.0.0.1.evil.example",
            "http://localhost.example:80",
            "ftp://x",
        ] {
            assert!(!shared::access::secure_or_local(url), "{url}");
        }
    }

    #[test]
    fn a_value_that_does_not_parse_is_named() {
        let refused = config(&["--l1-max-bytes", "lots"]).expect_err("refused");
        assert!(refused.to_string().contains("L1_MAX_BYTES"), "{refused}");
    }

    #[test]
    fn short_secrets_and_limits_out_of_bounds_are_refused() {
        let above_max = (MAX_RATE_PER_MIN + 1).to_string();
        for flags in [
            ["--jwt-secret", "short"],
            ["--internal-api-key", "short"],
            ["--rate-limit-writes-per-min", "0"],
            ["--rate-limit-requests-per-min", &above_max],
            ["--db-max-connections", "0"],
            ["--db-read-concurrency", "0"],
        ] {
            assert!(config(&flags).is_err(), "{flags:?}");
        }
    }

    #[test]
    fn redis_off_runs_without_l2_and_stale_if_slow_stays_under_half_the_deadline() {
        let c = config(&[
            "--redis-url",
            "off",
            "--request-timeout-ms",
            "800",
            "--stale-if-slow-ms",
            "5000",
        ])
        .expect("valid");
        assert_eq!(c.redis_url, None);
        assert_eq!(c.stale_if_slow, Duration::from_millis(400));
    }
}
