//! The embedded store: one SQLite file, so that the origin runs with nothing installed.
//! Writes go through a pool of one connection (SQLite has one writer at a time; queuing
//! them here beats retrying on "database is locked"); reads use their own connections,
//! which WAL mode lets run beside a write.

mod seed;

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use shared::cursor::CursorKey;
use shared::message_search::{MessageSearch, MessageSearchPage};
use shared::messages::{
    Conversation, ConversationPage, ConversationQuery, Message, MessagePage, MessageQuery,
};
use shared::model::{Contact, ContactPage, Counts};
use shared::query::ContactListQuery;
use shared::settings::CacheSettings;
use shared::{BoardId, ContactId, ConversationId, MessageId, UserId, WorkspaceId};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::types::Json;
use sqlx::{ConnectOptions, Sqlite, SqlitePool};
use tokio::sync::mpsc::UnboundedSender;

use super::contacts::{
    contact_before_update, insert_query, page_of, page_query, total_of, total_query, update_query,
    ContactRow,
};
use super::counters::{check_in_transaction, counts_of, counts_query, prune_query, Drift};
use super::fields::ContactFields;
use super::filters::Dialect;
use super::message_search::{search_page_of, search_query, HitRow};
use super::messages::{
    check_author, conversations_of, conversations_query, delete_query, edit_query,
    post_in_transaction, read_page, sender_query, start_query, Author, ConversationRow, MessageRow,
    NewMessage, Posted,
};
use super::search::{find_near_words, Search};
use super::{Notice, Read, Seeded, SeededHistory, Store};
use crate::error::{Error, Result};

const D: Dialect = Dialect::Sqlite;

pub struct SqliteStore {
    path: PathBuf,
    write: SqlitePool,
    read: SqlitePool,
    /// Signs the cursors of the pages this store reads.
    cursors: CursorKey,
}

impl SqliteStore {
    /// Opens `path`, creating it and its directory on first use.
    pub async fn open(path: &Path, cursors: CursorKey) -> Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| Error::Internal(format!("cannot create {}: {e}", dir.display())))?;
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        // The writer seeds the demo data, one statement for all of it: not worth a warning.
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone().disable_statement_logging())
            .await?;
        let read = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_lazy_with(options.read_only(true));
        Ok(Self {
            path: path.to_owned(),
            write,
            read,
            cursors,
        })
    }
}

