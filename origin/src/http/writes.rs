//! Contact writes. Each invalidates what it touched (the board or boards, and the
//! workspace counts) before it answers, so the writer's next read is fresh.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{patch, post};
use axum::Router;
use shared::invalidation::Changed;
use shared::{BoardId, ContactId, WorkspaceId};

use super::auth::Writer;
use super::{reply, JsonBody};
use crate::error::{ErrorBody, Failures, Result};
use crate::invalidation;
use crate::state::AppState;
use crate::store::fields::{ContactFields, Move};
use crate::store::filters::recently_active;

pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/workspaces/{ws}/contacts", post(create))
        .route(
            "/api/workspaces/{ws}/contacts/{id}",
            patch(update).delete(delete),
        )
        .route(
            "/api/workspaces/{ws}/contacts/{id}/move",
            post(move_contact),
        )
}

#[utoipa::path(post, path = "/api/workspaces/{ws}/contacts", tag = "writes",
    params(("ws" = String, Path, description = "Workspace id")),
    request_body = ContactFields,
    responses((status = 201, description = "The contact created"), Failures),
    security(("bearer" = [])))]
pub(super) async fn create(
    State(state): State<Arc<AppState>>,
    Writer { ws, .. }: Writer,
    JsonBody(fields): JsonBody<ContactFields>,
) -> Result<Response> {
    fields.validate()?;
    fields.required()?;
    let contact = invalidation::to_the_end(&state, &ws, |state, ws| async move {
        let contact = state.store.create_contact(&ws, fields).await?;
        let board = BoardId(contact.board_id);
        invalidation::changed(&state, &ws, &Changed::Boards(vec![board])).await;
        Ok(contact)
    })
    .await?;
    Ok(reply::with_status(StatusCode::CREATED, contact))
}

async fn apply(
    state: Arc<AppState>,
    ws: WorkspaceId,
    id: &str,
    fields: ContactFields,
) -> Result<Response> {
    let id = ContactId::parse(id)?;
    fields.validate()?;
    let contact = invalidation::to_the_end(&state, &ws, |state, ws| async move {
        let (old, contact) = state.store.update_contact(&ws, id, fields).await?;
        invalidation::changed(
            &state,
            &ws,
            &Changed::update(&old, &contact, recently_active),
        )
        .await;
        Ok(contact)
    })
    .await?;
    Ok(reply::ok(contact))
}

#[utoipa::path(patch, path = "/api/workspaces/{ws}/contacts/{id}", tag = "writes",
    params(("ws" = String, Path, description = "Workspace id"), ("id" = i64, Path, description = "Contact id")),
    request_body = ContactFields,
    responses((status = 200, description = "The contact updated"),
        (status = 404, description = "Not a contact of this workspace", body = ErrorBody), Failures),
    security(("bearer" = [])))]
pub(super) async fn update(
    State(state): State<Arc<AppState>>,
    Writer { ws, .. }: Writer,
    Path((_, id)): Path<(String, String)>,
    JsonBody(fields): JsonBody<ContactFields>,
) -> Result<Response> {
    apply(state, ws, &id, fields).await
}

#[utoipa::path(post, path = "/api/workspaces/{ws}/contacts/{id}/move", tag = "writes",
    params(("ws" = String, Path, description = "Workspace id"), ("id" = i64, Path, description = "Contact id")),
    request_body = Move,
    responses((status = 200, description = "The contact moved"),
        (status = 404, description = "Not a contact of this workspace", body = ErrorBody), Failures),
    security(("bearer" = [])))]
pub(super) async fn move_contact(
    State(state): State<Arc<AppState>>,
    Writer { ws, .. }: Writer,
    Path((_, id)): Path<(String, String)>,
    JsonBody(to): JsonBody<Move>,
) -> Result<Response> {
    apply(state, ws, &id, to.into()).await
}

#[utoipa::path(delete, path = "/api/workspaces/{ws}/contacts/{id}", tag = "writes",
    params(("ws" = String, Path, description = "Workspace id"), ("id" = i64, Path, description = "Contact id")),
    responses((status = 200, description = "The contact deleted"),
        (status = 404, description = "Not a contact of this workspace", body = ErrorBody), Failures),
    security(("bearer" = [])))]
pub(super) async fn delete(
    State(state): State<Arc<AppState>>,
    Writer { ws, .. }: Writer,
    Path((_, id)): Path<(String, String)>,
) -> Result<Response> {
    let contact = ContactId::parse(&id)?;
    invalidation::to_the_end(&state, &ws, |state, ws| async move {
        let board = state.store.delete_contact(&ws, contact).await?;
        invalidation::changed(&state, &ws, &Changed::Boards(vec![board])).await;
        Ok(())
    })
    .await?;
    Ok(reply::ok(serde_json::json!({"deleted": id})))
}
