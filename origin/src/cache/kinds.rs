//! The cache's reads by kind (counts, contact pages, messages, conversations): the key
//! and the generations each is built on, read through the layers of `Cache`, and the
//! L1-only lookups the HTTP hit path answers from without waiting on anything.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use shared::cursor::{Cursor, CursorKey};
use shared::keys::{contacts_tail, FieldNames, GenerationScope, Generations as KeyGens, Scopes};
use shared::message_search::MessageSearch;
use shared::messages::{ConversationQuery, MessageQuery};
use shared::model::{CacheStatus, ContactPage, Source};
use shared::query::ContactListQuery;
use shared::{BoardId, UserId, WorkspaceId};

use super::entry::{now_ms, Began, Entry};
use super::{Answer, Cache, Layers, RowsBasis};
use crate::error::Result;

/// What a page hit's key is made of besides the generations, from its board and query
/// alone: the key's tail (`contacts_tail`) and the field names of the counters of the
/// page's scopes and of its rows. A caller that sees the same query again may keep them.
#[derive(Debug, PartialEq, Eq)]
pub struct PageKeyParts {
    pub tail: String,
    scopes: FieldNames,
    rows: FieldNames,
}

impl PageKeyParts {
    pub fn of(board: BoardId, q: &ContactListQuery) -> Self {
        Self {
            tail: contacts_tail(q),
            scopes: FieldNames::of(&GenerationScope::of_page(board, q)),
            rows: FieldNames::of(&[GenerationScope::Rows(board)]),
        }
    }
}

impl Cache {
    /// The counts `user` sees, through the cache (`ttl`) or from `compute` (`None`).
    pub async fn counts<F, Fut>(
        &self,
        ws: &WorkspaceId,
        user: &UserId,
        ttl: Option<u32>,
        compute: F,
    ) -> Result<Answer>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<String>> + Send + 'static,
    {
        let key = |gens| self.keys.counts(ws, gens, user);
        self.read(ws, &[GenerationScope::Counts], None, ttl, key, compute)
            .await
    }

    /// A page of `board`, through the cache (`ttl`) or from `compute` (`None`).
    pub async fn page<F, Fut>(
        &self,
        ws: &WorkspaceId,
        board: BoardId,
        q: &ContactListQuery,
        ttl: Option<u32>,
        compute: F,
    ) -> Result<Answer>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<String>> + Send + 'static,
    {
        let scopes = GenerationScope::of_page(board, q);
        let key = |gens| self.keys.contacts(ws, board, gens, q);
        self.read(ws, &scopes, Some(board), ttl, key, compute).await
    }

    /// A page of a conversation's messages, through the cache (`ttl`) or from `compute`
    /// (`None`). Only the head page depends on what was appended.
    pub async fn messages<F, Fut>(
        &self,
        ws: &WorkspaceId,
        q: &MessageQuery,
        ttl: Option<u32>,
        compute: F,
    ) -> Result<Answer>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<String>> + Send + 'static,
    {
        let scopes = GenerationScope::of_messages(q);
        let key = |gens| self.keys.messages(ws, gens, q);
        self.read(ws, &scopes, None, ttl, key, compute).await
    }

    /// A page of a message search, through the cache (`ttl`) or from `compute` (`None`).
    pub async fn message_search<F, Fut>(
        &self,
        ws: &WorkspaceId,
        q: &MessageSearch,
        ttl: Option<u32>,
        compute: F,
    ) -> Result<Answer>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<String>> + Send + 'static,
    {
        let scopes = GenerationScope::of_message_search(q);
        let key = |gens| self.keys.message_search(ws, gens, q);
        self.read(ws, &scopes, None, ttl, key, compute).await
    }

    /// A page of the workspace's conversation list, through the cache (`ttl`) or from
    /// `compute` (`None`).
    pub async fn conversations<F, Fut>(
        &self,
        ws: &WorkspaceId,
        q: &ConversationQuery,
        ttl: Option<u32>,
        compute: F,
    ) -> Result<Answer>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<String>> + Send + 'static,
    {
        let key = |gens| self.keys.conversations(ws, gens, q);
        let scopes = [GenerationScope::Conversations];
        self.read(ws, &scopes, None, ttl, key, compute).await
    }

    /// The key the counts of `user` are cached under now.
    pub async fn counts_key(&self, ws: &WorkspaceId, user: &UserId) -> String {
        let gens = self
            .generations
            .current(ws, &[GenerationScope::Counts])
            .await;
        self.keys.counts(ws, gens, user)
    }

    /// The key a page of `board` is cached under now.
    pub async fn page_key(&self, ws: &WorkspaceId, board: BoardId, q: &ContactListQuery) -> String {
        let gens = self
            .generations
            .current(ws, &GenerationScope::of_page(board, q))
            .await;
        self.keys.contacts(ws, board, gens, q)
    }

    /// Reads a key of `ws` depending on `scopes` (and, for a page, on its `board`'s rows)
    /// through every layer, or straight from the database when `ttl` is `None` (caching
    /// off for this workspace, feature or request).
    async fn read<F, Fut>(
        &self,
        ws: &WorkspaceId,
        scopes: &[GenerationScope],
        board: Option<BoardId>,
        ttl: Option<u32>,
        key: impl Fn(KeyGens) -> String,
        compute: F,
    ) -> Result<Answer>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<String>> + Send + 'static,
    {
        let Some(ttl) = ttl else {
            self.stats.db_query();
            self.traffic.read(ws, false);
            let started = Instant::now();
            let body = compute().await?;
            self.observe(Source::Database, started);
            return Ok(Answer {
                entry: Arc::new(Entry::new(body, 0, None)),
                source: Source::Database,
                status: CacheStatus::Bypass,
            });
        };
        let (gens, rows) = self.basis(ws, scopes, board).await;
        let stand_in = |now: &str| self.stand_in(ws, scopes, board, &key, now);
        let answer = self
            .read_through(
                key(gens),
                ttl,
                Layers::ALL,
                rows.as_ref(),
                stand_in,
                compute,
            )
            .await;
        if let Ok(a) = &answer {
            let hit = matches!(a.status, CacheStatus::Hit | CacheStatus::Stale);
            self.traffic.read(ws, hit);
        }
        answer
    }

