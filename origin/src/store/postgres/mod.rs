//! The production store: Postgres, with an optional read replica for cache fills.

mod cancel;
mod changes;
mod counters;
mod replica;
mod seed;
mod settings;
mod vocabulary;
mod writes;

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use shared::cursor::CursorKey;
use shared::message_search::{MessageSearch, MessageSearchPage};
use shared::messages::{
    Conversation, ConversationPage, ConversationQuery, Message, MessagePage, MessageQuery,
};
use shared::model::{Contact, ContactPage, Counts};
use shared::query::{ContactListQuery, SortBy};
use shared::settings::CacheSettings;
use shared::{BoardId, ContactId, ConversationId, MessageId, UserId, WorkspaceId};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::types::Json;
use sqlx::{Connection, PgConnection, PgPool, Postgres};
use tokio::sync::mpsc::UnboundedSender;

use self::cancel::Cancellable;
use super::contacts::{
    in_page_order, matched_query, page_among, page_of, page_query, relevance_after, tier_query,
    total_of, total_query, ContactRow, SEARCH_TOTAL_CAP,
};
use super::counters::{counts_of, counts_query, prune_query, Drift};
use super::fields::ContactFields;
use super::filters::Dialect;
use super::message_search::{search_page_of, search_query, HitRow};
use super::messages::{
    conversations_of, conversations_query, read_page, Author, NewMessage, Posted,
};
use super::search::{find_near_words, tiers, Found, Search};
use super::{Notice, Read, Seeded, SeededHistory, Store};
use crate::config::Config;
use crate::error::{Error, Result};
use replica::Replica;

pub use changes::CHANNEL;

const D: Dialect = Dialect::Postgres;

pub struct PgStore {
    /// The primary: writes, settings, and fills right after a change.
    db: PgPool,
    /// Where fills read when allowed to (the primary again when no replica is set).
    replica: Option<Replica>,
    /// Signs the cursors of the pages this store reads.
    cursors: CursorKey,
}

impl PgStore {
    /// Connects lazily: nothing here waits for Postgres.
    pub fn connect(config: &Config, url: &str, read_url: Option<&str>) -> Result<Self> {
        let replica = read_url.map(|u| pool(config, u)).transpose()?;
        Ok(Self::new(pool(config, url)?, replica, config.cursor_key()))
    }

    pub fn new(db: PgPool, replica: Option<PgPool>, cursors: CursorKey) -> Self {
        let replica = replica.map(Replica::new);
        Self {
            db,
            replica,
            cursors,
        }
    }

    /// The replica when `read` allows it and it has replayed the workspace's last change
    /// this instance heard of; else the primary.
    async fn reader(&self, read: Read) -> &PgPool {
        let (Read::Replica { changed }, Some(replica)) = (read, &self.replica) else {
            return &self.db;
        };
        match changed {
            None => &replica.pool,
            Some(changed) if replica.holds(&self.db, changed).await => &replica.pool,
            Some(_) => {
                metrics::counter!("edgecache_replica_behind_total").increment(1);
                &self.db
            }
        }
    }
}

/// A page and its total without a search, read at once on two connections.
async fn listed_rows(
    db: &PgPool,
    ws: &WorkspaceId,
    board: BoardId,
    q: &ContactListQuery,
    user: &UserId,
) -> Result<(i64, Vec<ContactRow>)> {
    let total = async {
        let total = total_query::<Postgres>(ws, board, q, user, D, None)
            .build_query_scalar::<i64>()
            .fetch_one(db)
            .await?;
        Ok::<_, Error>(total)
    };
    let rows = async {
        if q.sort_by == SortBy::Relevance {
            let mut conn = db.acquire().await?;
            return relevance_rows(&mut conn, ws, board, q, user, None).await;
        }
        Ok(page_query::<Postgres>(ws, board, q, user, D, None)
            .build_query_as()
            .fetch_all(db)
            .await?)
    };
    tokio::try_join!(total, rows)
}

/// Past this many contacts holding a search's keys, counting its matches through them
/// (a posting list, then a heap row per match) costs more than walking the board's
/// creation-time index and testing each entry's words until the cap's worth are found.
/// Measured at 1M contacts: a key in 50,000 of them took 18-27 ms, the walk 5-8 ms; a
/// key in 2,000 6 ms, the walk the whole board.
const DENSE_KEYS: f64 = 30_000.0;

