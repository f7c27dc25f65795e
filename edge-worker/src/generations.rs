//! The edge's generation counters. One Durable Object per workspace holds them and bumps
//! them atomically: its SQLite statements run within one event with nothing awaited in
//! between, so two bumps never interleave and no location can undo another's (as a
//! read-modify-write of one KV value could, KV being eventually consistent). KV holds
//! pages and counts only. An isolate reuses a workspace's counters for at most
//! `EDGE_GENERATION_MAX_AGE_MS`, so every location sees a bump made anywhere within that
//! bound; a location that cannot read them does not guess (`runtime::read` bypasses KV).
//! The object also logs each board's in-place edits against its `Rows` counter (`rows`).

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use futures_util::future::{select, Either};

use serde::{Deserialize, Serialize};
use shared::keys::GenerationScope;
use shared::{BoardId, ConversationId};
use worker::{
    durable_object, Delay, DurableObject, Env, Method, ObjectNamespace, Request, RequestInit,
    Response, SqlStorage, State,
};

use crate::copies::{Copies, Counters, Known, MAX_KNOWN};

/// A read of object `name`: the `fields` a key needs, and with a board, its edits.
pub struct Wanted<'a> {
    pub name: &'a str,
    pub board: Option<i64>,
    pub fields: &'a [String],
}

/// The objects' namespace, and how long a call to one may take before it counts as
/// unanswered (`EDGE_OBJECT_TIMEOUT_MS`).
pub struct Objects {
    pub ns: ObjectNamespace,
    /// The deadline of a read.
    pub timeout: Duration,
}

/// A bump: the fields to move by one, and the edit it logs, `(board, contact)`.
#[derive(Serialize, Deserialize)]
struct Bumped {
    fields: Vec<String>,
    #[serde(default)]
    edit: Option<(i64, i64)>,
    /// Whether the answer may hold only the bumped fields. A worker of the version before
    /// asks without it (and a read without fields) while a deploy reaches every location:
    /// it takes an answer for the whole table, missing fields for zeros.
    #[serde(default)]
    narrow: bool,
}

/// Fields of one workspace an isolate rereads together: a read asks for the fields its
/// key needs and those the isolate's copy holds, so one read per age serves every key the
/// isolate uses, up to this many; past it, a read asks only for what its key needs.
const MAX_FIELDS: usize = 256;

thread_local! {
    static COPIES: RefCell<Copies> = RefCell::new(Copies::default());
    /// Objects that did not answer a read, by name, with when (ms) to ask again.
    static UNANSWERED: RefCell<HashMap<String, u64>> = RefCell::new(HashMap::new());
}

#[durable_object]
pub struct WorkspaceGenerations {
    sql: SqlStorage,
    /// Conversations whose counters the object keeps (`EDGE_MAX_CONVERSATION_COUNTERS`):
    /// past it, the idlest half is folded into `Threads` (`fold_idle`).
    max_conversations: i64,
}

/// The default of `EDGE_MAX_CONVERSATION_COUNTERS`.
const MAX_CONVERSATIONS: i64 = 1_000;

/// The conversation a counter is of (`c{id}h`, `c{id}t`: `GenerationScope::Head`, `Thread`).
fn conversation_of(field: &str) -> Option<i64> {
    let id = field.strip_prefix('c')?.strip_suffix(['h', 't'])?;
    id.bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| id.parse().ok())?
}

#[derive(Deserialize)]
struct Row {
    field: String,
    value: i64,
}

#[derive(Deserialize)]
struct Held {
    held: i64,
}

#[derive(Deserialize)]
struct EditRow {
    seq: i64,
    contact: i64,
}

impl DurableObject for WorkspaceGenerations {
    fn new(state: State, env: Env) -> Self {
        let sql = state.storage().sql();
        for table in [
            "CREATE TABLE IF NOT EXISTS generations (field TEXT PRIMARY KEY, value INTEGER NOT NULL)",
            "CREATE TABLE IF NOT EXISTS edits (board INTEGER NOT NULL, seq INTEGER NOT NULL, \
             contact INTEGER NOT NULL, PRIMARY KEY (board, seq))",
            "CREATE TABLE IF NOT EXISTS incarnation (at INTEGER NOT NULL)",
            "CREATE TABLE IF NOT EXISTS touched (conversation INTEGER PRIMARY KEY, at INTEGER NOT NULL)",
        ] {
            if let Err(e) = sql.exec(table, None) {
                worker::console_error!("generations tables: {e}");
            }
        }
        let made = sql.exec(
            "INSERT INTO incarnation (at) SELECT ? WHERE NOT EXISTS (SELECT 1 FROM incarnation)",
            vec![(worker::Date::now().as_millis() as i64).into()],
        );
        if let Err(e) = made {
            worker::console_error!("generations incarnation: {e}");
        }
        let max_conversations = crate::config::var(&env, "EDGE_MAX_CONVERSATION_COUNTERS")
            .and_then(|v| v.parse().ok())
            .filter(|n| *n >= 2)
            .unwrap_or(MAX_CONVERSATIONS);
        Self {
            sql,
            max_conversations,
        }
    }

