//! Typed configuration from environment variables, validated once at start-up.
//! Every variable has a local default that works on a developer machine; secrets
//! are never logged (`Debug` hides them).

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use shared::keys::KeySpace;

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
    fn from_env() -> Result<Self, ConfigError> {
        let read_url = var("DATABASE_READ_URL").map(Secret);
        let store = match var("DATABASE_URL") {
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
                path: PathBuf::from(var("DATA_DIR").unwrap_or_else(|| "data".to_owned()))
                    .join("edgecache.sqlite3"),
            },
        };
        if matches!(store, Self::Sqlite { .. }) && var("DATABASE_READ_URL").is_some() {
            return Err(ConfigError(
                "DATABASE_READ_URL needs a Postgres DATABASE_URL".into(),
            ));
        }
        Ok(store)
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub listen_addr: SocketAddr,
    pub store: StoreConfig,
    /// After a workspace changes, fills read the primary for this long, so a lagging
    /// replica cannot put data older than an acknowledged write back into the caches.
    pub replica_lag_window: Duration,
    /// `None` runs with L1 and the store only.
    pub redis_url: Option<String>,
    /// HS256 key of the bearer tokens; `None` makes one up per process (local use only).
    pub jwt_secret: Option<Secret>,
    /// The edge worker's key; `None` disables internal-key access.
    pub internal_key: Option<Secret>,
    /// The edge worker's base URL: every change is pushed to it (with the internal key).
    /// `None` leaves the edge to its TTLs and its own invalidations.
    pub edge_url: Option<String>,
    pub key_space: KeySpace,
    pub l1_max_bytes: u64,
    pub db_max_connections: u32,
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
    /// Contacts of the demo workspace seeded on first start; 0 seeds nothing.
    pub seed_demo_contacts: u32,
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn parsed<T: std::str::FromStr>(name: &str, default: T) -> Result<T, ConfigError> {
    match var(name) {
        None => Ok(default),
        Some(raw) => raw
            .trim()
            .parse()
            .map_err(|_| ConfigError(format!("{name}={raw:?} is not a valid value"))),
    }
}

fn millis(name: &str, default: u64) -> Result<Duration, ConfigError> {
    parsed(name, default).map(Duration::from_millis)
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        let namespace = var("CACHE_NAMESPACE").unwrap_or_else(|| "ec".to_owned());
        let config = Self {
            listen_addr: parsed("LISTEN_ADDR", SocketAddr::from(([127, 0, 0, 1], 8080)))?,
            store: StoreConfig::from_env()?,
            replica_lag_window: millis("REPLICA_LAG_WINDOW_MS", 5000)?,
            redis_url: var("REDIS_URL").filter(|u| u != "off"),
            jwt_secret: var("JWT_SECRET").map(Secret),
            internal_key: var("INTERNAL_API_KEY").map(Secret),
            edge_url: var("EDGE_URL"),
            key_space: KeySpace::new(&namespace).map_err(|e| ConfigError(e.message))?,
            l1_max_bytes: parsed("L1_MAX_BYTES", 256 * 1024 * 1024)?,
            db_max_connections: parsed("DB_MAX_CONNECTIONS", 20)?,
            db_acquire_timeout: millis("DB_ACQUIRE_TIMEOUT_MS", 500)?,
            redis_timeout: millis("REDIS_TIMEOUT_MS", 250)?,
            request_timeout: millis("REQUEST_TIMEOUT_MS", 10_000)?,
            stale_grace: Duration::from_secs(parsed("STALE_GRACE_SECS", 3600)?),
            stale_if_slow: millis("STALE_IF_SLOW_MS", 1000)?,
            generation_max_age: millis("GENERATION_MAX_AGE_MS", 1000)?,
            writes_per_user_per_min: parsed("RATE_LIMIT_WRITES_PER_MIN", 60)?,
            requests_per_workspace_per_min: parsed("RATE_LIMIT_REQUESTS_PER_MIN", 6000)?,
            seed_demo_contacts: parsed("SEED_DEMO_CONTACTS", 200_000)?,
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
        if let Some(key) = &self.internal_key {
            if key.0.len() < 16 {
                return Err(ConfigError(
                    "INTERNAL_API_KEY must be at least 16 bytes".into(),
                ));
            }
        }
        if self.writes_per_user_per_min == 0 || self.requests_per_workspace_per_min == 0 {
            return Err(ConfigError(
                "rate limits must be at least 1 per minute".into(),
            ));
        }
        if self.db_max_connections == 0 {
            return Err(ConfigError("DB_MAX_CONNECTIONS must be at least 1".into()));
        }
        Ok(self)
    }
}