/// Up to this many matches expected, a search reads every one of them through its keys
/// (up to `GATHERED`: the estimate can be half the count), and its page is among them;
/// past it, it counts to the cap and walks the board for its page. A match read is a heap
/// row at random, about 3 µs in shared buffers and 10 µs outside them; the walk finds a
/// page's 51 rows in 51 × board ÷ matches index entries of about 0.3 µs, read in order.
/// At 1M contacts, with shared buffers emptied by a restart, gathering up to 3,000 where
/// 1,500 were expected made the slowest keystrokes (`margaret ha`, `donald kn`: 40-45
/// ms); at these bounds the typed sequence's p99 went from 45.7 to 19.6 ms.
const GATHER_BELOW: f64 = 600.0;
const GATHERED: i64 = 1_200;

/// A search's page: its matches found by their keys first, at most one past the total's
/// cap or all of them where few are expected (`matched_query`), then the page among them
/// where that is all of them, or by walking the board where there are more (`Found`).
/// One connection: the second statement waits on the first. A search's statements are
/// cancelled in Postgres if their reader stops waiting, and planned for their own words
/// (`persistent(false)`).
async fn searched_rows(
    db: &PgPool,
    ws: &WorkspaceId,
    board: BoardId,
    q: &ContactListQuery,
    user: &UserId,
    search: &mut Search,
) -> Result<(i64, Vec<ContactRow>)> {
    let mut on = Cancellable::acquire(db).await?;
    let ordered = q.sort_by != SortBy::Relevance;
    let mut reach = SEARCH_TOTAL_CAP + 1;
    // How many contacts of the board hold the search's keys, as the planner estimates
    // from the key index's statistics (the words' estimate, multiplied in as if
    // independent of the keys, would make every search look rare).
    if let Some(mut estimate) = search.keys_estimate_query::<Postgres>(board) {
        let plan: Json<serde_json::Value> = estimate
            .build_query_scalar()
            .persistent(false)
            .fetch_one(on.conn())
            .await?;
        let rows = plan.0[0]["Plan"]["Plan Rows"].as_f64().unwrap_or(f64::MAX);
        if rows > DENSE_KEYS {
            search.found = Found::Walk;
        } else if rows <= GATHER_BELOW && ordered {
            reach = GATHERED;
        }
    } else {
        search.found = Found::Walk;
    }
    let (select, order) = if ordered {
        in_page_order(q)
    } else {
        ("SELECT id".to_owned(), String::new())
    };
    let mut matched =
        matched_query::<Postgres>(&select, (ws, board), q, user, D, Some(search), reach);
    matched.push(order);
    let ids: Vec<i64> = matched
        .build_query_scalar()
        .persistent(false)
        .fetch_all(on.conn())
        .await?;
    let found = ids.len() as i64;
    let total = found.min(SEARCH_TOTAL_CAP + 1);
    // A walk's ids are the first matches in the page's order (`matched_query`): a first
    // page is among them even where some changed since (it takes the first that still
    // match).
    let first_walked =
        search.found == Found::Walk && q.after.is_none() && q.offset() == 0 && ordered;
    let complete = found < reach || first_walked;
    // Every match known and in order, the page's own rows are all that is read again
    // (reading every match again by id cost 4.2 of a keystroke's 13.5 ms at 1M contacts).
    let page = Some(&ids)
        .filter(|_| complete && ordered)
        .and_then(|ids| page_among(ids, q));
    let rows = if ids.is_empty() {
        Vec::new()
    } else if let Some(page) = page {
        search.found = Found::Among(page);
        let from_start = ContactListQuery {
            page: 1,
            ..q.clone()
        };
        page_query::<Postgres>(ws, board, &from_start, user, D, Some(search))
            .build_query_as()
            .persistent(false)
            .fetch_all(on.conn())
            .await?
    } else {
        search.found = if complete {
            Found::Among(ids)
        } else {
            Found::Walk
        };
        if !ordered {
            relevance_rows(on.conn(), ws, board, q, user, Some(search)).await?
        } else {
            page_query::<Postgres>(ws, board, q, user, D, Some(search))
                .build_query_as()
                .persistent(false)
                .fetch_all(on.conn())
                .await?
        }
    };
    on.done();
    Ok((total, rows))
}

