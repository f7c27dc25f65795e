//! The OpenAPI document of this API, generated from the handlers' annotations so it cannot
//! drift from the routes; served unauthenticated at `/api/openapi.json` for clients and
//! for schemathesis, which CI runs against it.

use std::sync::{Arc, LazyLock};

use axum::routing::get;
use axum::{Json, Router};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(title = "edgecache origin", description = "Contact counts and pages through L1, L2 and the store, and the cache administration API."),
    paths(
        super::health::health,
        super::health::status,
        super::metrics::render,
        super::counts::counts,
        super::contacts::list,
        super::settings::read,
        super::settings::write,
        super::admin::invalidate,
        super::admin::warm,
        super::admin::test_performance,
        super::writes::create,
        super::writes::update,
        super::writes::move_contact,
        super::writes::delete,
        super::messages::page,
        super::messages::conversations,
        super::messages::search,
        super::messages::start,
        super::messages::post_message,
        super::messages::edit,
        super::messages::delete,
        super::live::ticket,
        super::live::events,
    ),
    modifiers(&Credentials)
)]
struct ApiDoc;

/// The two ways to authenticate: a user's HS256 JWT, or the edge's internal key.
struct Credentials;

impl Modify for Credentials {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
        components.add_security_scheme(
            "internalKey",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-Internal-Key"))),
        );
    }
}

/// Built once: the document only changes with the binary.
static DOCUMENT: LazyLock<utoipa::openapi::OpenApi> = LazyLock::new(ApiDoc::openapi);

pub fn router() -> Router<Arc<AppState>> {
    Router::new().route("/api/openapi.json", get(|| async { Json(&*DOCUMENT) }))
}
