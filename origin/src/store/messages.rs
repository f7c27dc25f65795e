//! Conversations and messages as rows, the statements both stores run, and what a write
//! of them may carry. Every statement names the workspace: a conversation or message id
//! of another workspace finds nothing.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use shared::cursor::CursorKey;
use shared::messages::{
    check_body, Conversation, ConversationPage, ConversationQuery, CursorPagination, Message,
    MessagePage, MessageQuery, SenderType,
};
use shared::model::Contact;
use shared::{ConversationId, InputError, MessageId, UserId, WorkspaceId};

use crate::error::Error;
use sqlx::{Database, Encode, FromRow, QueryBuilder, Type};

use super::contacts::{timestamp, CONTACT_COLUMNS};
use super::filters::Dialect;
use super::page_end;

pub const CONVERSATION_COLUMNS: &str =
    "id, workspace_id, contact_id, status, created_at, last_message_at";
pub const MESSAGE_COLUMNS: &str = "id, conversation_id, sender_type, sender_id, body, \
    created_at, edited_at, edited_by, deleted_at, deleted_by";

#[derive(FromRow)]
pub struct ConversationRow {
    id: i64,
    workspace_id: String,
    contact_id: i64,
    status: String,
    created_at: DateTime<Utc>,
    last_message_at: DateTime<Utc>,
}

impl From<ConversationRow> for Conversation {
    fn from(r: ConversationRow) -> Self {
        Self {
            id: r.id,
            workspace_id: r.workspace_id,
            contact_id: r.contact_id,
            status: r.status,
            created_at: timestamp(r.created_at),
            last_message_at: timestamp(r.last_message_at),
        }
    }
}

#[derive(FromRow)]
pub struct MessageRow {
    id: i64,
    conversation_id: i64,
    sender_type: String,
    sender_id: Option<String>,
    body: Option<String>,
    pub created_at: DateTime<Utc>,
    edited_at: Option<DateTime<Utc>>,
    edited_by: Option<String>,
    deleted_at: Option<DateTime<Utc>>,
    deleted_by: Option<String>,
}

impl MessageRow {
    pub fn id(&self) -> i64 {
        self.id
    }
}

impl From<MessageRow> for Message {
    fn from(r: MessageRow) -> Self {
        Self {
            id: r.id,
            conversation_id: r.conversation_id,
            sender_type: r.sender_type,
            sender_id: r.sender_id,
            body: r.body,
            created_at: timestamp(r.created_at),
            edited_at: r.edited_at.map(timestamp),
            edited_by: r.edited_by,
            deleted_at: r.deleted_at.map(timestamp),
            deleted_by: r.deleted_by,
        }
    }
}

/// `POST .../conversations`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewConversation {
    pub contact_id: i64,
}

/// `POST .../messages`: who wrote it (a sender id is a user or contact reference of up to
/// 64 id characters) and what.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewMessage {
    #[schema(value_type = String, example = "agent")]
    pub sender_type: SenderType,
    pub sender_id: Option<String>,
    pub body: String,
}

/// Who writes a message, as the token says: which messages they may send, edit and
/// delete (API.md, "Authorship").
#[derive(Debug, Clone)]
pub struct Author {
    pub user: UserId,
    pub admin: bool,
    pub integration: bool,
}

impl Author {
    /// May this author edit or delete a message `sender_type` `sender_id` wrote?
    pub fn may_change(&self, sender_type: &str, sender_id: Option<&str>) -> bool {
        self.admin
            || (sender_type == SenderType::Agent.as_str() && sender_id == Some(self.user.as_str()))
            || (self.integration && sender_type != SenderType::Agent.as_str())
    }
}

impl NewMessage {
    /// The message as `by` may send it: an agent message is the token's user's (a body
    /// naming another agent is refused), a contact's or a bot's needs an integration.
    pub fn authored_by(mut self, by: &Author) -> Result<Self, Error> {
        match self.sender_type {
            SenderType::Agent => {
                if self
                    .sender_id
                    .as_deref()
                    .is_some_and(|id| id != by.user.as_str())
                {
                    return Err(Error::Forbidden(
                        "an agent message is sent as the token's user",
                    ));
                }
                self.sender_id = Some(by.user.as_str().to_owned());
            }
            SenderType::Contact | SenderType::Bot if !by.integration => {
                return Err(Error::Forbidden(
                    "contact and bot messages need an integration credential",
                ));
            }
            SenderType::Contact | SenderType::Bot => {}
        }
        Ok(self)
    }

