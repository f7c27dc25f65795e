//! The edgecache origin: an axum service answering contact counts and list pages
//! through L1 (moka), L2 (Redis) and the store (Postgres, or embedded SQLite), with the
//! admin API of API.md.

/// The hasher of the maps every read looks up (L1, verified tokens, settings, generation
/// mirrors, traffic): SipHash, the default, cost a tenth of an L1 hit. Seeded per
/// process; the keys are built by the origin or kept only after authentication, so
/// nobody outside chooses them.
pub(crate) type FastHash = foldhash::fast::RandomState;

pub mod auth;
pub mod bench;
pub mod cache;
pub mod config;
pub mod edge_push;
pub mod error;
pub mod http;
pub mod invalidation;
pub mod limits;
pub mod live;
pub mod reads;
pub mod recent;
pub mod rfc3339;
pub mod seeding;
pub mod settings;
pub mod state;
pub mod store;
pub mod telemetry;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;

use crate::cache::memory::Memory;
use crate::cache::redis::RedisCache;
use crate::cache::Cache;
use crate::config::Config;
use crate::edge_push::EdgePush;
use crate::recent::Recent;
use crate::settings::SettingsCache;
use crate::state::AppState;
use crate::store::Store;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("JWT_SECRET is required to build the application")]
    NoJwtSecret,
    #[error("EDGE_URL needs EDGE_PUSH_KEY, the key the edge accepts changes with")]
    EdgeWithoutKey,
    #[error("invalid REDIS_URL: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("cannot open the store: {0}")]
    Store(#[from] error::Error),
    #[error("cannot listen: {0}")]
    Listen(#[from] std::io::Error),
}

/// Builds the shared state. Connections are lazy: nothing here waits for Postgres or Redis.
pub fn build_state(config: Config, store: Arc<dyn Store>) -> Result<AppState, StartError> {
    let secret = config.jwt_secret.clone().ok_or(StartError::NoJwtSecret)?;
    let redis = config
        .redis_url
        .as_deref()
        .map(|url| RedisCache::new(url, config.redis_timeout).map(Arc::new))
        .transpose()?;
    let cache = Cache::new(
        Memory::new(config.l1_max_bytes, config.stale_grace),
        redis,
        config.key_space.clone(),
        config.generation_max_age,
        config.stale_grace,
        config.stale_if_slow,
    );
    let limits = limits::Limits::new(limits::Defaults {
        writes_per_user: config.writes_per_user_per_min,
        requests_per_workspace: config.requests_per_workspace_per_min,
        requests_per_user: config.requests_per_user_per_min,
        searches_per_user: config.searches_per_user_per_min,
    });
    let tokens = shared::token::TokenVerifier::new(secret.0.as_bytes())
        .expecting(config.jwt_audience.as_deref(), config.jwt_issuer.as_deref());
    let auth = auth::Verifier::with_tokens(tokens, config.read_keys());
    let live = Arc::new(live::Live::new(
        config.live_buffer,
        (
            config.live_max_connections,
            config.live_max_connections_per_user,
        ),
    ));
    let announcer = live::Announcer::new(
        live.clone(),
        cache.redis().cloned(),
        config.key_space.clone(),
    );
    let edge = match (&config.edge_url, &config.edge_push_key) {
        (Some(url), Some(key)) => Some(Arc::new(
            EdgePush::new(
                url,
                &key.0,
                config.key_space.edge_outbox(),
                cache.redis().cloned(),
            )
            .announcing(announcer.clone()),
        )),
        (Some(_), None) => return Err(StartError::EdgeWithoutKey),
        _ => None,
    };
    let db_reads = Arc::new(tokio::sync::Semaphore::new(
        config.db_read_concurrency as usize,
    ));
    Ok(AppState {
        searches: state::Searches::new(config.search_concurrency_per_workspace),
        edge,
        cursors: config.cursor_key(),
        config,
        store,
        cache,
        settings: SettingsCache::default(),
        limits,
        auth,
        metrics: telemetry::metrics_handle(),
        started: Instant::now(),
        db_reads,
        probe: Recent::new(http::health::PROBE_MAX_AGE),
        live,
        announcer,
    })
}

/// How often an instance folds the counters' shards. Writes bring shard rows back all
/// the time, and each one a fold moves makes the next write of its bucket an insert
/// instead of an update; every few seconds keeps reads near one row per bucket for that.
const FOLD_EVERY: Duration = Duration::from_secs(5);
/// Words of the contact search vocabulary swept a minute, by whichever instance takes
/// its turn: one index probe each, about 2 ms at 1M contacts, so a sweep stays well
/// inside the pool's statement timeout; a million words in about a day and a half.
const SEARCH_WORDS_BATCH: i64 = 500;
/// How long a start waits to catch up on changes made while no origin listened.
const CATCH_UP_AT_START: Duration = Duration::from_secs(3);

/// Upkeep: every few seconds folds the counters' shards, each minute forgets idle rate
/// limiters and sweeps some of the search vocabulary, each hour deletes the clock
/// counters no count reads any more (they would otherwise grow by a day's hours every
/// day).
async fn upkeep(state: Arc<AppState>) {
    let minute = (60 / FOLD_EVERY.as_secs()).max(1);
    let mut every = tokio::time::interval(FOLD_EVERY);
    for tick in 0u64.. {
        every.tick().await;
        if let Err(e) = state.store.fold_counters().await {
            tracing::warn!(error = %e, "folding the counters' shards failed");
        }
        if tick % minute == 0 {
            state.limits.prune();
            state.searches.prune();
            state.live.prune();
        }
        // Half a minute from the start, not at it, where every instance has more to do.
        if tick % minute == minute / 2 {
            match state.store.prune_search_words(SEARCH_WORDS_BATCH).await {
                Ok(dropped) => tracing::debug!(dropped, "search vocabulary swept"),
                Err(e) => tracing::warn!(error = %e, "sweeping the search vocabulary failed"),
            }
        }
        if tick % (60 * minute) == 0 {
            if let Err(e) = state.store.prune_counters().await {
                tracing::warn!(error = %e, "pruning the clock counters failed");
            }
        }
    }
}

/// A bound, not yet serving application; tests bind port 0 and read `port()`.
pub struct Application {
    state: Arc<AppState>,
    listener: TcpListener,
}

impl Application {
    pub async fn build(config: Config, store: Arc<dyn Store>) -> Result<Self, StartError> {
        let listener = TcpListener::bind(config.listen_addr).await?;
        let state = Arc::new(build_state(config, store)?);
        // What changed while no instance listened is dropped before the first read; if
        // the store or Redis cannot be asked yet, the listener's first connection does it.
        match tokio::time::timeout(CATCH_UP_AT_START, invalidation::catch_up(&state)).await {
            Ok(Ok(moved)) if moved > 0 => tracing::info!(
                moved,
                "workspaces changed while no origin listened moved on"
            ),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::info!(error = %e, "catching up at start deferred to the listener")
            }
            Err(_) => {
                tracing::info!("catching up at start took too long; deferred to the listener")
            }
        }
        tokio::spawn(invalidation::listen(state.clone()));
        tokio::spawn(invalidation::follow_fills(state.clone()));
        tokio::spawn(invalidation::follow_store(state.clone()));
        tokio::spawn(invalidation::replay(state.clone()));
        tokio::spawn(invalidation::register(state.clone()));
        if let Some(edge) = &state.edge {
            tokio::spawn(edge.clone().run());
        }
        tokio::spawn(upkeep(state.clone()));
        Ok(Self { state, listener })
    }

    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    pub fn state(&self) -> Arc<AppState> {
        self.state.clone()
    }

    /// Serves until `shutdown` resolves, then finishes the requests in flight.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        http::serve(self.listener, self.state, shutdown).await
    }
}
