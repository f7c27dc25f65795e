//! `GET /api/workspaces/{ws}/events`: a workspace's live changes as Server-Sent Events
//! (see `crate::live`). Browsers cannot set headers on an `EventSource`, so the stream
//! also opens with a single-use ticket from `POST .../events/ticket`; other clients may
//! send their bearer token. A reconnecting client names the last change it saw with
//! `Last-Event-ID` (or `last_event_id`, for a new `EventSource` that cannot send it).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use futures_util::stream::{self, StreamExt};
use serde_json::json;
use shared::{InputError, WorkspaceId};

use super::auth::Workspace;
use super::{reply, QueryPairs};
use crate::auth::single_header;
use crate::error::{Error, Failures, Result};
use crate::live::{Note, Subscription, TICKET_TTL};
use crate::state::AppState;

/// The longest a stream lasts whatever its token says (the edge's key has no expiry).
const MAX_STREAM: Duration = Duration::from_secs(24 * 3600);

/// The stream, outside the authentication middleware: a ticket stands in for a token.
pub fn router() -> Router<Arc<AppState>> {
    Router::new().route("/api/workspaces/{ws}/events", get(events))
}

pub fn ticket_router() -> Router<Arc<AppState>> {
    Router::new().route("/api/workspaces/{ws}/events/ticket", post(ticket))
}

#[utoipa::path(post, path = "/api/workspaces/{ws}/events/ticket", tag = "live",
    params(("ws" = String, Path)),
    responses((status = 200, description = "A single-use ticket opening the workspace's event stream within 60 s"), Failures),
    security(("bearer" = [])))]
pub(super) async fn ticket(
    State(state): State<Arc<AppState>>,
    Workspace {
        ws, user, expires, ..
    }: Workspace,
) -> Result<Response> {
    let redis = state.cache.redis().map(|r| &**r);
    let expires = expires.unwrap_or(u64::MAX);
    let ticket = state
        .live
        .ticket(redis, state.cache.keys(), (&ws, &user), expires)
        .await;
    Ok(reply::ok(
        json!({"ticket": ticket, "expires_in": TICKET_TTL.as_secs()}),
    ))
}

#[utoipa::path(get, path = "/api/workspaces/{ws}/events", tag = "live",
    params(("ws" = String, Path), ("ticket" = Option<String>, Query, description = "From POST .../events/ticket; else a bearer token"),
        ("last_event_id" = Option<u64>, Query, description = "As the Last-Event-ID header")),
    responses((status = 200, description = "text/event-stream of `change` events: data {scope, id, at}"),
        (status = 429, description = "Too many streams for this workspace"), Failures),
    security((), ("bearer" = [])))]
pub(super) async fn events(
    State(state): State<Arc<AppState>>,
    Path(ws): Path<String>,
    query: QueryPairs,
    headers: HeaderMap,
) -> Result<Response> {
    let ws = WorkspaceId::parse(&ws)?;
    let (user, expires) = match query.single("ticket")? {
        Some(ticket) => {
            let redis = state.cache.redis().map(|r| &**r);
            let (granted, user, expires) = state
                .live
                .redeem(redis, state.cache.keys(), ticket)
                .await
                .ok_or(Error::Unauthorized)?;
            if granted != ws {
                return Err(Error::Forbidden("the ticket is for another workspace"));
            }
            (user, expires)
        }
        // Charged like any request (a ticket was charged when it was issued).
        None => {
            let caller = state.auth.authenticate(&headers)?;
            caller.workspace(&ws)?;
            let user = caller.user()?.clone();
            let own = state.settings_for(&ws).await.rate_limits;
            state.limits.request(&ws, Some(&user), &own)?;
            (user, caller.expires().unwrap_or(u64::MAX))
        }
    };
    let last = match single_header(&headers, "last-event-id")? {
        Some(id) => Some(id),
        None => query.single("last_event_id")?,
    };
    let last = last
        .map(|id| {
            id.parse::<u64>().map_err(|_| {
                InputError::new("invalid_last_event_id", "Last-Event-ID must be an event id")
            })
        })
        .transpose()?;
    let subscription = state.live.subscribe((&ws, &user), last)?;
    Ok(stream(subscription, expires).into_response())
}

/// The missed changes, then each live one until the client goes, falls too far behind,
/// or its token expires (`expires`, seconds since the epoch: the client renews with a new
/// ticket, so a revoked member's stream does not outlive its token).
fn stream(
    sub: Subscription,
    expires: u64,
) -> Sse<impl stream::Stream<Item = std::result::Result<Event, Infallible>>> {
    let Subscription {
        missed,
        receiver,
        connection,
    } = sub;
    let live = stream::unfold(
        (receiver, connection),
        |(mut receiver, connection)| async move {
            let note = receiver.recv().await.ok()?;
            Some((note, (receiver, connection)))
        },
    );
    let now = u64::try_from(crate::cache::entry::now_ms() / 1000).unwrap_or(0);
    let left = Duration::from_secs(expires.saturating_sub(now).min(MAX_STREAM.as_secs()));
    let events = stream::iter(missed)
        .chain(live)
        .take_until(tokio::time::sleep(left))
        .map(|note| Ok(event(&note)));
    Sse::new(events).keep_alive(KeepAlive::default())
}

fn event(note: &Note) -> Event {
    let event = Event::default().event("change").data(&note.data);
    match note.id {
        Some(id) => event.id(id.to_string()),
        None => event,
    }
}
