//! Every route of the OpenAPI document, asked with the tokens of workspace A (a member's
//! and an admin's) about workspace B: B in the path, in the header, in the body, and B's
//! boards, contacts, conversations and messages under A's name. Each probe must be
//! refused with a 4xx (not merely carry no B data), and B must be as it was afterwards.
//! Within A, a member may not change another member's messages, A's settings, or
//! invalidate the whole workspace.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::PgPool;

use crate::helpers::*;

/// Ids of one workspace's resources, to put into a route's path.
struct Resources {
    board: i64,
    contact: i64,
    conversation: i64,
    message: i64,
}

async fn resources(db: &PgPool, ws: &str) -> Resources {
    let one = |sql: &'static str| async move {
        sqlx::query_scalar::<_, i64>(sql)
            .bind(ws)
            .fetch_one(db)
            .await
            .expect(sql)
    };
    Resources {
        board: one("SELECT min(id) FROM boards WHERE workspace_id = $1").await,
        contact: one("SELECT min(id) FROM contacts WHERE workspace_id = $1").await,
        conversation: one("SELECT min(id) FROM conversations WHERE workspace_id = $1").await,
        message: one(
            "SELECT min(id) FROM messages WHERE workspace_id = $1 AND conversation_id = \
             (SELECT min(id) FROM conversations WHERE workspace_id = $1)",
        )
        .await,
    }
}

/// `template` with its parameters filled in: `ws` for the workspace, `of`'s ids for the
/// rest, and a query where the route needs one.
fn fill(template: &str, ws: &str, of: &Resources) -> String {
    let query = if template.ends_with("/messages/search") {
        "?q=probe"
    } else {
        ""
    };
    format!("{template}{query}")
        .replace("{ws}", ws)
        .replace("{board_id}", &of.board.to_string())
        .replace("{conversation_id}", &of.conversation.to_string())
        .replace("{message_id}", &of.message.to_string())
        .replace("{id}", &of.contact.to_string())
}

/// A body each route would take, aimed at `ws` and `of`'s resources.
fn body(template: &str, method: &Method, ws: &str, of: &Resources) -> Value {
    match (method.as_str(), template) {
        ("POST", "/api/workspaces/{ws}/contacts") => {
            json!({"board_id": of.board, "column_id": 1, "name": "probe"})
        }
        ("POST", "/api/workspaces/{ws}/contacts/{id}/move") => {
            json!({"board_id": of.board, "column_id": 2})
        }
        ("PATCH", "/api/workspaces/{ws}/contacts/{id}") => json!({"name": "probe"}),
        ("POST", "/api/workspaces/{ws}/conversations") => json!({"contact_id": of.contact}),
        ("POST", "/api/workspaces/{ws}/conversations/{conversation_id}/messages") => {
            json!({"sender_type": "agent", "body": "probe"})
        }
        ("PATCH", _) if template.ends_with("{message_id}") => json!({"body": "probe"}),
        ("POST", "/api/cache-settings/workspace/{ws}/settings") => json!({"cacheEnabled": false}),
        ("POST", "/api/cache-settings/invalidate") => json!({"workspaceId": ws}),
        ("POST", "/api/cache-settings/warm-cache" | "/api/cache-settings/test-performance") => {
            json!({"workspaceId": ws, "userId": "user_3"})
        }
        _ => json!({}),
    }
}

/// The routes of the OpenAPI document that act on a workspace, with their methods.
async fn scoped_routes(app: &TestApp) -> Vec<(String, Method)> {
    let doc: Value = app
        .http
        .get(app.url("/api/openapi.json"))
        .send()
        .await
        .expect("openapi")
        .json()
        .await
        .expect("json");
    let unscoped = [
        "/api/cache-settings/health",
        "/api/cache-settings/status",
        "/metrics",
    ];
    let mut routes = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        if unscoped.contains(&path.as_str()) {
            continue;
        }
        for method in item.as_object().expect("methods").keys() {
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).expect("a method");
            routes.push((path.clone(), method));
        }
    }
    routes
}

