//! Cross-tenant probes: fifty workspaces whose contacts carry a marker naming their
//! workspace, every one of their pages cached first, then every endpoint asked with the
//! tokens of a few of them and the workspace header mismatched, duplicated,
//! comma-listed, recased, padded and percent-encoded. No answer may carry another
//! workspace's marker.

use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::json;
use shared::settings::MAX_RATE_PER_MIN;
use sqlx::PgPool;

use crate::helpers::*;

const WORKSPACES: usize = 50;

fn name(i: usize) -> String {
    format!("iso{i:02}")
}

fn marker(ws: &str) -> String {
    format!("MARK-{ws}-")
}

/// The markers of every workspace but `own` found in `body`.
fn foreign_markers(body: &str, own: &str) -> Vec<String> {
    (0..WORKSPACES)
        .map(name)
        .filter(|ws| ws != own && body.contains(&marker(ws)))
        .collect()
}

fn headers(values: &[String]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for v in values {
        if let Ok(value) = HeaderValue::from_str(v) {
            h.append("X-Workspace-ID", value);
        }
    }
    h
}

#[sqlx::test(migrations = "../migrations")]
async fn no_answer_ever_carries_another_workspaces_data(db: PgPool) {
    let store = pg(&db);
    let mut boards = Vec::new();
    for i in 0..WORKSPACES {
        let seeded = store.seed(&ws(&name(i)), 12, 1).await.expect("seed");
        boards.push(seeded.boards[0]);
    }
    sqlx::query("UPDATE contacts SET company = 'MARK-' || workspace_id || '-' || id")
        .execute(&db)
        .await
        .expect("markers");
    let mut config = test_config(&unique_namespace());
    config.requests_per_workspace_per_min = MAX_RATE_PER_MIN;
    config.writes_per_user_per_min = MAX_RATE_PER_MIN;
    config.requests_per_user_per_min = MAX_RATE_PER_MIN;
    config.searches_per_user_per_min = MAX_RATE_PER_MIN;
    let app = TestApp::spawn_with(db.clone(), config, boards.clone()).await;
    let contact_of: Vec<i64> = {
        let mut ids = Vec::new();
        for i in 0..WORKSPACES {
            ids.push(
                sqlx::query_scalar("SELECT min(id) FROM contacts WHERE workspace_id = $1")
                    .bind(name(i))
                    .fetch_one(&db)
                    .await
                    .expect("a contact"),
            );
        }
        ids
    };

    // Every workspace's first page and counts, cached by its own members.
    for (i, board) in boards.iter().enumerate() {
        let own = name(i);
        let t = token_for("user_3", &[&own], true, 3600);
        let page = app
            .http
            .get(app.url(&format!("/api/boards/{board}/contacts")))
            .bearer_auth(&t)
            .header("X-Workspace-ID", &own)
            .send()
            .await
            .expect("own page");
        let body = page.text().await.expect("body");
        assert!(
            body.contains(&marker(&own)),
            "the probe sees markers: {body}"
        );
    }

    let mut probes = 0;
    for prober in [0, WORKSPACES - 1] {
        let own = name(prober);
        let member = token_for("user_3", &[&own], false, 3600);
        let admin = token_for("user_1", &[&own], true, 3600);
        for (j, board) in boards.iter().enumerate() {
            if j == prober {
                continue;
            }
            let other = name(j);
            let spellings: Vec<Vec<String>> = vec![
                vec![other.clone()],
                vec![own.clone(), other.clone()],
                vec![other.clone(), own.clone()],
                vec![format!("{own},{other}")],
                vec![format!("{other},{own}")],
                vec![other.to_uppercase()],
                vec![format!(" {other} ")],
                vec![other.replace('i', "%69")],
                vec![],
            ];
            for spelling in &spellings {
                for t in [&member, &admin] {
                    let requests = [
                        app.http
                            .get(app.url(&format!("/api/boards/{board}/contacts")))
                            .headers(headers(spelling)),
                        app.http
                            .get(app.url(&format!(
                                "/api/boards/{board}/contacts?search=mark&per_page=100"
                            )))
                            .headers(headers(spelling)),
                        app.http
                            .get(app.url(&format!("/api/cache-settings/workspace/{other}/counts")))
                            .headers(headers(spelling)),
                        app.http
                            .get(
                                app.url(&format!("/api/cache-settings/workspace/{other}/settings")),
                            )
                            .headers(headers(spelling)),
                        app.http
                            .post(app.url("/api/cache-settings/warm-cache"))
                            .headers(headers(spelling))
                            .json(&json!({"workspaceId": other})),
                        app.http
                            .post(app.url("/api/cache-settings/test-performance"))
                            .headers(headers(spelling))
                            .json(&json!({"workspaceId": other})),
                        app.http
                            .patch(app.url(&format!(
                                "/api/workspaces/{other}/contacts/{}",
                                contact_of[j]
                            )))
                            .headers(headers(spelling))
                            .json(&json!({"name": "taken over"})),
                        app.http
                            .patch(
                                app.url(&format!(
                                    "/api/workspaces/{own}/contacts/{}",
                                    contact_of[j]
                                )),
                            )
                            .headers(headers(spelling))
                            .json(&json!({"name": "taken over"})),
                    ];
                    for request in requests {
                        let r = request.bearer_auth(t).send().await.expect("probe");
                        let status = r.status();
                        let body = r.text().await.expect("body");
                        assert!(status.as_u16() < 500, "{status}: {body}");
                        let leaked = foreign_markers(&body, &own);
                        assert!(leaked.is_empty(), "{own} read {leaked:?}: {body}");
                        probes += 1;
                    }
                }
            }
        }
    }
    assert!(probes > 5_000, "{probes} probes");
    let taken: i64 = sqlx::query_scalar("SELECT count(*) FROM contacts WHERE name = 'taken over'")
        .fetch_one(&db)
        .await
        .expect("count");
    assert_eq!(taken, 0, "no write crossed a workspace");
}