    /// `GET` with `?field=` (repeated): those counters (0 for one never bumped), and with
    /// `?board=` that board's edits. `POST` with fields (and maybe an edit): each field
    /// bumped by one and the edit logged at its board's new `Rows`, then the bumped
    /// fields' new values (so each bump sees its own) and how many counters it holds.
    /// `PUT` with a JSON map of fields to values: each raised to its value (never
    /// lowered), then their values.
    async fn fetch(&self, mut req: Request) -> worker::Result<Response> {
        let url = req.url()?;
        let mut board = None;
        let mut fields = Vec::new();
        let mut whole = false;
        let mut held = 0;
        for (k, v) in url.query_pairs() {
            match &*k {
                "board" => board = v.parse::<i64>().ok(),
                "field" => fields.push(v.into_owned()),
                _ => {}
            }
        }
        match req.method() {
            Method::Put => {
                let raised: Counters = req.json().await?;
                for (field, value) in raised {
                    self.sql.exec(
                        "INSERT INTO generations (field, value) VALUES (?, ?) \
                         ON CONFLICT (field) DO UPDATE SET value = max(value, excluded.value)",
                        vec![
                            field.clone().into(),
                            i64::try_from(value).unwrap_or(i64::MAX).into(),
                        ],
                    )?;
                    fields.push(field);
                }
            }
            Method::Post => {
                let bumped: Bumped = req.json().await?;
                let now = worker::Date::now().as_millis() as i64;
                for field in bumped.fields {
                    if let Some(conversation) = conversation_of(&field) {
                        self.sql.exec(
                            "INSERT OR REPLACE INTO touched (conversation, at) VALUES (?, ?)",
                            vec![conversation.into(), now.into()],
                        )?;
                    }
                    self.sql.exec(
                        "INSERT INTO generations (field, value) VALUES (?, 1) \
                         ON CONFLICT (field) DO UPDATE SET value = value + 1",
                        vec![field.clone().into()],
                    )?;
                    fields.push(field);
                }
                whole = !bumped.narrow;
                if let Some((board, contact)) = bumped.edit {
                    self.log_edit(board, contact)?;
                }
                self.fold_idle()?;
                let counted: Vec<Held> = self
                    .sql
                    .exec("SELECT count(*) AS held FROM generations", None)?
                    .to_array()?;
                held = counted
                    .first()
                    .map_or(0, |h| u64::try_from(h.held).unwrap_or(0));
            }
            _ => whole = fields.is_empty(),
        }
        // Every answer says where the folds stand, so an isolate can tell whether two
        // answers may be merged (`same_era`).
        fields.push(GenerationScope::Threads.field());
        let rows: Vec<Row> = if whole {
            self.sql
                .exec("SELECT field, value FROM generations", None)?
                .to_array()?
        } else {
            let listed = serde_json::to_string(&fields)
                .map_err(|e| worker::Error::RustError(e.to_string()))?;
            self.sql
                .exec(
                    "SELECT j.value AS field, coalesce(g.value, 0) AS value \
                     FROM json_each(?) AS j LEFT JOIN generations AS g ON g.field = j.value",
                    vec![listed.into()],
                )?
                .to_array()?
        };
        #[derive(Deserialize)]
        struct At {
            at: i64,
        }
        let made: Vec<At> = self
            .sql
            .exec("SELECT at FROM incarnation", None)?
            .to_array()?;
        let edits: Vec<EditRow> = match board {
            Some(board) => self
                .sql
                .exec(
                    "SELECT seq, contact FROM edits WHERE board = ? ORDER BY seq",
                    vec![board.into()],
                )?
                .to_array()?,
            None => Vec::new(),
        };
        Response::from_json(&Known {
            counters: rows
                .into_iter()
                .map(|r| (r.field, u64::try_from(r.value).unwrap_or(0)))
                .collect(),
            incarnation: made.first().map_or(0, |m| u64::try_from(m.at).unwrap_or(0)),
            edits: edits
                .into_iter()
                .map(|e| (u64::try_from(e.seq).unwrap_or(0), e.contact))
                .collect(),
            held,
        })
    }
}

