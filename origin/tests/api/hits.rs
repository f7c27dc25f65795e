//! The L1 hit is answered ahead of the router (`http::hit`): it must answer exactly as
//! the router does, charge each request once, and leave everything else to the router.

use std::collections::BTreeSet;

use reqwest::{Response, StatusCode};
use serde_json::{json, Value};
use sqlx::PgPool;

use crate::helpers::*;

/// Everything but what differs from one answer to the next.
fn lasting(data: &Value) -> Value {
    let mut data = data.clone();
    for field in [
        "_cache",
        "_cached",
        "_source",
        "_responseTimeMs",
        "_retrievedAt",
    ] {
        data.as_object_mut().expect("an object").remove(field);
    }
    data
}

fn header_names(r: &Response) -> BTreeSet<String> {
    r.headers()
        .keys()
        .map(|k| k.as_str().to_owned())
        .filter(|k| k != "date")
        .collect()
}

async fn read(app: &TestApp, path: &str, request_id: Option<&str>) -> Response {
    let mut request = app
        .http
        .get(app.url(path))
        .bearer_auth(member())
        .header("X-Workspace-ID", WS);
    if let Some(id) = request_id {
        request = request.header("X-Request-ID", id);
    }
    request.send().await.expect("request")
}

#[sqlx::test(migrations = "../migrations")]
async fn an_l1_hit_answers_as_the_router_does(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let board = app.boards[0];
    for path in [
        format!("/api/cache-settings/workspace/{WS}/counts"),
        format!("/api/boards/{board}/contacts?page=1&per_page=20"),
        format!("/api/boards/{board}/contacts?filter=open&sort_by=name&sort_order=asc"),
    ] {
        let miss = read(&app, &path, Some("given-id-1")).await;
        let hit = read(&app, &path, Some("given-id-2")).await;
        let unnamed = read(&app, &path, None).await;
        let again = read(&app, &path, None).await;
        assert_eq!(
            (miss.status(), hit.status()),
            (StatusCode::OK, StatusCode::OK)
        );
        assert_eq!(header_names(&miss), header_names(&hit), "{path}");
        assert_eq!(hit.headers()["x-cache-source"], "memory", "{path}");
        assert_eq!(hit.headers()["x-cache-status"], "HIT", "{path}");
        assert_eq!(hit.headers()["cache-control"], "private, no-store");
        assert_eq!(hit.headers()["content-type"], "application/json");
        assert_eq!(miss.headers()["x-request-id"], "given-id-1");
        assert_eq!(hit.headers()["x-request-id"], "given-id-2");
        let made = |r: &Response| {
            r.headers()["x-request-id"]
                .to_str()
                .expect("ascii")
                .to_owned()
        };
        let (first, second) = (made(&unnamed), made(&again));
        assert!(
            first.len() == 16 && first.bytes().all(|b| b.is_ascii_hexdigit()),
            "{first}"
        );
        assert_ne!(first, second, "each request gets its own id");

        let length = hit.content_length();
        let (miss, hit) = (data(miss).await, data(hit).await);
        assert_eq!(lasting(&miss), lasting(&hit), "{path}");
        assert_eq!(hit["_source"], "memory");
        assert_eq!(hit["_cached"], true);
        assert_eq!(hit["_cache"]["status"], "HIT");
        assert!(
            hit["_cache"]["ttl"].as_u64().is_some_and(|t| t > 0),
            "{hit}"
        );
        assert!(hit["_responseTimeMs"].as_f64().is_some_and(|t| t >= 0.0));
        assert!(length.is_some(), "a hit's length is known up front");
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn each_request_is_charged_once_whether_hit_or_missed(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let board = app.boards[0];
    let saved = app
        .post(
            &format!("/api/cache-settings/workspace/{WS}/settings"),
            &admin(),
            json!({"rateLimits": {"requestsPerMinute": 6}}),
        )
        .await;
    assert_eq!(saved.status(), StatusCode::OK);
    // Misses and hits alternate: a miss passes the hit path (charged there) on to the
    // router, which must not charge it again.
    let paths = [
        format!("/api/cache-settings/workspace/{WS}/counts"),
        format!("/api/boards/{board}/contacts?page=1"),
        format!("/api/boards/{board}/contacts?page=2"),
    ];
    let mut sources = Vec::new();
    for path in paths.iter().flat_map(|p| [p, p]) {
        let r = read(&app, path, None).await;
        assert_eq!(
            r.status(),
            StatusCode::OK,
            "{path}: charged more than once?"
        );
        sources.push(
            r.headers()["x-cache-source"]
                .to_str()
                .expect("ascii")
                .to_owned(),
        );
    }
    assert_eq!(
        sources.iter().filter(|s| *s == "memory").count(),
        3,
        "{sources:?}"
    );
    let refused = read(&app, &paths[0], None).await;
    assert_eq!(
        error_code(refused, StatusCode::TOO_MANY_REQUESTS).await,
        "rate_limited"
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn what_the_hit_path_does_not_take_is_answered_by_the_router(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let board = app.boards[0];
    let counts = format!("/api/cache-settings/workspace/{WS}/counts");
    let page = format!("/api/boards/{board}/contacts?page=1");
    for path in [&counts, &page] {
        let warm = read(&app, path, None).await;
        assert_eq!(warm.status(), StatusCode::OK);
    }
    // A cached answer is never served to a caller the router would refuse.
    let r = app.get(&counts, "not-a-token").await;
    assert_eq!(
        error_code(r, StatusCode::UNAUTHORIZED).await,
        "unauthorized"
    );
    let other = token_for("user_3", &[OTHER_WS], false, 3600);
    let r = app.get(&page, &other).await;
    assert_eq!(error_code(r, StatusCode::FORBIDDEN).await, "forbidden");
    let r = app
        .http
        .get(app.url(&counts))
        .bearer_auth(member())
        .header("X-Workspace-ID", OTHER_WS)
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    // Bad input is still refused, and asking past the cache still reads the database.
    let r = read(&app, &format!("/api/boards/{board}/contacts?page=0"), None).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = read(&app, &format!("{page}&useCache=false"), None).await;
    assert_eq!(r.headers()["x-cache-source"], "database");
    let r = read(
        &app,
        &format!("/api/cache-settings/workspace/{WS}/counts?useCache=false"),
        None,
    )
    .await;
    assert_eq!(r.headers()["x-cache-source"], "database");
    // A workspace id the router decodes from the path.
    let encoded: String = WS.bytes().map(|b| format!("%{b:02X}")).collect();
    let path = format!("/api/cache-settings/workspace/{encoded}/counts");
    let r = read(&app, &path, None).await;
    assert_eq!(r.status(), StatusCode::OK);
}
