//! The worker's settings, from its bindings, vars and secrets (wrangler.toml and
//! `wrangler secret put`). Vars and secrets are read once per isolate (a new deployment or
//! secret starts new isolates), so that a KV hit neither parses them nor rebuilds the
//! token verifier; the bindings come with each request.

use std::cell::RefCell;
use std::ops::Deref;
use std::rc::Rc;
use std::time::Duration;

use shared::cursor::CursorKey;
use shared::keys::KeySpace;
use shared::token::TokenVerifier;
use worker::{Env, KvStore, Request};

use crate::fail::{Fail, Result};
use crate::generations::Objects;
use crate::runtime::request_id;

pub(crate) struct Config {
    pub(crate) request_id: String,
    pub(crate) kv: KvStore,
    pub(crate) generations: Objects,
    settings: Rc<Settings>,
}

impl Deref for Config {
    type Target = Settings;

    fn deref(&self) -> &Settings {
        &self.settings
    }
}

thread_local! {
    /// This isolate's settings, once they were read whole.
    static SETTINGS: RefCell<Option<Rc<Settings>>> = const { RefCell::new(None) };
}

pub(crate) struct Settings {
    pub(crate) generation_max_age_ms: u64,
    /// How recently the origin must have confirmed its outbox drained for KV hits to be
    /// served (`EDGE_CONFIRMED_MAX_AGE_MS`); 0 serves them unconfirmed (an edge whose
    /// origin pushes no changes then keeps to its TTLs).
    pub(crate) confirmed_max_age_ms: u64,
    pub(crate) keys: KeySpace,
    pub(crate) tokens: TokenVerifier,
    /// Checks cursors before they name a KV key, with the key the origins sign them with.
    pub(crate) cursors: CursorKey,
    pub(crate) origin_url: String,
    /// The key the worker reads the origin with (`INTERNAL_API_KEY`); it pushes nothing.
    pub(crate) internal_key: String,
    /// The keys the origins push changes with (`EDGE_PUSH_KEY`, and during a rotation
    /// `EDGE_PUSH_KEY_PREVIOUS`); none: no pushes are taken.
    pub(crate) push_keys: Vec<String>,
    pub(crate) timeout: Duration,
    /// How long a call to a generations object may take (`EDGE_OBJECT_TIMEOUT_MS`); past
    /// it, what KV holds is served stale rather than sending every read to the origin.
    pub(crate) object_timeout: Duration,
    pub(crate) grace_secs: u64,
    /// What the isolate may hold of fresh KV entries (`EDGE_HOT_BYTES`, at most 32 MiB;
    /// 0 holds none).
    pub(crate) hot_bytes: usize,
}

pub(crate) fn var(env: &Env, name: &str) -> Option<String> {
    env.var(name)
        .ok()
        .map(|v| v.to_string())
        .filter(|v| !v.is_empty())
}

fn secret(env: &Env, name: &str) -> Option<String> {
    env.secret(name)
        .ok()
        .map(|v| v.to_string())
        .filter(|v| !v.is_empty())
}

fn missing(what: &str) -> Fail {
    Fail::new(503, "misconfigured", format!("the worker has no {what}"))
}

impl Config {
    pub(crate) fn load(env: &Env, req: &Request) -> Result<Self> {
        let settings = match SETTINGS.with(|s| s.borrow().clone()) {
            Some(settings) => settings,
            None => {
                let settings = Rc::new(Settings::read(env)?);
                SETTINGS.with(|s| *s.borrow_mut() = Some(settings.clone()));
                settings
            }
        };
        Ok(Self {
            request_id: request_id(req),
            kv: env
                .kv("CACHE_KV")
                .map_err(|_| missing("CACHE_KV binding"))?,
            generations: Objects {
                ns: env
                    .durable_object("GENERATIONS")
                    .map_err(|_| missing("GENERATIONS binding"))?,
                timeout: settings.object_timeout,
            },
            settings,
        })
    }
}

impl Settings {
    /// Reads them whole; what is missing or malformed is a 503 (and read again next time).
    fn read(env: &Env) -> Result<Self> {
        let jwt = secret(env, "JWT_SECRET").ok_or_else(|| missing("JWT_SECRET"))?;
        Ok(Self {
            generation_max_age_ms: var(env, "EDGE_GENERATION_MAX_AGE_MS")
                .and_then(|v| v.parse().ok())
                .unwrap_or(1000),
            confirmed_max_age_ms: var(env, "EDGE_CONFIRMED_MAX_AGE_MS")
                .and_then(|v| v.parse().ok())
                .unwrap_or(1000),
            keys: KeySpace::new(&var(env, "CACHE_NAMESPACE").unwrap_or_else(|| "ec".into()))?,
            tokens: TokenVerifier::new(jwt.as_bytes()).expecting(
                var(env, "JWT_AUDIENCE").as_deref(),
                var(env, "JWT_ISSUER").as_deref(),
            ),
            cursors: CursorKey::from_token_secret(jwt.as_bytes()),
            origin_url: origin_url(env)?,
            push_keys: ["EDGE_PUSH_KEY", "EDGE_PUSH_KEY_PREVIOUS"]
                .into_iter()
                .filter_map(|name| secret(env, name))
                .collect(),
            internal_key: secret(env, "INTERNAL_API_KEY")
                .ok_or_else(|| missing("INTERNAL_API_KEY"))?,
            timeout: Duration::from_millis(
                var(env, "ORIGIN_TIMEOUT_MS")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(5000),
            ),
            object_timeout: Duration::from_millis(
                var(env, "EDGE_OBJECT_TIMEOUT_MS")
                    .and_then(|v| v.parse().ok())
                    .filter(|ms| (1..=60_000).contains(ms))
                    .unwrap_or(500),
            ),
            grace_secs: var(env, "STALE_GRACE_SECS")
                .and_then(|v| v.parse().ok())
                .unwrap_or(3600),
            // An isolate has 128 MB in all: past it, every request in flight fails.
            hot_bytes: var(env, "EDGE_HOT_BYTES")
                .and_then(|v| v.parse().ok())
                .unwrap_or(8 << 20)
                .min(32 << 20),
        })
    }
}

/// `ORIGIN_URL`, which must be https unless it is this machine or
/// `ORIGIN_URL_ALLOW_PLAINTEXT` is `true` (a private network): the read key and every
/// answer travel on it.
fn origin_url(env: &Env) -> Result<String> {
    let url = var(env, "ORIGIN_URL")
        .ok_or_else(|| Fail::new(503, "misconfigured", "the worker has no ORIGIN_URL"))?;
    let allowed = var(env, "ORIGIN_URL_ALLOW_PLAINTEXT").is_some_and(|v| v == "true");
    if allowed || shared::access::secure_or_local(&url) {
        Ok(url)
    } else {
        Err(Fail::new(
            503,
            "misconfigured",
            "ORIGIN_URL must be https (or set ORIGIN_URL_ALLOW_PLAINTEXT)",
        ))
    }
}
