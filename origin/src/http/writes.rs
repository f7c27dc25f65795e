//! Contact writes. Each invalidates what it touched (the board or boards, and the
//! workspace counts) before it answers, so the writer's next read is fresh.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{patch, post};
use axum::{Extension, Router};
use shared::keys::GenerationScope;
use shared::{BoardId, ContactId, WorkspaceId};

use super::openapi::Failures;
use super::{reply, JsonBody};
use crate::auth::{path_matches_header, Caller};
use crate::error::{ErrorBody, Result};
use crate::state::AppState;
use crate::store::fields::{ContactFields, Move};

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

/// Checks the workspace grant, then the caller's write budget in it.
async fn authorize(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    ws: &str,
) -> Result<WorkspaceId> {
    let ws = WorkspaceId::parse(ws)?;
    caller.person()?;
    caller.workspace(&ws)?;
    path_matches_header(headers, &ws)?;
    let own = state.settings_for(&ws).await.rate_limits;
    state.limits.write(&ws, caller.user()?, &own)?;
    Ok(ws)
}

async fn touched(state: &AppState, ws: &WorkspaceId, boards: &[BoardId]) {
    for board in boards {
        state.invalidate(ws, GenerationScope::Board(*board)).await;
    }
    state.invalidate(ws, GenerationScope::Counts).await;
}

#[utoipa::path(post, path = "/api/workspaces/{ws}/contacts", tag = "writes",
    params(("ws" = String, Path, description = "Workspace id")),
    request_body = ContactFields,
    responses((status = 201, description = "The contact created"), Failures),
    security(("bearer" = [])))]
pub(super) async fn create(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(ws): Path<String>,
    headers: HeaderMap,
    JsonBody(fields): JsonBody<ContactFields>,
) -> Result<Response> {
    let ws = authorize(&state, &caller, &headers, &ws).await?;
    fields.validate()?;
    fields.required()?;
    let contact = state.store.create_contact(&ws, fields).await?;
    touched(&state, &ws, &[BoardId(contact.board_id)]).await;
    Ok(reply::with_status(StatusCode::CREATED, contact))
}

async fn apply(
    state: &AppState,
    ws: &WorkspaceId,
    id: &str,
    fields: ContactFields,
) -> Result<Response> {
    let id = ContactId::parse(id)?;
    fields.validate()?;
    let (contact, from) = state.store.update_contact(ws, id, fields).await?;
    let to = BoardId(contact.board_id);
    let boards = if from == to { vec![to] } else { vec![from, to] };
    touched(state, ws, &boards).await;
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
    Extension(caller): Extension<Caller>,
    Path((ws, id)): Path<(String, String)>,
    headers: HeaderMap,
    JsonBody(fields): JsonBody<ContactFields>,
) -> Result<Response> {
    let ws = authorize(&state, &caller, &headers, &ws).await?;
    apply(&state, &ws, &id, fields).await
}

#[utoipa::path(post, path = "/api/workspaces/{ws}/contacts/{id}/move", tag = "writes",
    params(("ws" = String, Path, description = "Workspace id"), ("id" = i64, Path, description = "Contact id")),
    request_body = Move,
    responses((status = 200, description = "The contact moved"),
        (status = 404, description = "Not a contact of this workspace", body = ErrorBody), Failures),
    security(("bearer" = [])))]
pub(super) async fn move_contact(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path((ws, id)): Path<(String, String)>,
    headers: HeaderMap,
    JsonBody(to): JsonBody<Move>,
) -> Result<Response> {
    let ws = authorize(&state, &caller, &headers, &ws).await?;
    apply(&state, &ws, &id, to.into()).await
}

#[utoipa::path(delete, path = "/api/workspaces/{ws}/contacts/{id}", tag = "writes",
    params(("ws" = String, Path, description = "Workspace id"), ("id" = i64, Path, description = "Contact id")),
    responses((status = 200, description = "The contact deleted"),
        (status = 404, description = "Not a contact of this workspace", body = ErrorBody), Failures),
    security(("bearer" = [])))]
pub(super) async fn delete(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path((ws, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response> {
    let ws = authorize(&state, &caller, &headers, &ws).await?;
    let board = state
        .store
        .delete_contact(&ws, ContactId::parse(&id)?)
        .await?;
    touched(&state, &ws, &[board]).await;
    Ok(reply::ok(serde_json::json!({"deleted": id})))
}