    pub fn validate(&self) -> Result<(), InputError> {
        if let Some(id) = &self.sender_id {
            UserId::parse(id).map_err(|_| {
                InputError::new(
                    "invalid_sender_id",
                    "sender_id must be 1 to 64 characters of A-Z, a-z, 0-9, '_' or '-'",
                )
            })?;
        }
        check_body(&self.body)
    }
}

/// `PATCH .../messages/{id}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EditedMessage {
    pub body: String,
}

/// A posted message and its contact before and after the post touched it.
#[derive(Debug)]
pub struct Posted {
    pub message: Message,
    pub contact: (Contact, Contact),
}

/// One page of a conversation's messages, newest first, one row more than the page.
pub fn page_query<'a, DB>(ws: &'a WorkspaceId, q: &MessageQuery) -> QueryBuilder<'a, DB>
where
    DB: Database,
    &'a str: Encode<'a, DB> + Type<DB>,
    i64: Encode<'a, DB> + Type<DB>,
{
    let mut qb = QueryBuilder::new(format!("SELECT {MESSAGE_COLUMNS} FROM messages"));
    qb.push(" WHERE conversation_id = ")
        .push_bind(q.conversation.0);
    qb.push(" AND workspace_id = ").push_bind(ws.as_str());
    if let Some(before) = q.before_id() {
        qb.push(" AND id < ").push_bind(before);
    }
    qb.push(" ORDER BY id DESC LIMIT ")
        .push_bind(i64::from(q.limit) + 1);
    qb
}

pub fn page_of(
    mut rows: Vec<MessageRow>,
    ws: &WorkspaceId,
    q: &MessageQuery,
    key: &CursorKey,
) -> MessagePage {
    let next_cursor = page_end(&mut rows, q.limit).map(|last| q.next_cursor(key, ws, last.id));
    MessagePage {
        messages: rows.into_iter().map(Message::from).collect(),
        pagination: CursorPagination::new(q.limit, next_cursor),
    }
}

/// A page of the workspace's conversations, the latest message first.
pub fn conversations_query<'a, DB>(
    ws: &'a WorkspaceId,
    q: &'a ConversationQuery,
    d: Dialect,
) -> QueryBuilder<'a, DB>
where
    DB: Database,
    &'a str: Encode<'a, DB> + Type<DB>,
    i64: Encode<'a, DB> + Type<DB>,
{
    let mut qb = QueryBuilder::new(format!("SELECT {CONVERSATION_COLUMNS} FROM conversations"));
    qb.push(" WHERE workspace_id = ").push_bind(ws.as_str());
    if let Some(contact) = q.contact {
        qb.push(" AND contact_id = ").push_bind(contact);
    }
    if let Some(status) = q.status {
        qb.push(" AND status = ").push_bind(status);
    }
    if let Some(after) = &q.after {
        qb.push(" AND (last_message_at, id) < (")
            .push_bind(after.value.as_str())
            .push(d.time_param())
            .push(", ")
            .push_bind(after.id)
            .push(")");
    }
    qb.push(" ORDER BY last_message_at DESC, id DESC LIMIT ")
        .push_bind(i64::from(q.limit) + 1);
    qb
}

pub fn conversations_of(
    mut rows: Vec<ConversationRow>,
    ws: &WorkspaceId,
    q: &ConversationQuery,
    d: Dialect,
    key: &CursorKey,
) -> ConversationPage {
    let next_cursor = page_end(&mut rows, q.limit)
        .map(|last| q.next_cursor(key, ws, d.cursor_time(last.last_message_at), last.id));
    ConversationPage {
        conversations: rows.into_iter().map(Conversation::from).collect(),
        pagination: CursorPagination::new(q.limit, next_cursor),
    }
}

/// Starts a conversation with a contact of the workspace (none: no row).
pub fn start_query<'a, DB>(ws: &'a WorkspaceId, contact: i64) -> QueryBuilder<'a, DB>
where
    DB: Database,
    &'a str: Encode<'a, DB> + Type<DB>,
    i64: Encode<'a, DB> + Type<DB>,
{
    let mut qb = QueryBuilder::new(
        "INSERT INTO conversations (workspace_id, contact_id) \
         SELECT workspace_id, id FROM contacts WHERE workspace_id = ",
    );
    qb.push_bind(ws.as_str())
        .push(" AND id = ")
        .push_bind(contact)
        .push(" RETURNING ")
        .push(CONVERSATION_COLUMNS);
    qb
}