#[async_trait]
impl Store for SqliteStore {
    fn kind(&self) -> &'static str {
        "sqlite"
    }

    fn location(&self) -> String {
        self.path.display().to_string()
    }

    fn has_replica(&self) -> bool {
        false
    }

    async fn migrate(&self) -> Result<()> {
        sqlx::migrate!("../migrations/sqlite")
            .run(&self.write)
            .await
            .map_err(super::internal)
    }

    async fn ping(&self, _: Read) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.read).await?;
        Ok(())
    }

    fn connections(&self) -> (u32, usize) {
        (
            self.write.size() + self.read.size(),
            self.write.num_idle() + self.read.num_idle(),
        )
    }

    async fn counts(&self, _: Read, ws: &WorkspaceId, user: &UserId) -> Result<Counts> {
        let row = counts_query::<Sqlite>(ws, user, D)
            .build()
            .fetch_one(&self.read)
            .await?;
        counts_of(&row)
    }

    async fn page(
        &self,
        _: Read,
        ws: &WorkspaceId,
        board: BoardId,
        q: &ContactListQuery,
        user: &UserId,
    ) -> Result<ContactPage> {
        let mut search = Search::of(q);
        find_near_words!(search, ws, Sqlite, D, &self.read);
        let total: i64 = total_query::<Sqlite>(ws, board, q, user, D, search.as_ref())
            .build_query_scalar()
            .fetch_one(&self.read)
            .await?;
        let rows: Vec<ContactRow> = page_query::<Sqlite>(ws, board, q, user, D, search.as_ref())
            .build_query_as()
            .fetch_all(&self.read)
            .await?;
        // A row of the page proves the board is the workspace's (a contact's foreign key
        // names its workspace and board together), so only an empty page asks.
        if rows.is_empty() {
            let exists: Option<i64> =
                sqlx::query_scalar("SELECT 1 FROM boards WHERE id = ? AND workspace_id = ?")
                    .bind(board.0)
                    .bind(ws.as_str())
                    .fetch_optional(&self.read)
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

    async fn boards(&self, _: Read, ws: &WorkspaceId) -> Result<Vec<BoardId>> {
        let ids: Vec<i64> =
            sqlx::query_scalar("SELECT id FROM boards WHERE workspace_id = ? ORDER BY id")
                .bind(ws.as_str())
                .fetch_all(&self.read)
                .await?;
        Ok(ids.into_iter().map(BoardId).collect())
    }

    async fn create_contact(&self, ws: &WorkspaceId, f: ContactFields) -> Result<Contact> {
        let row: ContactRow = insert_query::<Sqlite>(ws, &f)?
            .build_query_as()
            .fetch_one(&self.write)
            .await
            .map_err(Error::reference)?;
        Ok(row.into())
    }

    async fn update_contact(
        &self,
        ws: &WorkspaceId,
        id: ContactId,
        f: ContactFields,
    ) -> Result<(Contact, Contact)> {
        let mut tx = self.write.begin().await?;
        let old: Option<ContactRow> = sqlx::query_as(&contact_before_update(D))
            .bind(ws.as_str())
            .bind(id.0)
            .fetch_optional(&mut *tx)
            .await?;
        let old: Contact = old.ok_or(Error::NotFound("contact"))?.into();
        f.check_move(old.board_id)?;
        let row: ContactRow = update_query::<Sqlite>(ws, id, &f, D)
            .build_query_as()
            .fetch_one(&mut *tx)
            .await
            .map_err(Error::reference)?;
        tx.commit().await?;
        Ok((old, row.into()))
    }

    async fn delete_contact(&self, ws: &WorkspaceId, id: ContactId) -> Result<BoardId> {
        let board: Option<i64> = sqlx::query_scalar(
            "DELETE FROM contacts WHERE workspace_id = ? AND id = ? RETURNING board_id",
        )
        .bind(ws.as_str())
        .bind(id.0)
        .fetch_optional(&self.write)
        .await?;
        board.map(BoardId).ok_or(Error::NotFound("contact"))
    }

    async fn conversations(
        &self,
        _: Read,
        ws: &WorkspaceId,
        q: &ConversationQuery,
    ) -> Result<ConversationPage> {
        let rows = conversations_query::<Sqlite>(ws, q, D)
            .build_query_as()
            .fetch_all(&self.read)
            .await?;
        Ok(conversations_of(rows, ws, q, D, &self.cursors))
    }

    async fn messages(&self, _: Read, ws: &WorkspaceId, q: &MessageQuery) -> Result<MessagePage> {
        Ok(read_page!(&self.read, Sqlite, ws, q, &self.cursors))
    }

    async fn search_messages(
        &self,
        _: Read,
        ws: &WorkspaceId,
        q: &MessageSearch,
    ) -> Result<MessageSearchPage> {
        let rows: Vec<HitRow> = search_query::<Sqlite>(ws, q, D)
            .build_query_as()
            .fetch_all(&self.read)
            .await?;
        Ok(search_page_of(rows, ws, q, &self.cursors))
    }

    async fn start_conversation(
        &self,
        ws: &WorkspaceId,
        contact: ContactId,
    ) -> Result<Conversation> {
        let row: Option<ConversationRow> = start_query::<Sqlite>(ws, contact.0)
            .build_query_as()
            .fetch_optional(&self.write)
            .await?;
        row.map(Into::into).ok_or(Error::NotFound("contact"))
    }

    async fn post_message(
        &self,
        ws: &WorkspaceId,
        conversation: ConversationId,
        m: &NewMessage,
    ) -> Result<Posted> {
        let mut tx = self.write.begin().await?;
        let posted = post_in_transaction!(tx, Sqlite, D, ws, conversation, m);
        tx.commit().await?;
        Ok(posted)
    }

    async fn edit_message(
        &self,
        ws: &WorkspaceId,
        conversation: ConversationId,
        id: MessageId,
        body: &str,
        by: &Author,
    ) -> Result<Message> {
        let mut tx = self.write.begin().await?;
        check_sender(&mut tx, ws, conversation, id, by).await?;
        let row: Option<MessageRow> =
            edit_query::<Sqlite>(ws, conversation, id, (body, &by.user), D)
                .build_query_as()
                .fetch_optional(&mut *tx)
                .await?;
        tx.commit().await?;
        row.map(Into::into).ok_or(Error::NotFound("message"))
    }

    async fn delete_message(
        &self,
        ws: &WorkspaceId,
        conversation: ConversationId,
        id: MessageId,
        by: &Author,
    ) -> Result<()> {
        let mut tx = self.write.begin().await?;
        check_sender(&mut tx, ws, conversation, id, by).await?;
        let deleted: Option<i64> = delete_query::<Sqlite>(ws, conversation, id, &by.user, D)
            .build_query_scalar()
            .fetch_optional(&mut *tx)
            .await?;
        tx.commit().await?;
        deleted.map(drop).ok_or(Error::NotFound("message"))
    }

    /// On the one writer connection, so no write interleaves with the recount.
    async fn check_counters(&self, ws: Option<&WorkspaceId>, repair: bool) -> Result<Vec<Drift>> {
        let mut tx = self.write.begin().await?;
        let found = check_in_transaction!(tx, Sqlite, D, ws, repair);
        tx.commit().await?;
        Ok(found)
    }

    async fn prune_counters(&self) -> Result<u64> {
        let done = prune_query::<Sqlite>(D)
            .build()
            .execute(&self.write)
            .await?;
        Ok(done.rows_affected())
    }

    /// The embedded store's vocabulary is its full-text index's own, exact at every
    /// write: nothing to sweep.
    async fn prune_search_words(&self, _batch: i64) -> Result<u64> {
        Ok(0)
    }

    /// One writer at a time: the counters have no shards to fold.
    async fn fold_counters(&self) -> Result<u64> {
        Ok(0)
    }

    async fn load_settings(&self, ws: &WorkspaceId) -> Result<CacheSettings> {
        let row: Option<Json<CacheSettings>> = sqlx::query_scalar(
            "SELECT settings FROM workspace_cache_settings WHERE workspace_id = ?",
        )
        .bind(ws.as_str())
        .fetch_optional(&self.read)
        .await?;
        Ok(row.map(|j| j.0).unwrap_or_default())
    }

    async fn save_settings(
        &self,
        ws: &WorkspaceId,
        settings: &CacheSettings,
    ) -> Result<DateTime<Utc>> {
        sqlx::query_scalar(
            "INSERT INTO workspace_cache_settings (workspace_id, settings, updated_at) \
             VALUES (?, ?, strftime('%Y-%m-%dT%H:%M:%fZ', 'now')) \
             ON CONFLICT (workspace_id) DO UPDATE SET settings = excluded.settings, \
             updated_at = excluded.updated_at RETURNING updated_at",
        )
        .bind(ws.as_str())
        .bind(Json(settings))
        .fetch_one(&self.write)
        .await
        .map_err(Error::settings)
    }

    async fn seed(&self, ws: &WorkspaceId, contacts: u32, boards: u32) -> Result<Seeded> {
        seed::seed(&self.write, ws, contacts, boards).await
    }

    async fn seed_messages(
        &self,
        ws: &WorkspaceId,
        conversations: u32,
        messages: u64,
    ) -> Result<SeededHistory> {
        seed::seed_messages(&self.write, ws, conversations, messages).await
    }

    async fn is_empty(&self) -> Result<bool> {
        seed::is_empty(&self.write).await
    }

    /// Nothing but this API writes the file: there is nothing to follow.
    async fn follow_changes(&self, _: UnboundedSender<Notice>) {
        self.write.close_event().await;
    }

    /// Nothing but this API writes the file.
    async fn outside_changes(&self) -> Result<Vec<(WorkspaceId, u64)>> {
        Ok(Vec::new())
    }

    /// One process holds the file: no other instance to tell.
    async fn announce_workspace(&self, _: &WorkspaceId) -> Result<()> {
        Ok(())
    }

    async fn close(&self) {
        self.write.close().await;
        self.read.close().await;
    }
}

/// Checks that `by` may change the message (on the writer connection, where no other
/// write interleaves until the transaction ends).
async fn check_sender(
    tx: &mut sqlx::SqliteConnection,
    ws: &WorkspaceId,
    conversation: ConversationId,
    id: MessageId,
    by: &Author,
) -> Result<()> {
    let found = sender_query::<Sqlite>(ws, conversation, id)
        .build_query_as()
        .fetch_optional(tx)
        .await?;
    check_author(found, by)
}
