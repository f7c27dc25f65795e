//! The HTTP API of API.md. Each resource module has its own `router()`; this one merges
//! them, puts authentication in front of all but health, metrics and the OpenAPI document, and turns every
//! failure (bad JSON, oversized body, timeout, panic, unknown route) into the error JSON.

mod admin;
pub mod auth;
mod contacts;
mod counts;
mod extract;
pub(crate) mod health;
mod hit;
mod live;
mod messages;
mod metrics;
pub mod openapi;
mod panel;
mod reply;
mod server;
mod settings;
mod writes;

use std::any::Any;
use std::cell::Cell;
use std::sync::Arc;

use axum::error_handling::HandleErrorLayer;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, Request};
use axum::response::{IntoResponse, Response};
use axum::{middleware, BoxError, Router};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::trace::TraceLayer;

use crate::error::Error;
use crate::state::AppState;

pub use extract::{JsonBody, QueryPairs};
pub use server::serve;

/// Bodies of this API are small JSON objects; anything bigger is refused unread.
const MAX_BODY_BYTES: usize = 64 * 1024;

pub fn router(state: Arc<AppState>) -> Router {
    let authenticated = Router::new()
        .merge(health::status_router())
        .merge(settings::router())
        .merge(counts::router())
        .merge(admin::router())
        .merge(contacts::router())
        .merge(writes::router())
        .merge(messages::router())
        .merge(live::ticket_router())
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::middleware,
        ));
    let timeout = state.config.request_timeout;
    Router::new()
        .merge(health::router())
        .merge(metrics::router())
        .merge(openapi::router())
        .merge(panel::router())
        .merge(live::router())
        .merge(authenticated)
        .fallback(|| async { Error::NotFound("route") })
        .method_not_allowed_fallback(|| async { Error::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::new(REQUEST_ID, NewRequestId))
                .layer(TraceLayer::new_for_http().make_span_with(request_span))
                .layer(PropagateRequestIdLayer::new(REQUEST_ID))
                .layer(CatchPanicLayer::custom(panic_response))
                .layer(HandleErrorLayer::new(|_: BoxError| async {
                    Error::Timeout
                }))
                .timeout(timeout),
        )
        .with_state(state)
}

/// Ties a request's log lines together, and to the edge's: the edge sends the id of the
/// request it serves, and one is made here for a request that came without.
const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

#[derive(Clone, Copy)]
struct NewRequestId;

impl MakeRequestId for NewRequestId {
    fn make_request_id<B>(&mut self, _: &Request<B>) -> Option<RequestId> {
        Some(RequestId::new(new_request_id()))
    }
}

/// 16 hex digits, distinct for every request of the process: a per-thread sequence from
/// a random start, mixed (splitmix64), since asking the system for randomness on every
/// request costs a system call.
fn new_request_id() -> HeaderValue {
    thread_local! {
        static NEXT: Cell<u64> = Cell::new(crate::cache::random_id());
    }
    let n = NEXT.with(|next| {
        let n = next.get().wrapping_add(0x9e37_79b9_7f4a_7c15);
        next.set(n);
        n
    });
    let mut z = (n ^ (n >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    let mut hex = [0u8; 16];
    for (i, digit) in hex.iter_mut().enumerate() {
        *digit = b"0123456789abcdef"[((z >> (60 - 4 * i)) & 0xf) as usize];
    }
    HeaderValue::from_bytes(&hex).unwrap_or(HeaderValue::from_static("0"))
}

/// Each log line of a request carries its id.
fn request_span<B>(request: &Request<B>) -> tracing::Span {
    let id = request
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    tracing::info_span!("request", method = %request.method(), path = %request.uri().path(), request_id = id)
}

fn panic_response(_: Box<dyn Any + Send + 'static>) -> Response {
    Error::Internal("a handler panicked".into()).into_response()
}
