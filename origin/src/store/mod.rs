//! The source of truth behind the caches. Two stores answer the same interface:
//! Postgres in production, and SQLite embedded in the binary so that a newcomer runs
//! the origin with nothing installed. Every method takes the workspace and filters on
//! it: there is no query here that can read across tenants. One contract suite
//! (`origin/tests/api/contract.rs`) runs against both.

pub mod contacts;
pub mod counters;
pub mod fields;
pub mod filters;
pub mod message_search;
pub mod messages;
pub mod postgres;
pub mod search;
pub mod sqlite;

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use shared::invalidation::Thread;
use shared::message_search::{MessageSearch, MessageSearchPage};
use shared::messages::{
    Conversation, ConversationPage, ConversationQuery, Message, MessagePage, MessageQuery,
};
use shared::model::{Contact, ContactPage, Counts};
use shared::query::ContactListQuery;
use shared::settings::CacheSettings;
use shared::{BoardId, ContactId, ConversationId, MessageId, UserId, WorkspaceId};
use tokio::sync::mpsc;

use self::fields::ContactFields;
use self::messages::{Author, NewMessage, Posted};
use crate::config::{Config, StoreConfig};
use crate::error::{Error, Result};

/// Which copy a cache fill may read. Only Postgres with `DATABASE_READ_URL` has two.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read {
    Primary,
    /// The replica once it has replayed what the primary had written when this instance
    /// last heard the workspace change (`changed`), else the primary: a fill then never
    /// stores rows older than a write its key's generations already count.
    Replica {
        changed: Option<Instant>,
    },
}

/// What another writer changed in the store, learned from the store itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Board(WorkspaceId, BoardId),
    Conversation(WorkspaceId, ConversationId, Thread),
    /// An instance could not tell the others through Redis that it changed the workspace.
    Workspace(WorkspaceId),
    /// Notices may have been missed (the listener connected, or connected again).
    Unknown,
}

/// A change as the store announced it, with the transaction that made it where the store
/// says (every instance hears each notice; one of them acts on it for all).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub change: Change,
    pub tx: Option<u64>,
}

/// What `seed` created, for the log and the tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seeded {
    pub boards: Vec<i64>,
    pub contacts: u64,
}

/// The demo and test data: columns of each seeded board, in order.
pub const SEED_COLUMNS: [&str; 5] = ["New", "Contacted", "Qualified", "Negotiation", "Won"];

/// What `seed_messages` created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeededHistory {
    pub conversations: Vec<i64>,
    pub messages: u64,
}

/// Rows one seeding statement inserts: a million-contact workspace reports its progress
/// ten times instead of going quiet for minutes.
const SEED_CHUNK: u64 = 100_000;

/// The numbers (from 1) of the rows each seeding statement inserts, as inclusive ranges.
fn chunks(total: u64) -> impl Iterator<Item = (i64, i64)> {
    (0..total.div_ceil(SEED_CHUNK)).map(move |n| {
        let from = n * SEED_CHUNK + 1;
        let to = (from + SEED_CHUNK - 1).min(total);
        (from as i64, to as i64)
    })
}

fn seed_chunks(contacts: u32) -> impl Iterator<Item = (i64, i64)> {
    chunks(u64::from(contacts))
}

fn history_chunks(messages: u64) -> impl Iterator<Item = (i64, i64)> {
    chunks(messages)
}

fn seed_progress(ws: &WorkspaceId, done: u64, total: u32) {
    tracing::info!(workspace = %ws, done, total, "seeding contacts");
}

fn history_progress(ws: &WorkspaceId, done: u64, total: u64) {
    tracing::info!(workspace = %ws, done, total, "seeding messages");
}

#[async_trait]
pub trait Store: Send + Sync {
    /// `"postgres"` or `"sqlite"`, for health and the start-up log.
    fn kind(&self) -> &'static str;
    /// Where the data lives, without credentials.
    fn location(&self) -> String;
    fn has_replica(&self) -> bool;
    async fn migrate(&self) -> Result<()>;
    async fn ping(&self, read: Read) -> Result<()>;
    /// Open and idle connections, for `/metrics`.
    fn connections(&self) -> (u32, usize);

