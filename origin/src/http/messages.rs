//! Message history (API.md "Message history"): pages of a conversation's messages and of
//! the workspace's conversations through the cache, and the writes. A write invalidates what it
//! changed before it answers: a new message only its conversation's head page (older
//! pages stay cached) and, through its contact's last activity, the lists and counts that
//! depend on it; an edit or a delete every page of its conversation.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, patch, post};
use axum::Router;
use shared::invalidation::{Changed, Thread};
use shared::message_search::{buckets_of, MessageSearch};
use shared::messages::{check_body, ConversationQuery, MessageQuery};
use shared::{ContactId, ConversationId, MessageId};

use super::auth::{Workspace, Writer};
use super::{reply, JsonBody, QueryPairs};
use crate::error::{ErrorBody, Failures, Result};
use crate::invalidation;
use crate::reads;
use crate::state::AppState;
use crate::store::filters::recently_active;
use crate::store::messages::{EditedMessage, NewConversation, NewMessage};

pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/conversations/{conversation_id}/messages", get(page))
        .route("/api/workspaces/{ws}/messages/search", get(search))
        .route(
            "/api/workspaces/{ws}/conversations",
            get(conversations).post(start),
        )
        .route(
            "/api/workspaces/{ws}/conversations/{conversation_id}/messages",
            post(post_message),
        )
        .route(
            "/api/workspaces/{ws}/conversations/{conversation_id}/messages/{message_id}",
            patch(edit).delete(delete),
        )
}

#[utoipa::path(get, path = "/api/conversations/{conversation_id}/messages", tag = "messages",
    params(("conversation_id" = i64, Path), ("X-Workspace-ID" = String, Header, description = "The workspace; must be granted by the token"),
        ("limit" = Option<u32>, Query, description = "1 to 100, default 50"),
        ("before" = Option<String>, Query, description = "pagination.next_cursor of the newer page"),
        ("useCache" = Option<bool>, Query)),
    responses((status = 200, description = "Messages newest first, with pagination (limit, next_cursor, has_more) and cache metadata"),
        (status = 404, description = "Not a conversation of this workspace", body = ErrorBody), Failures),
    security(("bearer" = []), ("internalKey" = [])))]
pub(super) async fn page(
    State(state): State<Arc<AppState>>,
    Workspace { ws, settings, .. }: Workspace,
    Path(conversation): Path<String>,
    query: QueryPairs,
) -> Result<Response> {
    let started = Instant::now();
    let conversation = ConversationId::parse(&conversation)?;
    let pairs = query.0.iter().map(|(k, v)| (k.as_str(), v.as_str()));
    let q = MessageQuery::from_pairs(pairs, &ws, conversation, &state.cursors)?;
    let use_cache = query.flag("useCache")?;
    let ttl = settings.messages_ttl().filter(|_| use_cache);
    let answer = reads::messages(&state, &ws, &q, ttl).await?;
    Ok(reply::answer(&answer, started, settings.cache_enabled))
}

#[utoipa::path(get, path = "/api/workspaces/{ws}/conversations", tag = "messages",
    params(("ws" = String, Path), ("contact_id" = Option<i64>, Query), ("status" = Option<String>, Query, description = "open or resolved"),
        ("limit" = Option<u32>, Query, description = "1 to 100, default 50"),
        ("cursor" = Option<String>, Query, description = "pagination.next_cursor of the previous page"),
        ("useCache" = Option<bool>, Query)),
    responses((status = 200, description = "Conversations, the latest message first, with pagination and cache metadata (cached with message history)"), Failures),
    security(("bearer" = []), ("internalKey" = [])))]
pub(super) async fn conversations(
    State(state): State<Arc<AppState>>,
    Workspace { ws, settings, .. }: Workspace,
    query: QueryPairs,
) -> Result<Response> {
    let started = Instant::now();
    let pairs = query.0.iter().map(|(k, v)| (k.as_str(), v.as_str()));
    let q = ConversationQuery::from_pairs(pairs, &ws, &state.cursors)?;
    let use_cache = query.flag("useCache")?;
    let ttl = settings.messages_ttl().filter(|_| use_cache);
    let answer = reads::conversations(&state, &ws, &q, ttl).await?;
    Ok(reply::answer(&answer, started, settings.cache_enabled))
}

#[utoipa::path(get, path = "/api/workspaces/{ws}/messages/search", tag = "messages",
    params(("ws" = String, Path),
        ("q" = String, Query, description = "Words (each matched as the start of a word of the body, case and accents aside) and \"quoted phrases\"; up to 100 characters"),
        ("conversation_id" = Option<i64>, Query), ("contact_id" = Option<i64>, Query),
        ("sort" = Option<String>, Query, description = "recent (default) or relevance (among the newest 1,000 hits)"),
        ("limit" = Option<u32>, Query, description = "1 to 100, default 20"),
        ("cursor" = Option<String>, Query, description = "pagination.next_cursor of the previous page"),
        ("useCache" = Option<bool>, Query)),
    responses((status = 200, description = "Hits {message, conversation_id, contact {id, name}, created_at, snippet (escaped HTML, matches in <mark>)} with pagination and cache metadata (cached with the search feature, for searchTTL)"), Failures),
    security(("bearer" = []), ("internalKey" = [])))]
pub(super) async fn search(
    State(state): State<Arc<AppState>>,
    Workspace {
        ws, user, settings, ..
    }: Workspace,
    query: QueryPairs,
) -> Result<Response> {
    let started = Instant::now();
    let pairs = query.0.iter().map(|(k, v)| (k.as_str(), v.as_str()));
    let q = MessageSearch::from_pairs(pairs, &ws, &state.cursors)?;
    state.limits.search(&ws, &user, &settings.rate_limits)?;
    let use_cache = query.flag("useCache")?;
    let ttl = settings.message_search_ttl().filter(|_| use_cache);
    let answer = reads::message_search(&state, &ws, &q, ttl).await?;
    Ok(reply::answer(&answer, started, settings.cache_enabled))
}