#[derive(Deserialize)]
struct Counted {
    n: i64,
}

#[derive(Deserialize)]
struct Conversation {
    conversation: i64,
}

impl WorkspaceGenerations {
    /// Keeps the counters of at most `max_conversations` conversations: past it, the
    /// idlest half's `Head` and `Thread` counters are deleted and `Threads`, part of every
    /// page of messages' key, is raised by their sum and one. Every such key's sum of
    /// counters then still only grows (a folded conversation's by more than it had), so
    /// no key made before the fold is met again; the pages of other conversations miss
    /// once, which folding half at a time makes rare.
    fn fold_idle(&self) -> worker::Result<()> {
        let counted: Vec<Counted> = self
            .sql
            .exec("SELECT count(*) AS n FROM touched", None)?
            .to_array()?;
        let n = counted.first().map_or(0, |c| c.n);
        if n <= self.max_conversations {
            return Ok(());
        }
        let idle: Vec<Conversation> = self
            .sql
            .exec(
                "SELECT conversation FROM touched ORDER BY at, conversation LIMIT ?",
                vec![(n - self.max_conversations / 2).into()],
            )?
            .to_array()?;
        let mut folded: i64 = 0;
        for c in idle {
            let fields = [
                GenerationScope::Head(ConversationId(c.conversation)).field(),
                GenerationScope::Thread(ConversationId(c.conversation)).field(),
            ];
            for field in fields {
                let rows: Vec<Row> = self
                    .sql
                    .exec(
                        "DELETE FROM generations WHERE field = ? RETURNING field, value",
                        vec![field.into()],
                    )?
                    .to_array()?;
                folded = rows
                    .iter()
                    .fold(folded, |sum, r| sum.saturating_add(r.value));
            }
            self.sql.exec(
                "DELETE FROM touched WHERE conversation = ?",
                vec![c.conversation.into()],
            )?;
        }
        self.sql.exec(
            "INSERT INTO generations (field, value) VALUES (?, ?) \
             ON CONFLICT (field) DO UPDATE SET value = value + excluded.value",
            vec![
                GenerationScope::Threads.field().into(),
                folded.saturating_add(1).into(),
            ],
        )?;
        Ok(())
    }

    /// Logs `contact` at `board`'s current `Rows` value (just bumped with it), keeping the
    /// board's latest `rows::LOG_LEN` edits.
    fn log_edit(&self, board: i64, contact: i64) -> worker::Result<()> {
        let field = GenerationScope::Rows(BoardId(board)).field();
        let rows: Vec<Row> = self
            .sql
            .exec(
                "SELECT field, value FROM generations WHERE field = ?",
                vec![field.into()],
            )?
            .to_array()?;
        let Some(seq) = rows.first().map(|r| r.value) else {
            return Ok(());
        };
        self.sql.exec(
            "INSERT OR REPLACE INTO edits (board, seq, contact) VALUES (?, ?, ?)",
            vec![board.into(), seq.into(), contact.into()],
        )?;
        self.sql.exec(
            "DELETE FROM edits WHERE board = ? AND seq <= ?",
            vec![board.into(), (seq - crate::rows::LOG_LEN).into()],
        )?;
        Ok(())
    }
}