    async fn counts(&self, read: Read, ws: &WorkspaceId, user: &UserId) -> Result<Counts>;
    /// One page of a board, or `NotFound` when the board is not the workspace's.
    async fn page(
        &self,
        read: Read,
        ws: &WorkspaceId,
        board: BoardId,
        q: &ContactListQuery,
        user: &UserId,
    ) -> Result<ContactPage>;
    async fn boards(&self, read: Read, ws: &WorkspaceId) -> Result<Vec<BoardId>>;

    /// Creates a contact from validated fields (`ContactFields::validate_new`).
    async fn create_contact(&self, ws: &WorkspaceId, f: ContactFields) -> Result<Contact>;
    /// Applies a validated PATCH or move; the contact before and after, so the caches
    /// drop only what the change reached.
    async fn update_contact(
        &self,
        ws: &WorkspaceId,
        id: ContactId,
        f: ContactFields,
    ) -> Result<(Contact, Contact)>;
    /// Deletes a contact; the board it was on.
    async fn delete_contact(&self, ws: &WorkspaceId, id: ContactId) -> Result<BoardId>;

    /// The workspace's conversations, the latest message first.
    async fn conversations(
        &self,
        read: Read,
        ws: &WorkspaceId,
        q: &ConversationQuery,
    ) -> Result<ConversationPage>;
    /// A page of a conversation's messages, newest first; `NotFound` when the
    /// conversation is not the workspace's.
    async fn messages(&self, read: Read, ws: &WorkspaceId, q: &MessageQuery)
        -> Result<MessagePage>;
    /// A page of hits of a message search, newest first or by relevance.
    async fn search_messages(
        &self,
        read: Read,
        ws: &WorkspaceId,
        q: &MessageSearch,
    ) -> Result<MessageSearchPage>;
    /// Starts a conversation with a contact of the workspace.
    async fn start_conversation(
        &self,
        ws: &WorkspaceId,
        contact: ContactId,
    ) -> Result<Conversation>;
    /// Appends a validated message; it becomes the conversation's latest and its contact's
    /// last activity, in the same transaction.
    async fn post_message(
        &self,
        ws: &WorkspaceId,
        conversation: ConversationId,
        m: &NewMessage,
    ) -> Result<Posted>;
    /// Edits a message `by` may change (`Author::may_change`): 404 when there is no
    /// such message, 403 when it is someone else's.
    async fn edit_message(
        &self,
        ws: &WorkspaceId,
        conversation: ConversationId,
        id: MessageId,
        body: &str,
        by: &Author,
    ) -> Result<Message>;
    async fn delete_message(
        &self,
        ws: &WorkspaceId,
        conversation: ConversationId,
        id: MessageId,
        by: &Author,
    ) -> Result<()>;

    /// Compares the counters the database keeps with a recount of the contacts, for one
    /// workspace or all, and returns the buckets that differ; with `repair`, replaces
    /// them by the recount.
    async fn check_counters(
        &self,
        ws: Option<&WorkspaceId>,
        repair: bool,
    ) -> Result<Vec<counters::Drift>>;
    /// Deletes the clock counters of hours no count reads any more; how many rows went.
    async fn prune_counters(&self) -> Result<u64>;
    /// Sweeps the next `batch` words of the contact search vocabulary (where a typo's
    /// words are looked up), from where the last sweep stopped, dropping those no contact
    /// holds any more; how many went.
    async fn prune_search_words(&self, batch: i64) -> Result<u64>;
    /// Folds the counters' shards into one row per bucket, so that counts and totals sum
    /// fewer rows (migration `counter_folds`); how many shard rows it moved.
    async fn fold_counters(&self) -> Result<u64>;

    /// The stored settings, or the contract's defaults for a workspace that never saved any.
    async fn load_settings(&self, ws: &WorkspaceId) -> Result<CacheSettings>;
    async fn save_settings(
        &self,
        ws: &WorkspaceId,
        settings: &CacheSettings,
    ) -> Result<DateTime<Utc>>;

    /// Adds a workspace with `boards` boards of five columns and `contacts` contacts.
    /// Values vary the way a CRM's do: most contacts open, a minority urgent, archived
    /// or unhappy, activity spread over two years.
    async fn seed(&self, ws: &WorkspaceId, contacts: u32, boards: u32) -> Result<Seeded>;
    /// Starts `conversations` conversations with the workspace's newest contacts and adds
    /// `messages` messages to them over the last month, half of them to the first one.
    async fn seed_messages(
        &self,
        ws: &WorkspaceId,
        conversations: u32,
        messages: u64,
    ) -> Result<SeededHistory>;
    /// Whether any workspace exists (the first start seeds the demo one).
    async fn is_empty(&self) -> Result<bool>;

