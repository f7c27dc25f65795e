use reqwest::StatusCode;
use serde_json::json;
use sqlx::PgPool;

use crate::helpers::*;

#[sqlx::test(migrations = "../migrations")]
async fn bad_list_queries_and_ids_get_a_400_with_their_code(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let board = app.boards[0];
    let cases = [
        (
            format!("/api/boards/{board}/contacts?filter=everything"),
            "invalid_filter",
        ),
        (
            format!("/api/boards/{board}/contacts?per_page=0"),
            "invalid_per_page",
        ),
        (
            format!("/api/boards/{board}/contacts?per_page=10000"),
            "invalid_per_page",
        ),
        (
            format!("/api/boards/{board}/contacts?page=-1"),
            "invalid_page",
        ),
        (
            format!("/api/boards/{board}/contacts?page=1&page=2"),
            "duplicate_parameter",
        ),
        (
            format!("/api/boards/{board}/contacts?sort_by=password"),
            "invalid_sort_by",
        ),
        ("/api/boards/abc/contacts".to_owned(), "invalid_board_id"),
        ("/api/boards/-4/contacts".to_owned(), "invalid_board_id"),
        (
            format!("/api/cache-settings/workspace/{WS}/counts?useCache=maybe"),
            "invalid_parameter",
        ),
        (
            "/api/cache-settings/workspace/a%20b/counts".to_owned(),
            "invalid_workspace_id",
        ),
    ];
    for (path, code) in cases {
        assert_eq!(
            error_code(app.get(&path, &member()).await, StatusCode::BAD_REQUEST).await,
            code,
            "{path}"
        );
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn bad_bodies_get_a_400_and_change_nothing(db: PgPool) {
    let app = TestApp::spawn(db.clone()).await;
    let settings = format!("/api/cache-settings/workspace/{WS}/settings");
    let send_raw = |body: String| {
        app.http
            .post(app.url(&settings))
            .bearer_auth(admin())
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let cases = [
        ("{not json".to_owned(), "invalid_json"),
        (r#"{"cacheEnabled": "yes"}"#.to_owned(), "invalid_json"),
        (r#"{"unknown": 1}"#.to_owned(), "invalid_json"),
        (
            format!(
                r#"{{"cacheEnabled": true, "pad": "{}"}}"#,
                "x".repeat(200_000)
            ),
            "body_too_large",
        ),
    ];
    for (body, code) in cases {
        let r = send_raw(body).await.expect("request");
        assert_eq!(error_code(r, StatusCode::BAD_REQUEST).await, code);
    }
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM workspace_cache_settings")
        .fetch_one(&db)
        .await
        .expect("count");
    assert_eq!(stored, 0);

    let contacts = format!("/api/workspaces/{WS}/contacts");
    let foreign_board: i64 =
        sqlx::query_scalar("SELECT id FROM boards WHERE workspace_id = $1 LIMIT 1")
            .bind(OTHER_WS)
            .fetch_one(&db)
            .await
            .expect("board");
    let column: i64 =
        sqlx::query_scalar("SELECT id FROM board_columns WHERE board_id = $1 LIMIT 1")
            .bind(foreign_board)
            .fetch_one(&db)
            .await
            .expect("column");
    for (body, code) in [
        (
            json!({"board_id": foreign_board, "column_id": column, "name": "Mallory"}),
            "invalid_reference",
        ),
        (
            json!({"board_id": app.boards[0], "column_id": column, "name": "  "}),
            "invalid_field",
        ),
        (
            json!({"board_id": app.boards[0], "column_id": column, "name": "X", "priority": "urgent"}),
            "invalid_field",
        ),
        (
            json!({"board_id": app.boards[0], "column_id": column, "name": "Mallory\u{0}"}),
            "invalid_field",
        ),
        // 200 letters of four bytes each: within the characters, past the bytes.
        (
            json!({"board_id": app.boards[0], "column_id": column, "name": "\u{10400}".repeat(200)}),
            "invalid_field",
        ),
        (
            json!({"board_id": app.boards[0], "column_id": column, "name": "Mallory",
                   "custom_attributes": {"note": ["a\u{0}"]}}),
            "invalid_field",
        ),
    ] {
        let r = app.post(&contacts, &member(), body).await;
        assert_eq!(error_code(r, StatusCode::BAD_REQUEST).await, code);
    }
    let in_other: i64 = sqlx::query_scalar("SELECT count(*) FROM contacts WHERE name = 'Mallory'")
        .fetch_one(&db)
        .await
        .expect("count");
    assert_eq!(in_other, 0);
}

#[sqlx::test(migrations = "../migrations")]
async fn unknown_routes_and_methods_answer_json(db: PgPool) {
    let app = TestApp::spawn(db).await;
    assert_eq!(
        error_code(app.get("/nope", &member()).await, StatusCode::NOT_FOUND).await,
        "not_found"
    );
    let r = app
        .http
        .delete(app.url("/api/cache-settings/health"))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status().as_u16() / 100, 4);
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["success"], false);
}

#[sqlx::test(migrations = "../migrations")]
async fn look_alike_paths_are_not_served_and_answers_are_never_for_shared_caches(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let board = app.boards[0];
    for path in [
        format!("/api/boards/{board}/contacts.css"),
        format!("/api/boards/{board}/contacts;x.js"),
        format!("/api/boards/{board}/contacts/"),
        format!("/api/boards/{board}%2Fcontacts"),
        format!("/api/boards/{board}/..%2f{board}/contacts"),
    ] {
        let r = app.get(&path, &member()).await;
        assert!(r.status().is_client_error(), "{path}: {}", r.status());
        let body: serde_json::Value = r.json().await.expect("json");
        assert_eq!(body["success"], false, "{path}");
    }
    let r = app
        .http
        .get(app.url(&format!("/api/boards/{board}/contacts")))
        .bearer_auth(member())
        .header("X-Workspace-ID", WS)
        .header("X-HTTP-Method-Override", "DELETE")
        .header("X-Forwarded-Host", "evil.example")
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["cache-control"], "private, no-store");
    let page: serde_json::Value = r.json().await.expect("json");
    assert!(!page["data"]["contacts"]
        .as_array()
        .expect("contacts")
        .is_empty());
}

/// The document is generated from the handlers, so every path it lists must be a route
/// (401 without a token where it asks for one, 200 where it does not), never a 404 or 405.
#[sqlx::test(migrations = "../migrations")]
async fn the_openapi_document_is_public_and_every_operation_in_it_is_a_route(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let r = app
        .http
        .get(app.url("/api/openapi.json"))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), StatusCode::OK);
    let doc: serde_json::Value = r.json().await.expect("json");
    assert!(doc["openapi"].as_str().expect("version").starts_with("3."));
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    assert_eq!(schemes["internalKey"]["name"], "X-Internal-Key");
    let paths = doc["paths"].as_object().expect("paths");
    let mut operations = 0;
    for (template, methods) in paths {
        let path = template
            .split('/')
            .map(|s| if s.starts_with('{') { "1" } else { s })
            .collect::<Vec<_>>()
            .join("/");
        for (method, operation) in methods.as_object().expect("methods") {
            operations += 1;
            let method =
                reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
            let status = app
                .http
                .request(method.clone(), app.url(&path))
                .send()
                .await
                .expect("request")
                .status();
            let expected = if operation.get("security").is_some() {
                StatusCode::UNAUTHORIZED
            } else {
                StatusCode::OK
            };
            assert_eq!(status, expected, "{method} {template}");
        }
    }
    assert_eq!(operations, 23, "{:?}", paths.keys().collect::<Vec<_>>());
}

#[sqlx::test(migrations = "../migrations")]
async fn text_postgres_cannot_store_is_the_requests_fault(db: PgPool) {
    let nul_text = sqlx::query("SELECT $1::text")
        .bind("a\u{0}b")
        .execute(&db)
        .await
        .expect_err("Postgres text refuses NUL");
    let nul_json = sqlx::query("SELECT $1::jsonb")
        .bind(json!({"a": "\u{0}"}))
        .execute(&db)
        .await
        .expect_err("jsonb refuses NUL");
    for e in [nul_text, nul_json] {
        let response = axum::response::IntoResponse::into_response(origin::error::Error::from(e));
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let body = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .expect("body");
        let body: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(body["error"]["code"], "invalid_text");
    }
}
