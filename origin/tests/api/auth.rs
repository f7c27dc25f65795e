use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use sqlx::PgPool;

use crate::helpers::*;

#[sqlx::test(migrations = "../migrations")]
async fn missing_expired_and_forged_tokens_get_one_identical_401(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let path = app.url(&format!("/api/cache-settings/workspace/{WS}/counts"));
    let forged = {
        let claims = origin::auth::Claims {
            sub: "user_3".into(),
            workspaces: vec![WS.into()],
            role: None,
            roles: Default::default(),
            exp: 4_000_000_000,
        };
        origin::auth::issue(b"not-the-secret-not-the-secret-not-the", &claims).expect("token")
    };
    let mut bodies = Vec::new();
    for auth in [
        None,
        Some(token_for("user_3", &[WS], false, -3600)),
        Some(forged),
        Some("garbage".into()),
    ] {
        let mut req = app.http.get(&path);
        if let Some(t) = auth {
            req = req.bearer_auth(t);
        }
        let r = req.send().await.expect("request");
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        bodies.push(r.text().await.expect("body"));
    }
    assert!(bodies.iter().all(|b| b == &bodies[0]), "{bodies:?}");
}

#[sqlx::test(migrations = "../migrations")]
async fn a_token_for_one_workspace_never_reads_another(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let other = token_for("user_3", &[OTHER_WS], false, 3600);
    let counts = app
        .http
        .get(app.url(&format!("/api/cache-settings/workspace/{WS}/counts")))
        .bearer_auth(&other)
        .send()
        .await
        .expect("request");
    assert_eq!(error_code(counts, StatusCode::FORBIDDEN).await, "forbidden");

    let board = app.boards[0];
    let list = app
        .http
        .get(app.url(&format!("/api/boards/{board}/contacts")))
        .bearer_auth(&other)
        .header("X-Workspace-ID", WS)
        .send()
        .await
        .expect("request");
    assert_eq!(error_code(list, StatusCode::FORBIDDEN).await, "forbidden");

    let own_header_foreign_board = app
        .http
        .get(app.url(&format!("/api/boards/{board}/contacts")))
        .bearer_auth(&other)
        .header("X-Workspace-ID", OTHER_WS)
        .send()
        .await
        .expect("request");
    assert_eq!(
        error_code(own_header_foreign_board, StatusCode::NOT_FOUND).await,
        "not_found"
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn admin_endpoints_need_the_admin_role(db: PgPool) {
    let app = TestApp::spawn(db).await;
    for (path, body) in [
        ("/api/cache-settings/invalidate", json!({"workspaceId": WS})),
        ("/api/cache-settings/warm-cache", json!({"workspaceId": WS})),
        (
            &format!("/api/cache-settings/workspace/{WS}/settings") as &str,
            json!({"cacheEnabled": false}),
        ),
    ] {
        let r = app.post(path, &member(), body).await;
        assert_eq!(
            error_code(r, StatusCode::FORBIDDEN).await,
            "forbidden",
            "{path}"
        );
    }
    let status = app.get("/api/cache-settings/status", &member()).await;
    assert_eq!(status.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        app.get("/api/cache-settings/status", &admin())
            .await
            .status(),
        StatusCode::OK
    );
}

/// A page of the test workspace's first board read as the edge does, with `key`.
async fn read_as_edge(app: &TestApp, key: &str) -> reqwest::Response {
    app.http
        .get(app.url(&format!("/api/boards/{}/contacts", app.boards[0])))
        .header("X-Internal-Key", key)
        .header("X-Workspace-ID", WS)
        .header("X-User-ID", "user_3")
        .send()
        .await
        .expect("request")
}

/// Sets one of the test workspace's rate limits as its admin; the saved settings say so.
async fn set_limit(app: &TestApp, name: &str, per_min: u32) {
    let saved = app
        .post(
            &format!("/api/cache-settings/workspace/{WS}/settings"),
            &admin(),
            json!({"rateLimits": {name: per_min}}),
        )
        .await;
    let settings = data(saved).await;
    assert_eq!(
        settings["settings"]["rateLimits"][name], per_min,
        "{settings}"
    );
}

/// Reads `path` as `token` until it is refused with 429, which must say when to retry.
async fn until_refused(app: &TestApp, path: &str, token: &str) {
    let refused = eventually(Duration::from_secs(2), || async {
        let r = app.get(path, token).await;
        (r.status() == StatusCode::TOO_MANY_REQUESTS).then_some(r)
    })
    .await;
    assert!(refused.headers().contains_key("retry-after"));
    assert_eq!(
        error_code(refused, StatusCode::TOO_MANY_REQUESTS).await,
        "rate_limited"
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn the_edge_reads_with_the_internal_key_and_a_wrong_key_is_refused(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let ok = data(read_as_edge(&app, INTERNAL_KEY).await).await;
    assert!(!ok["contacts"].as_array().expect("contacts").is_empty());
    let refused = read_as_edge(&app, "edge-internal-key-for-test").await;
    assert_eq!(
        error_code(refused, StatusCode::UNAUTHORIZED).await,
        "unauthorized"
    );
}

/// The key opens the edge's reads, not writes or settings, whatever user it names.
#[sqlx::test(migrations = "../migrations")]
async fn the_internal_key_cannot_write_contacts_or_read_settings(db: PgPool) {
    let app = TestApp::spawn(db.clone()).await;
    let (id, name): (i64, String) =
        sqlx::query_as("SELECT id, name FROM contacts WHERE workspace_id = $1 LIMIT 1")
            .bind(OTHER_WS)
            .fetch_one(&db)
            .await
            .expect("a contact");
    let with_key = |request: reqwest::RequestBuilder, ws: &str| {
        request
            .header("X-Internal-Key", INTERNAL_KEY)
            .header("X-Workspace-ID", ws)
            .header("X-User-ID", "user_1")
    };
    let patch = with_key(
        app.http
            .patch(app.url(&format!("/api/workspaces/{OTHER_WS}/contacts/{id}")))
            .json(&json!({"name": "Mallory"})),
        OTHER_WS,
    );
    let refused = patch.send().await.expect("request");
    assert_eq!(
        error_code(refused, StatusCode::FORBIDDEN).await,
        "forbidden"
    );
    let create = with_key(
        app.http
            .post(app.url(&format!("/api/workspaces/{WS}/contacts")))
            .json(&json!({"board_id": app.boards[0], "column_id": 1, "name": "Eve"})),
        WS,
    );
    let refused = create.send().await.expect("request");
    assert_eq!(
        error_code(refused, StatusCode::FORBIDDEN).await,
        "forbidden"
    );
    let settings = with_key(
        app.http
            .get(app.url(&format!("/api/cache-settings/workspace/{WS}/settings"))),
        WS,
    );
    let refused = settings.send().await.expect("request");
    assert_eq!(
        error_code(refused, StatusCode::FORBIDDEN).await,
        "forbidden"
    );
    let unchanged: String = sqlx::query_scalar("SELECT name FROM contacts WHERE id = $1")
        .bind(id)
        .fetch_one(&db)
        .await
        .expect("name");
    assert_eq!(unchanged, name);
}

#[sqlx::test(migrations = "../migrations")]
async fn health_and_metrics_need_no_token(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let health = app.health().await;
    assert_eq!(health["healthy"], true);
    app.counts(&member()).await;
    let metrics = app.metrics().await;
    assert!(
        metrics.contains("edgecache_read_duration_seconds_bucket"),
        "{metrics}"
    );
    assert!(metrics.contains("edgecache_db_pool_connections"));
}

/// Signs arbitrary claims with the right key, to probe what the claims themselves may be.
fn signed(claims: serde_json::Value) -> String {
    shared::token::issue(SECRET.as_bytes(), &claims).expect("token")
}

#[sqlx::test(migrations = "../migrations")]
async fn hostile_tokens_all_get_the_same_401(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let now = chrono::Utc::now().timestamp();
    let alg_none = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJ1c2VyXzMiLCJ3b3Jrc3BhY2VzIjpbIjE1MjEzIl0sImV4cCI6NDAwMDAwMDAwMH0.";
    let valid_claims = json!({"sub": "user_3", "workspaces": [WS], "exp": now + 3600});
    let oversized = signed(
        json!({"sub": "user_3", "workspaces": [WS], "exp": now + 3600, "pad": "x".repeat(16 * 1024)}),
    );
    let tokens = [
        alg_none.to_owned(),
        token_for("user_3", &[WS], false, -120),
        signed(json!({"sub": "user_3", "workspaces": [WS], "exp": (now + 3600).to_string()})),
        signed(json!({"sub": "user_3", "workspaces": [WS]})),
        signed(json!({"sub": "user_3", "workspaces": [WS], "exp": now + 3600, "nbf": now + 600})),
        oversized,
        "@@@.###.$$$".to_owned(),
        format!("{}x", signed(valid_claims.clone())),
    ];
    let path = app.url(&format!("/api/cache-settings/workspace/{WS}/counts"));
    let mut bodies = std::collections::HashSet::new();
    for token in &tokens {
        let r = app
            .http
            .get(&path)
            .bearer_auth(token)
            .send()
            .await
            .expect("request");
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{token:.40}");
        bodies.insert(r.text().await.expect("body"));
    }
    assert_eq!(bodies.len(), 1, "{bodies:?}");
    let ok = app
        .http
        .get(&path)
        .bearer_auth(signed(valid_claims))
        .send()
        .await
        .expect("request");
    assert_eq!(ok.status(), StatusCode::OK, "the control token must pass");
}

#[sqlx::test(migrations = "../migrations")]
async fn writes_past_the_per_user_limit_get_429_whatever_the_forwarded_address(db: PgPool) {
    let seeded = seed_workspaces(&db).await;
    let mut config = test_config(&unique_namespace());
    config.writes_per_user_per_min = 3;
    let app = TestApp::spawn_with(db.clone(), config, seeded.boards).await;
    let id: i64 = sqlx::query_scalar("SELECT id FROM contacts WHERE workspace_id = $1 LIMIT 1")
        .bind(WS)
        .fetch_one(&db)
        .await
        .expect("contact");
    let patch = |token: String, forwarded: &'static str| {
        app.http
            .patch(app.url(&format!("/api/workspaces/{WS}/contacts/{id}")))
            .bearer_auth(token)
            .header("X-Forwarded-For", forwarded)
            .json(&json!({"favorite": true}))
            .send()
    };
    for i in 0..3 {
        let r = patch(member(), "10.0.0.1").await.expect("request");
        assert_eq!(r.status(), StatusCode::OK, "write {i}");
    }
    for forwarded in ["10.0.0.1", "10.0.0.2", "203.0.113.7"] {
        let r = patch(member(), forwarded).await.expect("request");
        let retry: u64 = r.headers()["retry-after"]
            .to_str()
            .expect("ascii")
            .parse()
            .expect("seconds");
        assert!((1..=60).contains(&retry), "{retry}");
        assert_eq!(
            error_code(r, StatusCode::TOO_MANY_REQUESTS).await,
            "rate_limited"
        );
    }
    let someone_else = patch(token_for("user_4", &[WS], false, 3600), "10.0.0.1")
        .await
        .expect("request");
    assert_eq!(someone_else.status(), StatusCode::OK);
}

#[sqlx::test(migrations = "../migrations")]
async fn a_workspace_with_its_own_request_limit_gets_429_past_it_and_others_do_not(db: PgPool) {
    let app = TestApp::spawn(db).await;
    set_limit(&app, "requestsPerMinute", 5).await;
    let counts = format!("/api/cache-settings/workspace/{WS}/counts");
    until_refused(&app, &counts, &member()).await;
    let other = app
        .http
        .get(app.url(&format!("/api/cache-settings/workspace/{OTHER_WS}/counts")))
        .bearer_auth(token_for("user_3", &[OTHER_WS], false, 3600))
        .header("X-Workspace-ID", OTHER_WS)
        .send()
        .await
        .expect("request");
    assert_eq!(
        other.status(),
        StatusCode::OK,
        "the limit is that workspace's own"
    );

    let bad = app
        .post(
            &format!("/api/cache-settings/workspace/{WS}/settings"),
            &admin(),
            json!({"rateLimits": {"writesPerUserPerMinute": 0}}),
        )
        .await;
    assert_eq!(
        error_code(bad, StatusCode::BAD_REQUEST).await,
        "invalid_rate_limit"
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn a_workspace_admin_may_lower_a_rate_limit_and_only_an_operator_raise_it(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let path = format!("/api/cache-settings/workspace/{WS}/settings");
    let default = app.state.config.requests_per_workspace_per_min;
    let above = json!({"rateLimits": {"requestsPerMinute": default + 1}});
    let refused = app.post(&path, &admin(), above.clone()).await;
    assert_eq!(
        error_code(refused, StatusCode::FORBIDDEN).await,
        "forbidden"
    );
    let lower = json!({"rateLimits": {"requestsPerMinute": default / 2}});
    data(app.post(&path, &admin(), lower).await).await;
    let operator = token_for("ops", &["*"], true, 3600);
    let raised = data(app.post(&path, &operator, above).await).await;
    assert_eq!(
        raised["settings"]["rateLimits"]["requestsPerMinute"],
        default + 1
    );
    // The admin may still change what is theirs to change.
    data(
        app.post(
            &path,
            &admin(),
            json!({"cacheConfig": {"contactCountsTTL": 60}}),
        )
        .await,
    )
    .await;
}

/// With `JWT_AUDIENCE` and `JWT_ISSUER` set, a token made for another service (or by
/// another issuer) with the same key is refused like any invalid token.
#[sqlx::test(migrations = "../migrations")]
async fn tokens_for_another_audience_or_issuer_are_refused_where_configured(db: PgPool) {
    let seeded = seed_workspaces(&db).await;
    let mut config = test_config(&unique_namespace());
    config.jwt_audience = Some("crm".into());
    config.jwt_issuer = Some("https://id.example".into());
    let app = TestApp::spawn_with(db, config, seeded.boards).await;
    let made_for = |aud: &str, iss: &str| {
        signed(json!({
            "sub": "user_3", "workspaces": [WS], "exp": 4_000_000_000u64, "aud": aud, "iss": iss,
        }))
    };
    let counts = format!("/api/cache-settings/workspace/{WS}/counts");
    let ok = app
        .get(&counts, &made_for("crm", "https://id.example"))
        .await;
    assert_eq!(ok.status(), StatusCode::OK);
    for token in [
        made_for("billing", "https://id.example"),
        made_for("crm", "https://evil.example"),
        member(),
    ] {
        let refused = app.get(&counts, &token).await;
        assert_eq!(
            error_code(refused, StatusCode::UNAUTHORIZED).await,
            "unauthorized"
        );
    }
}

/// A token listing two workspaces with a role in each is an admin only where it says so.
#[sqlx::test(migrations = "../migrations")]
async fn a_role_named_for_one_workspace_is_not_a_role_in_the_others(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let claims = origin::auth::Claims {
        sub: "user_3".into(),
        workspaces: vec![WS.into(), OTHER_WS.into()],
        role: None,
        roles: [(WS.to_owned(), "admin".to_owned())].into(),
        exp: 4_000_000_000,
    };
    let token = origin::auth::issue(SECRET.as_bytes(), &claims).expect("token");
    let warm = |ws: &str| json!({"workspaceId": ws});
    let mine = app
        .post("/api/cache-settings/warm-cache", &token, warm(WS))
        .await;
    assert_eq!(mine.status(), StatusCode::OK);
    let theirs = app
        .post("/api/cache-settings/warm-cache", &token, warm(OTHER_WS))
        .await;
    assert_eq!(error_code(theirs, StatusCode::FORBIDDEN).await, "forbidden");
}

/// A member past its share of the workspace's requests gets 429 with `Retry-After`, and
/// another member of the workspace still reads.
#[sqlx::test(migrations = "../migrations")]
async fn a_member_at_its_limit_leaves_the_others_their_reads(db: PgPool) {
    let app = TestApp::spawn(db).await;
    set_limit(&app, "requestsPerUserPerMinute", 5).await;
    let counts = format!("/api/cache-settings/workspace/{WS}/counts");
    let greedy = token_for("user_5", &[WS], false, 3600);
    until_refused(&app, &counts, &greedy).await;
    let other = app
        .get(&counts, &token_for("user_6", &[WS], false, 3600))
        .await;
    assert_eq!(other.status(), StatusCode::OK, "another member reads on");
}

/// Each secret has one job: the key changes are pushed to the edge with reads nothing
/// here, and during a rotation the previous read key still reads.
#[sqlx::test(migrations = "../migrations")]
async fn the_push_key_cannot_read_and_the_previous_read_key_can(db: PgPool) {
    let seeded = seed_workspaces(&db).await;
    let mut config = test_config(&unique_namespace());
    config.internal_key_previous = Some(origin::config::Secret(
        "edge-read-key-before-rotation".into(),
    ));
    config.edge_push_key = Some(origin::config::Secret("edge-push-key-0123456".into()));
    let app = TestApp::spawn_with(db, config, seeded.boards).await;
    for key in [INTERNAL_KEY, "edge-read-key-before-rotation"] {
        assert_eq!(
            read_as_edge(&app, key).await.status(),
            StatusCode::OK,
            "{key}"
        );
    }
    let refused = read_as_edge(&app, "edge-push-key-0123456").await;
    assert_eq!(
        error_code(refused, StatusCode::UNAUTHORIZED).await,
        "unauthorized"
    );
}

/// Searches the caches do not answer cost the database most: a member past its search
/// budget gets 429 for searches only, and another member searches on.
#[sqlx::test(migrations = "../migrations")]
async fn a_member_past_its_search_budget_still_reads_and_others_still_search(db: PgPool) {
    let app = TestApp::spawn(db).await;
    set_limit(&app, "searchesPerUserPerMinute", 2).await;
    let board = app.boards[0];
    let greedy = token_for("user_5", &[WS], false, 3600);
    let search = |term: &str| format!("/api/boards/{board}/contacts?search={term}");
    for term in ["ada", "bob"] {
        assert_eq!(
            app.get(&search(term), &greedy).await.status(),
            StatusCode::OK
        );
    }
    until_refused(&app, &search("cy"), &greedy).await;
    let page = format!("/api/boards/{board}/contacts?per_page=5");
    assert_eq!(
        app.get(&page, &greedy).await.status(),
        StatusCode::OK,
        "pages still read"
    );
    let other = token_for("user_6", &[WS], false, 3600);
    assert_eq!(
        app.get(&search("dee"), &other).await.status(),
        StatusCode::OK
    );
}