    /// Reports changes made by writers other than this API until the store is closed.
    async fn follow_changes(&self, changes: mpsc::UnboundedSender<Notice>);
    /// How many changes writers other than this API made to each workspace, ever (only
    /// workspaces they changed): what an instance that was not listening compares with
    /// what Redis last saw acted on (see `invalidation::catch_up`).
    async fn outside_changes(&self) -> Result<Vec<(WorkspaceId, u64)>>;
    /// Tells every instance following the store's changes that `ws` changed whole: the
    /// bus of last resort, for a change Redis could not take (see `invalidation::changed`).
    async fn announce_workspace(&self, ws: &WorkspaceId) -> Result<()>;
    async fn close(&self);
}

/// The store the configuration names. Connections are lazy where the store is remote:
/// the origin starts, and serves what it has cached, while Postgres is down.
pub async fn open(config: &Config) -> Result<Arc<dyn Store>> {
    Ok(match &config.store {
        StoreConfig::Postgres { url, read_url } => Arc::new(postgres::PgStore::connect(
            config,
            &url.0,
            read_url.as_ref().map(|r| r.0.as_str()),
        )?),
        StoreConfig::Sqlite { path } => {
            Arc::new(sqlite::SqliteStore::open(path, config.cursor_key()).await?)
        }
    })
}

/// Cuts `rows`, read one past the page, to the page's `size`: its last row when more
/// follow (what the next cursor names), else `None`.
pub(crate) fn page_end<T>(rows: &mut Vec<T>, size: u32) -> Option<&T> {
    let more = rows.len() > size as usize;
    rows.truncate(size as usize);
    rows.last().filter(|_| more)
}

fn internal(e: impl std::fmt::Display) -> Error {
    Error::Internal(e.to_string())
}

/// Counts as the JSON object that is cached. The future owns what it reads, so it can
/// outlive the request that started it (a stale-if-slow refresh finishes in the background).
pub async fn counts_json(
    store: Arc<dyn Store>,
    read: Read,
    ws: WorkspaceId,
    user: UserId,
) -> Result<String> {
    to_json(&store.counts(read, &ws, &user).await?)
}

/// A page as the JSON object that is cached (an owning future, as `counts_json`).
pub async fn page_json(
    store: Arc<dyn Store>,
    read: Read,
    ws: WorkspaceId,
    board: BoardId,
    q: ContactListQuery,
    user: UserId,
) -> Result<String> {
    to_json(&store.page(read, &ws, board, &q, &user).await?)
}

/// A page of messages as the JSON object that is cached (an owning future, as `counts_json`).
pub async fn messages_json(
    store: Arc<dyn Store>,
    read: Read,
    ws: WorkspaceId,
    q: MessageQuery,
) -> Result<String> {
    to_json(&store.messages(read, &ws, &q).await?)
}

/// A page of message search hits as the JSON object that is cached (an owning future,
/// as `counts_json`).
pub async fn message_search_json(
    store: Arc<dyn Store>,
    read: Read,
    ws: WorkspaceId,
    q: MessageSearch,
) -> Result<String> {
    to_json(&store.search_messages(read, &ws, &q).await?)
}

/// A page of conversations as the JSON object that is cached (an owning future, as
/// `counts_json`).
pub async fn conversations_json(
    store: Arc<dyn Store>,
    read: Read,
    ws: WorkspaceId,
    q: ConversationQuery,
) -> Result<String> {
    to_json(&store.conversations(read, &ws, &q).await?)
}

fn to_json(value: &impl serde::Serialize) -> Result<String> {
    serde_json::to_string(value).map_err(internal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_chunks_cover_every_contact_once() {
        let chunks: Vec<_> = seed_chunks(250_001).collect();
        assert_eq!(
            chunks,
            [(1, 100_000), (100_001, 200_000), (200_001, 250_001)]
        );
        assert_eq!(seed_chunks(0).count(), 0);
        assert_eq!(seed_chunks(7).collect::<Vec<_>>(), [(1, 7)]);
    }
}