#[utoipa::path(post, path = "/api/workspaces/{ws}/conversations", tag = "messages",
    params(("ws" = String, Path)), request_body = NewConversation,
    responses((status = 201, description = "The conversation started"),
        (status = 404, description = "Not a contact of this workspace", body = ErrorBody), Failures),
    security(("bearer" = [])))]
pub(super) async fn start(
    State(state): State<Arc<AppState>>,
    Writer { ws, .. }: Writer,
    JsonBody(new): JsonBody<NewConversation>,
) -> Result<Response> {
    let contact = ContactId::parse(&new.contact_id.to_string())?;
    let conversation = invalidation::to_the_end(&state, &ws, |state, ws| async move {
        let conversation = state.store.start_conversation(&ws, contact).await?;
        let id = ConversationId(conversation.id);
        invalidation::changed(&state, &ws, &Changed::Conversation(id, Thread::Started)).await;
        Ok(conversation)
    })
    .await?;
    Ok(reply::with_status(StatusCode::CREATED, conversation))
}

#[utoipa::path(post, path = "/api/workspaces/{ws}/conversations/{conversation_id}/messages", tag = "messages",
    params(("ws" = String, Path), ("conversation_id" = i64, Path)), request_body = NewMessage,
    responses((status = 201, description = "The message posted"),
        (status = 403, description = "An agent message naming another sender, or a contact or bot message without an integration token", body = ErrorBody),
        (status = 404, description = "Not a conversation of this workspace", body = ErrorBody), Failures),
    security(("bearer" = [])))]
pub(super) async fn post_message(
    State(state): State<Arc<AppState>>,
    Writer { ws, by }: Writer,
    Path((_, conversation)): Path<(String, String)>,
    JsonBody(message): JsonBody<NewMessage>,
) -> Result<Response> {
    let conversation = ConversationId::parse(&conversation)?;
    message.validate()?;
    let message = message.authored_by(&by)?;
    let message = invalidation::to_the_end(&state, &ws, |state, ws| async move {
        let posted = state
            .store
            .post_message(&ws, conversation, &message)
            .await?;
        let (old, new) = &posted.contact;
        let (appended, touched) = (
            Changed::Conversation(conversation, Thread::Appended),
            Changed::update(old, new, recently_active),
        );
        let said = Changed::Said(buckets_of(
            posted.message.body.as_deref().unwrap_or_default(),
        ));
        tokio::join!(
            invalidation::changed(&state, &ws, &appended),
            invalidation::changed(&state, &ws, &touched),
            invalidation::changed(&state, &ws, &said),
        );
        Ok(posted.message)
    })
    .await?;
    Ok(reply::with_status(StatusCode::CREATED, message))
}

/// The conversation and message ids of a message route.
fn message_ids(conversation: &str, message: &str) -> Result<(ConversationId, MessageId)> {
    Ok((
        ConversationId::parse(conversation)?,
        MessageId::parse(message)?,
    ))
}

#[utoipa::path(patch, path = "/api/workspaces/{ws}/conversations/{conversation_id}/messages/{message_id}", tag = "messages",
    params(("ws" = String, Path), ("conversation_id" = i64, Path), ("message_id" = i64, Path)), request_body = EditedMessage,
    responses((status = 200, description = "The message edited"),
        (status = 403, description = "Another member's message (only admins change those)", body = ErrorBody),
        (status = 404, description = "Not a message of this conversation and workspace", body = ErrorBody), Failures),
    security(("bearer" = [])))]
pub(super) async fn edit(
    State(state): State<Arc<AppState>>,
    Writer { ws, by }: Writer,
    Path((_, conversation, message)): Path<(String, String, String)>,
    JsonBody(edited): JsonBody<EditedMessage>,
) -> Result<Response> {
    let (conversation, id) = message_ids(&conversation, &message)?;
    check_body(&edited.body)?;
    let message = invalidation::to_the_end(&state, &ws, |state, ws| async move {
        let message = state
            .store
            .edit_message(&ws, conversation, id, &edited.body, &by)
            .await?;
        let change = Changed::Conversation(conversation, Thread::Edited);
        invalidation::changed(&state, &ws, &change).await;
        Ok(message)
    })
    .await?;
    Ok(reply::ok(message))
}

#[utoipa::path(delete, path = "/api/workspaces/{ws}/conversations/{conversation_id}/messages/{message_id}", tag = "messages",
    params(("ws" = String, Path), ("conversation_id" = i64, Path), ("message_id" = i64, Path)),
    responses((status = 200, description = "The message deleted"),
        (status = 403, description = "Another member's message (only admins change those)", body = ErrorBody),
        (status = 404, description = "Not a message of this conversation and workspace", body = ErrorBody), Failures),
    security(("bearer" = [])))]
pub(super) async fn delete(
    State(state): State<Arc<AppState>>,
    Writer { ws, by }: Writer,
    Path((_, conversation, message)): Path<(String, String, String)>,
) -> Result<Response> {
    let (conversation, id) = message_ids(&conversation, &message)?;
    invalidation::to_the_end(&state, &ws, |state, ws| async move {
        state
            .store
            .delete_message(&ws, conversation, id, &by)
            .await?;
        let change = Changed::Conversation(conversation, Thread::Edited);
        invalidation::changed(&state, &ws, &change).await;
        Ok(())
    })
    .await?;
    Ok(reply::ok(serde_json::json!({"deleted": id.0})))
}
