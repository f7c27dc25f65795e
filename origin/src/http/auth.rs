//! Authentication in one middleware in front of every authenticated route, and the
//! checked workspace context the workspace routes take instead of repeating the checks.

use std::sync::Arc;

use axum::extract::{FromRequestParts, RawPathParams, Request, State};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use shared::access::request_workspace;
use shared::settings::CacheSettings;
use shared::{UserId, WorkspaceId};

use crate::auth::{single_header, Caller, WORKSPACE_HEADER};
use crate::error::{Error, Result};
use crate::state::AppState;
use crate::store::messages::Author;

pub async fn middleware(
    State(state): State<Arc<AppState>>,
    mut request: Request,
    next: Next,
) -> Response {
    match state.auth.authenticate(request.headers()) {
        Ok(caller) => {
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
        Err(e) => e.into_response(),
    }
}

/// A read in a workspace: the caller may act in it (the path's `{ws}`, or
/// `X-Workspace-ID`, by `shared::access`), its request budget was charged, and the
/// reader is known (`assignedToMe`).
pub struct Workspace {
    pub ws: WorkspaceId,
    pub user: UserId,
    pub settings: CacheSettings,
    /// When the caller's token expires (`None`: the edge's key).
    pub expires: Option<u64>,
}

/// A write in a workspace: as `Workspace`, by a person (never the edge's key), with the
/// writer's write budget charged instead; `by` is who writes (message authorship).
pub struct Writer {
    pub ws: WorkspaceId,
    pub by: Author,
}

/// The caller, the workspace it may act in, and that workspace's settings.
async fn granted(
    parts: &mut Parts,
    state: &Arc<AppState>,
) -> Result<(Caller, WorkspaceId, CacheSettings)> {
    let caller = parts
        .extensions
        .get::<Caller>()
        .cloned()
        .ok_or(Error::Unauthorized)?;
    let params = RawPathParams::from_request_parts(parts, state)
        .await
        .map_err(|_| Error::NotFound("route"))?;
    let path = params
        .iter()
        .find(|(name, _)| *name == "ws")
        .map(|(_, v)| v);
    let header = single_header(&parts.headers, &WORKSPACE_HEADER)?;
    let ws = checked_workspace(&caller, path, header)?;
    let settings = state.settings_for(&ws).await;
    Ok((caller, ws, settings))
}

/// The workspace a request acts in (the path's, which `header`, `X-Workspace-ID`, must
/// repeat if sent; else the header's), once the caller is checked to be granted it. The
/// router's extractors and the hit path both ask this.
pub(super) fn checked_workspace(
    caller: &Caller,
    path: Option<&str>,
    header: Option<&str>,
) -> Result<WorkspaceId> {
    let ws = request_workspace(path, header)?;
    caller.workspace(&ws)?;
    Ok(ws)
}

/// Marks a request whose budget the hit path already charged before it found no hit,
/// so that each request is charged once.
#[derive(Clone, Copy)]
pub(super) struct Charged;

impl FromRequestParts<Arc<AppState>> for Workspace {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self> {
        let (caller, ws, settings) = granted(parts, state).await?;
        let user = caller.user()?.clone();
        if parts.extensions.get::<Charged>().is_none() {
            state
                .limits
                .request(&ws, Some(&user), &settings.rate_limits)?;
        }
        let expires = caller.expires();
        Ok(Self {
            ws,
            user,
            settings,
            expires,
        })
    }
}

impl FromRequestParts<Arc<AppState>> for Writer {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self> {
        let (caller, ws, settings) = granted(parts, state).await?;
        caller.person()?;
        let user = caller.user()?;
        state.limits.write(&ws, user, &settings.rate_limits)?;
        let by = Author {
            user: user.clone(),
            admin: caller.admin_of(&ws).is_ok(),
            integration: caller.integration_in(&ws),
        };
        Ok(Self { ws, by })
    }
}