/// What B holds, to compare before and after the probes.
async fn snapshot(db: &PgPool) -> Value {
    let row: (i64, i64, i64, i64, Option<String>, Option<Value>) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM contacts WHERE workspace_id = $1),
                (SELECT count(*) FROM conversations WHERE workspace_id = $1),
                (SELECT count(*) FROM messages WHERE workspace_id = $1 AND deleted_at IS NULL),
                (SELECT count(*) FROM contacts WHERE workspace_id = $1 AND name = 'probe'),
                (SELECT string_agg(body, '|' ORDER BY id) FROM messages WHERE workspace_id = $1),
                (SELECT to_jsonb(s) FROM workspace_cache_settings s WHERE workspace_id = $1)",
    )
    .bind(OTHER_WS)
    .fetch_one(db)
    .await
    .expect("snapshot");
    json!([row.0, row.1, row.2, row.3, row.4, row.5])
}

#[sqlx::test(migrations = "../migrations")]
async fn every_route_refuses_another_workspace_and_members_act_only_as_themselves(db: PgPool) {
    let app = TestApp::spawn(db.clone()).await;
    let store = pg(&db);
    for ws_id in [WS, OTHER_WS] {
        store
            .seed_messages(&ws(ws_id), 2, 10)
            .await
            .expect("history");
    }
    let (theirs, mine) = (resources(&db, OTHER_WS).await, resources(&db, WS).await);
    let before = snapshot(&db).await;
    let routes = scoped_routes(&app).await;
    assert!(routes.len() >= 15, "{routes:?}");

    let mut probes = 0;
    let mut violations = Vec::new();
    for token in [member(), admin()] {
        for (template, method) in &routes {
            // B named outright, or B's resources asked for under A's name.
            let mut asks = vec![(fill(template, OTHER_WS, &theirs), OTHER_WS)];
            if template.replace("{ws}", "").contains('{') {
                asks.push((fill(template, WS, &theirs), WS));
            }
            if !template.contains("{ws}") {
                asks.push((fill(template, OTHER_WS, &theirs), WS));
            }
            for (path, header) in asks {
                let payload = body(template, method, OTHER_WS, &theirs);
                let r = app
                    .http
                    .request(method.clone(), app.url(&path))
                    .bearer_auth(&token)
                    .header("X-Workspace-ID", header)
                    .json(&payload)
                    .send()
                    .await
                    .expect("request");
                probes += 1;
                if !r.status().is_client_error() {
                    violations.push(format!("{method} {path} (header {header}): {}", r.status()));
                }
            }
        }
    }
    assert!(violations.is_empty(), "{probes} probes: {violations:#?}");
    assert_eq!(snapshot(&db).await, before, "B is as it was");

    // Within A: a member changes only its own messages, and no admin-only setting.
    let peer = token_for("user_4", &[WS], false, 3600);
    let message = format!(
        "/api/workspaces/{WS}/conversations/{}/messages/{}",
        mine.conversation, mine.message
    );
    let within = [
        (Method::PATCH, message.clone(), json!({"body": "not mine"})),
        (Method::DELETE, message, json!({})),
        (
            Method::POST,
            format!("/api/cache-settings/workspace/{WS}/settings"),
            json!({"cacheEnabled": false}),
        ),
        (
            Method::POST,
            "/api/cache-settings/invalidate".into(),
            json!({"workspaceId": WS}),
        ),
        (
            Method::POST,
            format!(
                "/api/workspaces/{WS}/conversations/{}/messages",
                mine.conversation
            ),
            json!({"sender_type": "agent", "sender_id": "user_3", "body": "as another"}),
        ),
    ];
    for (method, path, payload) in within {
        let r = app
            .http
            .request(method.clone(), app.url(&path))
            .bearer_auth(&peer)
            .json(&payload)
            .send()
            .await
            .expect("request");
        probes += 1;
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{method} {path}");
    }
    // Each probe was refused for the workspace, not for its shape: the same request about
    // A itself succeeds (deletes last, so nothing a later one needs is gone).
    let mut controls = routes.clone();
    controls.sort_by_key(|(_, method)| *method == Method::DELETE);
    for (template, method) in &controls {
        let r = app
            .http
            .request(method.clone(), app.url(&fill(template, WS, &mine)))
            .bearer_auth(admin())
            .header("X-Workspace-ID", WS)
            .json(&body(template, method, WS, &mine))
            .send()
            .await
            .expect("request");
        assert!(
            r.status().is_success(),
            "{method} {template} for A itself: {}",
            r.status()
        );
    }
    println!("isolation: {probes} probes, 0 violations");
}