/// A page sorted by relevance, read rank by rank until it is full (`tier_query`).
async fn relevance_rows(
    conn: &mut PgConnection,
    ws: &WorkspaceId,
    board: BoardId,
    q: &ContactListQuery,
    user: &UserId,
    search: Option<&Search>,
) -> Result<Vec<ContactRow>> {
    let after = relevance_after(q);
    let offset = if after.is_none() {
        q.offset() as usize
    } else {
        0
    };
    let reach = q.per_page as usize + 1 + offset;
    let mut rows: Vec<ContactRow> = Vec::new();
    for tier in tiers(search) {
        if after.is_some_and(|((from, _), _)| tier.0 < from) {
            continue;
        }
        let within = after
            .filter(|((from, _), _)| *from == tier.0)
            .map(|((_, time), id)| (time, id));
        let more: Vec<ContactRow> =
            tier_query::<Postgres>(ws, board, q, user, D, &tier, within, reach - rows.len())
                .build_query_as()
                .persistent(false)
                .fetch_all(&mut *conn)
                .await?;
        rows.extend(more);
        if rows.len() >= reach {
            break;
        }
    }
    rows.drain(..offset.min(rows.len()));
    Ok(rows)
}

/// A pool to `url` with the configured limits; a statement may not run past 5 s. No
/// statement here runs long enough for JIT compilation (tens of milliseconds, started
/// when a plan's estimated cost is high, as a search's can be) to pay for itself.
fn pool(config: &Config, url: &str) -> Result<PgPool> {
    let options: PgConnectOptions = url.parse()?;
    Ok(PgPoolOptions::new()
        .max_connections(config.db_max_connections)
        .acquire_timeout(config.db_acquire_timeout)
        .idle_timeout(Some(Duration::from_secs(300)))
        .connect_lazy_with(options.options([("statement_timeout", "5000"), ("jit", "off")])))
}