/// The contact a conversation of the workspace is with; no row for a conversation of
/// another workspace.
pub fn contact_query<'a, DB>(ws: &'a WorkspaceId, id: ConversationId) -> QueryBuilder<'a, DB>
where
    DB: Database,
    &'a str: Encode<'a, DB> + Type<DB>,
    i64: Encode<'a, DB> + Type<DB>,
{
    let mut qb = QueryBuilder::new("SELECT contact_id FROM conversations WHERE workspace_id = ");
    qb.push_bind(ws.as_str()).push(" AND id = ").push_bind(id.0);
    qb
}

pub fn insert_query<'a, DB>(
    ws: &'a WorkspaceId,
    id: ConversationId,
    m: &'a NewMessage,
) -> QueryBuilder<'a, DB>
where
    DB: Database,
    &'a str: Encode<'a, DB> + Type<DB>,
    Option<&'a str>: Encode<'a, DB> + Type<DB>,
    i64: Encode<'a, DB> + Type<DB>,
{
    let mut qb = QueryBuilder::new(
        "INSERT INTO messages (workspace_id, conversation_id, sender_type, sender_id, body) VALUES (",
    );
    qb.separated(", ")
        .push_bind(ws.as_str())
        .push_bind(id.0)
        .push_bind(m.sender_type.as_str())
        .push_bind(m.sender_id.as_deref())
        .push_bind(m.body.as_str());
    qb.push(") RETURNING ").push(MESSAGE_COLUMNS);
    qb
}

/// Moves a conversation to the instant `at` of its newest message.
pub fn touch_conversation_query<'a, DB>(
    id: ConversationId,
    at: String,
    d: Dialect,
) -> QueryBuilder<'a, DB>
where
    DB: Database,
    String: Encode<'a, DB> + Type<DB>,
    i64: Encode<'a, DB> + Type<DB>,
{
    let mut qb = QueryBuilder::new("UPDATE conversations SET last_message_at = ");
    qb.push_bind(at).push(d.time_param());
    qb.push(" WHERE id = ").push_bind(id.0);
    qb
}

/// Sets a contact's `last_activity_at` to the instant `at` of its newest message.
pub fn touch_contact_query<'a, DB>(id: i64, at: String, d: Dialect) -> QueryBuilder<'a, DB>
where
    DB: Database,
    String: Encode<'a, DB> + Type<DB>,
    i64: Encode<'a, DB> + Type<DB>,
{
    let mut qb = QueryBuilder::new("UPDATE contacts SET last_activity_at = ");
    qb.push_bind(at).push(d.time_param());
    qb.push(" WHERE id = ").push_bind(id);
    qb.push(" RETURNING ").push(CONTACT_COLUMNS);
    qb
}

pub fn edit_query<'a, DB>(
    ws: &'a WorkspaceId,
    conversation: ConversationId,
    id: MessageId,
    (body, by): (&'a str, &'a UserId),
    d: Dialect,
) -> QueryBuilder<'a, DB>
where
    DB: Database,
    &'a str: Encode<'a, DB> + Type<DB>,
    i64: Encode<'a, DB> + Type<DB>,
{
    let mut qb = QueryBuilder::new("UPDATE messages SET body = ");
    qb.push_bind(body)
        .push(format_args!(", edited_at = {}, edited_by = ", d.now()))
        .push_bind(by.as_str());
    push_message(&mut qb, ws, conversation, id);
    qb.push(" AND deleted_at IS NULL RETURNING ")
        .push(MESSAGE_COLUMNS);
    qb
}

/// Who wrote a message (`sender_type`, `sender_id`), to check who may change it; a
/// tombstone is no message to change.
pub fn sender_query<'a, DB>(
    ws: &'a WorkspaceId,
    conversation: ConversationId,
    id: MessageId,
) -> QueryBuilder<'a, DB>
where
    DB: Database,
    &'a str: Encode<'a, DB> + Type<DB>,
    i64: Encode<'a, DB> + Type<DB>,
{
    let mut qb = QueryBuilder::new("SELECT sender_type, sender_id FROM messages");
    push_message(&mut qb, ws, conversation, id);
    qb.push(" AND deleted_at IS NULL");
    qb
}

