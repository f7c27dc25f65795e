//! How a cold read's cost grows with the workspace: counts and pages 1 and 1000 through an
//! origin with no cache layers (every answer from Postgres), and page 1000 as the store
//! would fetch it by offset and by keyset (a cursor on the sort key) in plain SQL, and
//! page 1000 through the API by cursor.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use shared::cursor::Cursor;
use shared::query::ContactListQuery;
use shared::{BoardId, WorkspaceId};
use sqlx::PgPool;

const DEEP_OFFSET: i64 = 999 * 50;

async fn median_ms<F, Fut>(runs: usize, mut f: F) -> f64
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut times: Vec<Duration> = Vec::with_capacity(runs);
    for _ in 0..runs {
        let started = Instant::now();
        f().await;
        times.push(started.elapsed());
    }
    times.sort();
    shared::stats::quantile(&times, 0.5).map_or(0.0, |t| t.as_secs_f64() * 1000.0)
}

async fn get_ok(http: &reqwest::Client, url: &str, token: &str, ws: &str) {
    let r = http
        .get(url)
        .bearer_auth(token)
        .header("X-Workspace-ID", ws)
        .send()
        .await
        .expect("request");
    assert!(r.status().is_success(), "{url}: {}", r.status());
}

pub async fn measure(
    db: &PgPool,
    uncached: &str,
    ws: &str,
    contacts: u32,
    token: &str,
    runs: usize,
) -> Value {
    let http = reqwest::Client::new();
    let board: i64 =
        sqlx::query_scalar("SELECT id FROM boards WHERE workspace_id = $1 ORDER BY id LIMIT 1")
            .bind(ws)
            .fetch_one(db)
            .await
            .expect("board");
    let counts = format!("{uncached}/api/cache-settings/workspace/{ws}/counts");
    let page = |n: u32| format!("{uncached}/api/boards/{board}/contacts?page={n}");
    let cold_counts = median_ms(runs, || get_ok(&http, &counts, token, ws)).await;
    let (first, deep) = (page(1), page(1000));
    let page_1 = median_ms(runs, || get_ok(&http, &first, token, ws)).await;
    let page_1000 = median_ms(runs, || get_ok(&http, &deep, token, ws)).await;
    let deep_cursor = cursor_to_page_1000(db, ws, board).await;
    let page_1000_cursor = match &deep_cursor {
        Some(c) => {
            let url = format!("{uncached}/api/boards/{board}/contacts?cursor={c}");
            Some(median_ms(runs, || get_ok(&http, &url, token, ws)).await)
        }
        None => None,
    };

    const WHERE: &str = "FROM contacts WHERE workspace_id = $1 AND board_id = $2 AND NOT archived";
    let offset_sql = format!(
        "SELECT id {WHERE} ORDER BY created_at DESC, id DESC LIMIT 50 OFFSET {DEEP_OFFSET}"
    );
    let cursor: Option<(chrono::DateTime<chrono::Utc>, i64)> = sqlx::query_as(&format!(
        "SELECT created_at, id {WHERE} ORDER BY created_at DESC, id DESC LIMIT 1 OFFSET {}",
        DEEP_OFFSET - 1
    ))
    .bind(ws)
    .bind(board)
    .fetch_optional(db)
    .await
    .expect("cursor");
    let offset_ms = median_ms(runs, || async {
        sqlx::query(&offset_sql)
            .bind(ws)
            .bind(board)
            .fetch_all(db)
            .await
            .expect("offset page");
    })
    .await;
    let keyset_ms = match cursor {
        Some((at, id)) => {
            let sql = format!(
                "SELECT id {WHERE} AND (created_at, id) < ($3, $4) \
                 ORDER BY created_at DESC, id DESC LIMIT 50"
            );
            Some(
                median_ms(runs, || async {
                    sqlx::query(&sql)
                        .bind(ws)
                        .bind(board)
                        .bind(at)
                        .bind(id)
                        .fetch_all(db)
                        .await
                        .expect("keyset page");
                })
                .await,
            )
        }
        None => None,
    };
    json!({
        "contacts": contacts,
        "coldCountsMs": cold_counts,
        "page1Ms": page_1,
        "page1000Ms": page_1000,
        "page1000CursorMs": page_1000_cursor,
        "sqlPage1000OffsetMs": offset_ms,
        "sqlPage1000KeysetMs": keyset_ms,
    })
}

/// The cursor a client holds after paging to page 999 of the board's default list
/// (newest first, 50 a page): built from that page's last row, as the API builds it.
async fn cursor_to_page_1000(db: &PgPool, ws: &str, board: i64) -> Option<String> {
    let last: Option<(chrono::DateTime<chrono::Utc>, i64)> = sqlx::query_as(&format!(
        "SELECT created_at, id FROM contacts WHERE workspace_id = $1 AND board_id = $2 \
         AND NOT archived ORDER BY created_at DESC, id DESC LIMIT 1 OFFSET {}",
        DEEP_OFFSET - 1
    ))
    .bind(ws)
    .bind(board)
    .fetch_optional(db)
    .await
    .expect("row before page 1000");
    let (at, id) = last?;
    let wsid = WorkspaceId::parse(ws).expect("workspace");
    let q = ContactListQuery::default();
    let cursor = Cursor {
        page: 1000,
        value: at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        id,
    };
    Some(cursor.encode(
        &e2e::origins::cursor_key(),
        &q.binding(&wsid, BoardId(board)),
    ))
}