#[async_trait]
impl Store for PgStore {
    fn kind(&self) -> &'static str {
        "postgres"
    }

    fn location(&self) -> String {
        let o = self.db.connect_options();
        format!(
            "{}:{}/{}",
            o.get_host(),
            o.get_port(),
            o.get_database().unwrap_or("")
        )
    }

    fn has_replica(&self) -> bool {
        self.replica.is_some()
    }

    /// On a connection of its own without the pool's statement timeout: building an index
    /// over a large table takes longer than any read may, and a migration cut short is
    /// rolled back and retried at every start.
    async fn migrate(&self) -> Result<()> {
        let mut conn = self.db.acquire().await?.detach();
        sqlx::query("SET statement_timeout = 0")
            .execute(&mut conn)
            .await?;
        let done = sqlx::migrate!("../migrations").run_direct(&mut conn).await;
        let _ = conn.close().await;
        done.map_err(super::internal)
    }

    async fn ping(&self, read: Read) -> Result<()> {
        sqlx::query("SELECT 1")
            .execute(self.reader(read).await)
            .await?;
        Ok(())
    }

    fn connections(&self) -> (u32, usize) {
        (self.db.size(), self.db.num_idle())
    }

    async fn counts(&self, read: Read, ws: &WorkspaceId, user: &UserId) -> Result<Counts> {
        let row = counts_query::<Postgres>(ws, user, D)
            .build()
            .fetch_one(self.reader(read).await)
            .await?;
        counts_of(&row)
    }

    async fn page(
        &self,
        read: Read,
        ws: &WorkspaceId,
        board: BoardId,
        q: &ContactListQuery,
        user: &UserId,
    ) -> Result<ContactPage> {
        let db = self.reader(read).await;
        let mut search = Search::of(q);
        find_near_words!(search, ws, Postgres, D, db);
        let (total, rows) = match search.as_mut() {
            Some(s) => searched_rows(db, ws, board, q, user, s).await?,
            None => listed_rows(db, ws, board, q, user).await?,
        };
        // A row of the page proves the board is the workspace's (a contact's foreign key
        // names its workspace and board together), so only an empty page asks.
        if rows.is_empty() {
            let exists = sqlx::query("SELECT 1 FROM boards WHERE id = $1 AND workspace_id = $2")
                .bind(board.0)
                .bind(ws.as_str())
                .fetch_optional(db)
                .await?;
            if exists.is_none() {
                return Err(Error::NotFound("board"));
            }
        }
        Ok(page_of(
            rows,
            ws,
            board,
            q,
            total_of(q, total),
            D,
            &self.cursors,
        ))
    }

    async fn boards(&self, read: Read, ws: &WorkspaceId) -> Result<Vec<BoardId>> {
        let ids: Vec<i64> =
            sqlx::query_scalar("SELECT id FROM boards WHERE workspace_id = $1 ORDER BY id")
                .bind(ws.as_str())
                .fetch_all(self.reader(read).await)
                .await?;
        Ok(ids.into_iter().map(BoardId).collect())
    }

    async fn create_contact(&self, ws: &WorkspaceId, f: ContactFields) -> Result<Contact> {
        writes::retried(|| writes::create(&self.db, ws, &f)).await
    }

    async fn update_contact(
        &self,
        ws: &WorkspaceId,
        id: ContactId,
        f: ContactFields,
    ) -> Result<(Contact, Contact)> {
        writes::retried(|| writes::update(&self.db, ws, id, &f)).await
    }

    async fn delete_contact(&self, ws: &WorkspaceId, id: ContactId) -> Result<BoardId> {
        writes::retried(|| writes::delete(&self.db, ws, id)).await
    }

    async fn conversations(
        &self,
        read: Read,
        ws: &WorkspaceId,
        q: &ConversationQuery,
    ) -> Result<ConversationPage> {
        let rows = conversations_query::<Postgres>(ws, q, D)
            .build_query_as()
            .fetch_all(self.reader(read).await)
            .await?;
        Ok(conversations_of(rows, ws, q, D, &self.cursors))
    }

    async fn messages(
        &self,
        read: Read,
        ws: &WorkspaceId,
        q: &MessageQuery,
    ) -> Result<MessagePage> {
        let db = self.reader(read).await;
        Ok(read_page!(db, Postgres, ws, q, &self.cursors))
    }

    async fn search_messages(
        &self,
        read: Read,
        ws: &WorkspaceId,
        q: &MessageSearch,
    ) -> Result<MessageSearchPage> {
        let mut on = Cancellable::acquire(self.reader(read).await).await?;
        let rows: Vec<HitRow> = search_query::<Postgres>(ws, q, D)
            .build_query_as()
            .persistent(false)
            .fetch_all(on.conn())
            .await?;
        on.done();
        Ok(search_page_of(rows, ws, q, &self.cursors))
    }

    async fn start_conversation(
        &self,
        ws: &WorkspaceId,
        contact: ContactId,
    ) -> Result<Conversation> {
        writes::retried(|| writes::start_conversation(&self.db, ws, contact)).await
    }

    async fn post_message(
        &self,
        ws: &WorkspaceId,
        conversation: ConversationId,
        m: &NewMessage,
    ) -> Result<Posted> {
        writes::retried(|| writes::post_message(&self.db, ws, conversation, m)).await
    }

    async fn edit_message(
        &self,
        ws: &WorkspaceId,
        conversation: ConversationId,
        id: MessageId,
        body: &str,
        by: &Author,
    ) -> Result<Message> {
        writes::retried(|| writes::edit_message(&self.db, ws, conversation, id, body, by)).await
    }

    async fn delete_message(
        &self,
        ws: &WorkspaceId,
        conversation: ConversationId,
        id: MessageId,
        by: &Author,
    ) -> Result<()> {
        writes::retried(|| writes::delete_message(&self.db, ws, conversation, id, by)).await
    }

    async fn check_counters(&self, ws: Option<&WorkspaceId>, repair: bool) -> Result<Vec<Drift>> {
        counters::check(&self.db, ws, repair).await
    }

    async fn prune_counters(&self) -> Result<u64> {
        let done = prune_query::<Postgres>(D).build().execute(&self.db).await?;
        Ok(done.rows_affected())
    }

    async fn fold_counters(&self) -> Result<u64> {
        counters::fold(&self.db).await
    }

    async fn prune_search_words(&self, batch: i64) -> Result<u64> {
        vocabulary::prune(&self.db, batch).await
    }

    async fn load_settings(&self, ws: &WorkspaceId) -> Result<CacheSettings> {
        settings::load(&self.db, ws).await
    }

    async fn save_settings(
        &self,
        ws: &WorkspaceId,
        settings: &CacheSettings,
    ) -> Result<DateTime<Utc>> {
        settings::save(&self.db, ws, settings).await
    }

    async fn seed(&self, ws: &WorkspaceId, contacts: u32, boards: u32) -> Result<Seeded> {
        seed::seed(&self.db, ws, contacts, boards).await
    }

    async fn seed_messages(
        &self,
        ws: &WorkspaceId,
        conversations: u32,
        messages: u64,
    ) -> Result<SeededHistory> {
        seed::seed_messages(&self.db, ws, conversations, messages).await
    }

    async fn is_empty(&self) -> Result<bool> {
        seed::is_empty(&self.db).await
    }

    async fn follow_changes(&self, changes: UnboundedSender<Notice>) {
        changes::listen(&self.db, changes).await;
    }

    async fn outside_changes(&self) -> Result<Vec<(WorkspaceId, u64)>> {
        changes::outside_changes(&self.db).await
    }

    async fn announce_workspace(&self, ws: &WorkspaceId) -> Result<()> {
        changes::announce_workspace(&self.db, ws).await
    }

    async fn close(&self) {
        self.db.close().await;
        if let Some(r) = &self.replica {
            r.pool.close().await;
        }
    }
}