/// Fails unless the message exists (404) and `by` may change it (403).
pub fn check_author(found: Option<(String, Option<String>)>, by: &Author) -> Result<(), Error> {
    let (sender_type, sender_id) = found.ok_or(Error::NotFound("message"))?;
    by.may_change(&sender_type, sender_id.as_deref())
        .then_some(())
        .ok_or(Error::Forbidden(
            "a member edits and deletes only their own messages",
        ))
}

pub fn delete_query<'a, DB>(
    ws: &'a WorkspaceId,
    conversation: ConversationId,
    id: MessageId,
    by: &'a UserId,
    d: Dialect,
) -> QueryBuilder<'a, DB>
where
    DB: Database,
    &'a str: Encode<'a, DB> + Type<DB>,
    i64: Encode<'a, DB> + Type<DB>,
{
    let mut qb = QueryBuilder::new("UPDATE messages SET body = NULL, deleted_at = ");
    qb.push(d.now())
        .push(", deleted_by = ")
        .push_bind(by.as_str());
    push_message(&mut qb, ws, conversation, id);
    qb.push(" AND deleted_at IS NULL RETURNING id");
    qb
}

fn push_message<'a, DB>(
    qb: &mut QueryBuilder<'a, DB>,
    ws: &'a WorkspaceId,
    conversation: ConversationId,
    id: MessageId,
) where
    DB: Database,
    &'a str: Encode<'a, DB> + Type<DB>,
    i64: Encode<'a, DB> + Type<DB>,
{
    qb.push(" WHERE workspace_id = ").push_bind(ws.as_str());
    qb.push(" AND conversation_id = ").push_bind(conversation.0);
    qb.push(" AND id = ").push_bind(id.0);
}

/// Posts a message in one transaction of either store: the contact is locked first (the
/// order a contact's deletion takes them in), then the message inserted and its instant
/// made the conversation's `last_message_at` and the contact's `last_activity_at`.
macro_rules! post_in_transaction {
    ($tx:expr, $db:ty, $dialect:expr, $ws:expr, $conversation:expr, $message:expr) => {{
        use $crate::error::Error;
        use $crate::store::contacts::{contact_before_update, ContactRow};
        use $crate::store::messages::{
            contact_query, insert_query, touch_contact_query, touch_conversation_query, MessageRow,
        };
        let (ws, conversation, message) = ($ws, $conversation, $message);
        let contact: i64 = contact_query::<$db>(ws, conversation)
            .build_query_scalar()
            .fetch_optional(&mut *$tx)
            .await?
            .ok_or(Error::NotFound("conversation"))?;
        let old: ContactRow = sqlx::query_as(&contact_before_update($dialect))
            .bind(ws.as_str())
            .bind(contact)
            .fetch_one(&mut *$tx)
            .await?;
        let row: MessageRow = insert_query::<$db>(ws, conversation, message)
            .build_query_as()
            .fetch_one(&mut *$tx)
            .await?;
        let at = $dialect.cursor_time(row.created_at);
        touch_conversation_query::<$db>(conversation, at.clone(), $dialect)
            .build()
            .execute(&mut *$tx)
            .await?;
        let new: ContactRow = touch_contact_query::<$db>(contact, at, $dialect)
            .build_query_as()
            .fetch_one(&mut *$tx)
            .await?;
        $crate::store::messages::Posted {
            message: row.into(),
            contact: (old.into(), new.into()),
        }
    }};
}
pub(crate) use post_in_transaction;

/// A page of messages from either store: one range scan, and only for an empty page a
/// second look, to tell an empty conversation from one that is not the workspace's.
macro_rules! read_page {
    ($executor:expr, $db:ty, $ws:expr, $q:expr, $key:expr) => {{
        use $crate::store::messages::{contact_query, page_of, page_query, MessageRow};
        let (ws, q) = ($ws, $q);
        let rows: Vec<MessageRow> = page_query::<$db>(ws, q)
            .build_query_as()
            .fetch_all($executor)
            .await?;
        if rows.is_empty() {
            let found: Option<i64> = contact_query::<$db>(ws, q.conversation)
                .build_query_scalar()
                .fetch_optional($executor)
                .await?;
            found.ok_or($crate::error::Error::NotFound("conversation"))?;
        }
        page_of(rows, ws, q, $key)
    }};
}
pub(crate) use read_page;