/// The counters `wanted` names, and whether they are current: this isolate's copy while
/// younger than `max_age_ms`, read no earlier than `since_ms` and holding every field
/// wanted, else the object's (`asked` is then called); when the object does not answer in
/// time, the copy however old, as not current, if it holds them. `None` when there is
/// none. Requests in flight when the copy expires each ask: they cannot share one read, as
/// the Workers runtime refuses a request awaiting I/O that another request started.
pub async fn read(
    objects: &Objects,
    wanted: Wanted<'_>,
    now_ms: u64,
    (max_age_ms, since_ms): (u64, u64),
    asked: impl FnOnce(),
) -> Option<(Rc<Known>, bool)> {
    let Wanted {
        name,
        board,
        fields,
    } = wanted;
    let cached = match board {
        Some(b) => format!("{name}#{b}"),
        None => name.to_owned(),
    };
    let copy = COPIES.with(|c| c.borrow().known.get(&cached).cloned());
    let held = copy
        .clone()
        .filter(|(_, known)| fields.iter().all(|f| known.counters.contains_key(f)));
    if let Some((at, known)) = &held {
        if now_ms.saturating_sub(*at) < max_age_ms && *at >= since_ms {
            return Some((known.clone(), true));
        }
    }
    // An object that just failed to answer is not asked again for a second: every
    // request would otherwise wait out its deadline, and pile onto it.
    let away = UNANSWERED.with(|u| u.borrow().get(name).is_some_and(|until| now_ms < *until));
    if away {
        return held.map(|(_, known)| (known, false));
    }
    asked();
    let mut asking: Vec<&str> = fields.iter().map(String::as_str).collect();
    if let Some((_, copy)) = copy.as_ref().filter(|(_, c)| c.counters.len() < MAX_FIELDS) {
        asking.extend(copy.counters.keys().map(String::as_str));
    }
    asking.sort_unstable();
    asking.dedup();
    match ask(
        objects,
        name,
        Change::Read(board, &asking),
        Some(objects.timeout),
    )
    .await
    {
        Ok(known) => {
            let known = Rc::new(known);
            COPIES.with(|c| c.borrow_mut().keep((&cached, name), now_ms, known.clone()));
            Some((known, true))
        }
        Err(e) => {
            worker::console_warn!("generations unreadable: {e}");
            UNANSWERED.with(|u| {
                let mut u = u.borrow_mut();
                if u.len() >= MAX_KNOWN {
                    u.clear();
                }
                u.insert(name.to_owned(), now_ms + 1_000);
            });
            held.map(|(_, known)| (known, false))
        }
    }
}

/// Bumps `fields` of a workspace's counters and logs `edit` (`(board, contact)`); their
/// new values, and how many counters the object holds.
pub async fn bump(
    objects: &Objects,
    name: &str,
    fields: Vec<String>,
    edit: Option<(i64, i64)>,
) -> worker::Result<(Counters, u64)> {
    let bumped = Bumped {
        fields: fields.clone(),
        edit,
        narrow: true,
    };
    let sent = worker::Date::now().as_millis();
    let known = ask(objects, name, Change::Bump(bumped), None).await?;
    let answered = worker::Date::now().as_millis();
    COPIES.with(|c| c.borrow_mut().bumped(name, (sent, answered), &known));
    let mut counters = known.counters;
    counters.retain(|field, _| fields.contains(field));
    Ok((counters, known.held))
}

/// Raises each field of `raised` in object `name` to its value (never lowers one).
pub async fn raise(objects: &Objects, name: &str, raised: &Counters) -> worker::Result<()> {
    ask(objects, name, Change::Raise(raised), None)
        .await
        .map(drop)
}

enum Change<'a> {
    /// A read of these fields, with the edits of this board.
    Read(Option<i64>, &'a [&'a str]),
    Bump(Bumped),
    Raise(&'a Counters),
}

/// One call to object `name`, given up after `deadline` if there is one. Reads have
/// one; changes do not: giving up would not undo one the object applies after.
async fn ask(
    objects: &Objects,
    name: &str,
    change: Change<'_>,
    deadline: Option<Duration>,
) -> worker::Result<Known> {
    let mut init = RequestInit::new();
    let mut url = worker::Url::parse("https://generations.internal/")?;
    let (method, body) = match change {
        Change::Read(board, fields) => {
            let mut query = url.query_pairs_mut();
            if let Some(board) = board {
                query.append_pair("board", &board.to_string());
            }
            for field in fields {
                query.append_pair("field", field);
            }
            drop(query);
            (Method::Get, None)
        }
        Change::Bump(bumped) => (Method::Post, Some(serde_json::to_string(&bumped))),
        Change::Raise(raised) => (Method::Put, Some(serde_json::to_string(raised))),
    };
    if let Some(body) = body {
        let body = body.map_err(|e| worker::Error::RustError(e.to_string()))?;
        init.with_method(method).with_body(Some(body.into()));
    }
    let request = Request::new_with_init(url.as_str(), &init)?;
    let stub = objects.ns.get_by_name(name)?;
    crate::metrics::isolate(|m| m.object_requested());
    let call = Box::pin(stub.fetch_with_request(request));
    let mut response = match deadline {
        None => call.await?,
        Some(deadline) => match select(call, Box::pin(Delay::from(deadline))).await {
            Either::Left((response, _)) => response?,
            Either::Right(_) => {
                return Err(worker::Error::RustError(
                    "the generations object did not answer in time".into(),
                ))
            }
        },
    };
    if response.status_code() != 200 {
        return Err(worker::Error::RustError(format!(
            "generations object answered {}",
            response.status_code()
        )));
    }
    let known: Known = response.json().await?;
    crate::metrics::isolate(|m| m.object_answered(known.counters.len()));
    Ok(known)
}