    /// What L1 holds for a read of `ws` depending on `scopes` (and, for a page, on its
    /// `board`'s rows) under the generations from before Redis lost them, if it was
    /// current then (see `Begun`).
    fn stand_in(
        &self,
        ws: &WorkspaceId,
        scopes: &[GenerationScope],
        board: Option<BoardId>,
        key: impl Fn(KeyGens) -> String,
        now: &str,
    ) -> Option<Arc<Entry>> {
        let rows = board.map(GenerationScope::Rows);
        let [gens, rows_then] = self.generations.before_each(
            ws,
            [Scopes::Listed(scopes), Scopes::Listed(rows.as_slice())],
        )?;
        let then = key(gens);
        if then == now {
            return None;
        }
        // Only what was a fresh hit before the loss: an entry kept past its TTL for the
        // stale grace waits for its refill like any stale value of the key.
        let e = self.memory.get(&then).filter(|e| e.is_fresh(now_ms()))?;
        let basis = board.map(|board| RowsBasis {
            ws,
            board,
            seq: rows_then.scope,
        });
        (Self::known_current(&e, basis.as_ref()) == Some(true)).then_some(e)
    }

    /// What a read of `ws` depending on `scopes` (and, for a page, on its `board`'s rows)
    /// is keyed and checked by now.
    async fn basis<'a>(
        &self,
        ws: &'a WorkspaceId,
        scopes: &[GenerationScope],
        board: Option<BoardId>,
    ) -> (KeyGens, Option<RowsBasis<'a>>) {
        let gens = self.generations.current(ws, scopes).await;
        let rows = match board {
            Some(board) => Some(RowsBasis {
                ws,
                board,
                seq: self
                    .generations
                    .current(ws, &[GenerationScope::Rows(board)])
                    .await
                    .scope,
            }),
            None => None,
        };
        (gens, rows)
    }

    /// `user`'s counts if L1 holds them fresh and current under generations this instance
    /// knows now, else `None` (nothing counted): the whole of an L1 hit, without waiting
    /// on anything, for the HTTP layer's hit path.
    pub fn counts_in_memory(
        &self,
        ws: &WorkspaceId,
        user: &UserId,
        began: Began,
    ) -> Option<Answer> {
        let gens = self.generations.known(ws, &[GenerationScope::Counts])?;
        let key = self.keys.counts(ws, gens, user);
        self.in_memory(ws, &key, None, began)
    }

    /// As `counts_in_memory`, for a page of `board` whose key is made of `parts`.
    pub fn page_in_memory(
        &self,
        ws: &WorkspaceId,
        board: BoardId,
        parts: &PageKeyParts,
        began: Began,
    ) -> Option<Answer> {
        let [gens, rows] = self.generations.known_each(
            ws,
            [Scopes::Named(&parts.scopes), Scopes::Named(&parts.rows)],
        )?;
        let rows = RowsBasis {
            ws,
            board,
            seq: rows.scope,
        };
        let key = self.keys.contacts_with_tail(ws, board, gens, &parts.tail);
        self.in_memory(ws, &key, Some(&rows), began)
    }

    /// Where page `q.page` of an offset list starts when this instance holds the page
    /// before it fresh under the generations it knows now: that page's `next_cursor`.
    /// Read from there, a refill costs what page 1 costs instead of skipping every row
    /// before it (the refills that follow a workspace's invalidation are mostly pages 2,
    /// 3, … of lists whose earlier pages were just refilled). That page's boundary is as
    /// current as its key: whatever adds, removes or reorders the list's rows bumps a
    /// generation of the key, and an in-place edit its `Rows` log records moves no row.
    pub fn continuation(
        &self,
        ws: &WorkspaceId,
        board: BoardId,
        q: &ContactListQuery,
        key: &CursorKey,
    ) -> Option<Cursor> {
        if q.after.is_some() || q.page < 2 {
            return None;
        }
        let before = ContactListQuery {
            page: q.page - 1,
            ..q.clone()
        };
        let gens = self
            .generations
            .known(ws, &GenerationScope::of_page(board, &before))?;
        let e = self
            .memory
            .get(&self.keys.contacts(ws, board, gens, &before))?;
        if !e.is_fresh(now_ms()) {
            return None;
        }
        let next = ContactPage::next_cursor_in(&e.body())?;
        let after = q
            .decode_cursor(&next, key, ws, board)
            .ok()
            .filter(|c| c.page == q.page)?;
        self.stats.page_read_on();
        Some(after)
    }

    fn in_memory(
        &self,
        ws: &WorkspaceId,
        key: &str,
        rows: Option<&RowsBasis<'_>>,
        began: Began,
    ) -> Option<Answer> {
        let e = self.memory_fresh(key, rows, began.ms)?;
        self.traffic.read(ws, true);
        Some(self.hit(e, Source::Memory, began.instant))
    }
}
