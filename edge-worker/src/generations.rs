//! The edge's generation counters. One Durable Object per workspace holds them and bumps
//! them atomically: its SQLite statements run within one event with nothing awaited in
//! between, so two bumps never interleave and no location can undo another's (as a
//! read-modify-write of one KV value could, KV being eventually consistent). KV holds
//! pages and counts only. An isolate reuses a workspace's counters for at most
//! `EDGE_GENERATION_MAX_AGE_MS`, so every location sees a bump made anywhere within that
//! bound; a location that cannot read them does not guess (`runtime::read` bypasses KV).

use std::cell::RefCell;
use std::collections::HashMap;

use serde::Deserialize;
use worker::{
    durable_object, DurableObject, Env, Method, ObjectNamespace, Request, RequestInit, Response,
    SqlStorage, State,
};

/// A workspace's counters, by field (`shared::keys::GenerationScope::field`).
pub type Counters = HashMap<String, u64>;

/// Workspaces whose counters one isolate keeps before it starts over.
const MAX_KNOWN: usize = 10_000;

thread_local! {
    /// Counters this isolate read, by object name, with when it read them.
    static KNOWN: RefCell<HashMap<String, (u64, Counters)>> = RefCell::new(HashMap::new());
}

#[durable_object]
pub struct WorkspaceGenerations {
    sql: SqlStorage,
}

#[derive(Deserialize)]
struct Row {
    field: String,
    value: i64,
}

impl DurableObject for WorkspaceGenerations {
    fn new(state: State, _env: Env) -> Self {
        let sql = state.storage().sql();
        if let Err(e) = sql.exec(
            "CREATE TABLE IF NOT EXISTS generations (field TEXT PRIMARY KEY, value INTEGER NOT NULL)",
            None,
        ) {
            worker::console_error!("generations table: {e}");
        }
        Self { sql }
    }

    /// `GET`: the counters. `POST` with a JSON list of fields: each bumped by one, then
    /// the counters as they are right after (so each bump sees its own new value). `PUT`
    /// with a JSON map of fields to values: each raised to its value (never lowered).
    async fn fetch(&self, mut req: Request) -> worker::Result<Response> {
        if req.method() == Method::Put {
            let raised: Counters = req.json().await?;
            for (field, value) in raised {
                self.sql.exec(
                    "INSERT INTO generations (field, value) VALUES (?, ?) \
                     ON CONFLICT (field) DO UPDATE SET value = max(value, excluded.value)",
                    vec![
                        field.into(),
                        i64::try_from(value).unwrap_or(i64::MAX).into(),
                    ],
                )?;
            }
        }
        if req.method() == Method::Post {
            let fields: Vec<String> = req.json().await?;
            for field in fields {
                self.sql.exec(
                    "INSERT INTO generations (field, value) VALUES (?, 1) \
                     ON CONFLICT (field) DO UPDATE SET value = value + 1",
                    vec![field.into()],
                )?;
            }
        }
        let rows: Vec<Row> = self
            .sql
            .exec("SELECT field, value FROM generations", None)?
            .to_array()?;
        let counters: Counters = rows
            .into_iter()
            .map(|r| (r.field, u64::try_from(r.value).unwrap_or(0)))
            .collect();
        Response::from_json(&counters)
    }
}

/// A workspace's counters: this isolate's copy while younger than `max_age_ms` and read
/// no earlier than `since_ms`, else the object's (`asked` is then called). `None` when the
/// object cannot be asked. Requests in flight when the copy expires each ask: they cannot
/// share one read, as the Workers runtime refuses a request awaiting I/O that another
/// request started.
pub async fn read(
    ns: &ObjectNamespace,
    name: &str,
    now_ms: u64,
    (max_age_ms, since_ms): (u64, u64),
    asked: impl FnOnce(),
) -> Option<Counters> {
    let known = KNOWN.with(|k| {
        k.borrow()
            .get(name)
            .filter(|(at, _)| now_ms.saturating_sub(*at) < max_age_ms && *at >= since_ms)
            .map(|(_, counters)| counters.clone())
    });
    if known.is_some() {
        return known;
    }
    asked();
    match ask(ns, name, Change::None).await {
        Ok(counters) => {
            remember(name, now_ms, &counters);
            Some(counters)
        }
        Err(e) => {
            worker::console_warn!("generations unreadable: {e}");
            None
        }
    }
}

/// Bumps `fields` of a workspace's counters; the counters right after.
pub async fn bump(
    ns: &ObjectNamespace,
    name: &str,
    fields: &[String],
    now_ms: u64,
) -> worker::Result<Counters> {
    let counters = ask(ns, name, Change::Bump(fields)).await?;
    remember(name, now_ms, &counters);
    Ok(counters)
}

/// Raises each field of `raised` in object `name` to its value (never lowers one).
pub async fn raise(ns: &ObjectNamespace, name: &str, raised: &Counters) -> worker::Result<()> {
    ask(ns, name, Change::Raise(raised)).await.map(drop)
}

enum Change<'a> {
    None,
    Bump(&'a [String]),
    Raise(&'a Counters),
}

fn remember(name: &str, now_ms: u64, counters: &Counters) {
    KNOWN.with(|k| {
        let mut known = k.borrow_mut();
        if known.len() >= MAX_KNOWN {
            known.clear();
        }
        known.insert(name.to_owned(), (now_ms, counters.clone()));
    });
}

async fn ask(ns: &ObjectNamespace, name: &str, change: Change<'_>) -> worker::Result<Counters> {
    let mut init = RequestInit::new();
    let (method, body) = match change {
        Change::None => (Method::Get, None),
        Change::Bump(fields) => (Method::Post, Some(serde_json::to_string(fields))),
        Change::Raise(raised) => (Method::Put, Some(serde_json::to_string(raised))),
    };
    if let Some(body) = body {
        let body = body.map_err(|e| worker::Error::RustError(e.to_string()))?;
        init.with_method(method).with_body(Some(body.into()));
    }
    let request = Request::new_with_init("https://generations.internal/", &init)?;
    let mut response = ns.get_by_name(name)?.fetch_with_request(request).await?;
    if response.status_code() != 200 {
        return Err(worker::Error::RustError(format!(
            "generations object answered {}",
            response.status_code()
        )));
    }
    response.json().await
}
