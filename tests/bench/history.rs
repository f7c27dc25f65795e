//! Message history: a conversation's head page through each layer, deep cursor pages in
//! a conversation of 1M messages and in a workspace of 10M, messages posted while others
//! read the head page on two instances (every read checked against the posts
//! acknowledged before it started), and event streams held open on one instance: the
//! memory they cost and the delay from a write to its event reaching every stream.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use shared::messages::MessageQuery;
use shared::{ConversationId, WorkspaceId};
use sqlx::PgPool;

use crate::mixed::percentile;
use crate::plan::Plan;
use e2e::origins::{self, token, Layers};
use e2e::rss_mib;

const PAGE: i64 = 50;

/// The workspace's longest conversation and its length.
async fn longest(db: &PgPool, ws: &str) -> (i64, i64) {
    sqlx::query_as(
        "SELECT conversation_id, count(*) FROM messages WHERE workspace_id = $1 \
         AND conversation_id = (SELECT min(id) FROM conversations WHERE workspace_id = $1) \
         GROUP BY 1",
    )
    .bind(ws)
    .fetch_one(db)
    .await
    .expect("a conversation")
}

async fn get(http: &reqwest::Client, url: &str, user: &str, ws: &str) -> Value {
    let r = http
        .get(url)
        .bearer_auth(user)
        .header("X-Workspace-ID", ws)
        .send()
        .await
        .expect("request");
    assert!(r.status().is_success(), "{url}: {}", r.status());
    r.json().await.expect("json")
}

/// The median of `runs` sequential reads of `url`, in milliseconds, and the last answer.
async fn median_ms(
    http: &reqwest::Client,
    url: &str,
    user: &str,
    ws: &str,
    runs: usize,
) -> (f64, Value) {
    let mut times = Vec::with_capacity(runs);
    let mut last = Value::Null;
    for _ in 0..runs {
        let started = Instant::now();
        last = get(http, url, user, ws).await;
        times.push(started.elapsed());
    }
    (percentile(&mut times, 0.5), last)
}

/// The `before=` of page `n` (from 1) of a conversation, newest first.
async fn page_cursor(db: &PgPool, ws: &str, conversation: i64, n: i64) -> Option<String> {
    if n == 1 {
        return None;
    }
    let last_of_previous: i64 = sqlx::query_scalar(
        "SELECT id FROM messages WHERE conversation_id = $1 ORDER BY id DESC OFFSET $2 LIMIT 1",
    )
    .bind(conversation)
    .bind((n - 1) * PAGE - 1)
    .fetch_one(db)
    .await
    .expect("a message at that depth");
    let ws = WorkspaceId::parse(ws).expect("ws");
    let key = origins::cursor_key();
    let head =
        MessageQuery::from_pairs([], &ws, ConversationId(conversation), &key).expect("query");
    Some(head.next_cursor(&key, &ws, last_of_previous))
}

fn path(conversation: i64, before: Option<&str>) -> String {
    match before {
        None => format!("/api/conversations/{conversation}/messages?limit={PAGE}"),
        Some(c) => format!("/api/conversations/{conversation}/messages?limit={PAGE}&before={c}"),
    }
}

/// Head page p50 per layer (L1 hit, L2 hit, database), and cold pages at depth through
/// the database in each history workspace.
async fn pages(db: &PgPool, url: &str, redis: &str, ns: &str, plan: &Plan) -> Value {
    let layers = |l1_bytes, redis: Option<&str>| Layers {
        l1_bytes,
        redis: redis.map(str::to_owned),
        namespace: ns.to_owned(),
    };
    let memory = origins::origin(url, &layers(64 << 20, Some(redis))).await;
    let l2 = origins::origin(url, &layers(0, Some(redis))).await;
    let uncached = origins::origin(url, &layers(0, None)).await;
    let http = reqwest::Client::new();
    let runs = plan.scaling_runs * 4;
    let mut rows = Vec::new();
    for (ws, _, _) in &plan.history {
        let user = token("user_3", ws, false);
        let (conversation, length) = longest(db, ws).await;
        let head = path(conversation, None);
        let (database, first) = median_ms(
            &http,
            &format!("{}{head}", uncached.base()),
            &user,
            ws,
            runs,
        )
        .await;
        get(&http, &format!("{}{head}", l2.base()), &user, ws).await;
        let (redis_hit, hit) =
            median_ms(&http, &format!("{}{head}", l2.base()), &user, ws, runs).await;
        get(&http, &format!("{}{head}", memory.base()), &user, ws).await;
        let (memory_hit, _) =
            median_ms(&http, &format!("{}{head}", memory.base()), &user, ws, runs).await;
        assert_eq!(hit["data"]["_cache"]["source"], "redis_cache");
        assert_eq!(first["data"]["_cache"]["status"], "MISS");
        let last_page = (length + PAGE - 1) / PAGE;
        let mut depths = Vec::new();
        for n in [1, last_page / 2, last_page] {
            let cursor = page_cursor(db, ws, conversation, n).await;
            let deep = format!(
                "{}{}",
                uncached.base(),
                path(conversation, cursor.as_deref())
            );
            let (ms, answer) = median_ms(&http, &deep, &user, ws, runs).await;
            depths.push(json!({"page": n, "medianMs": ms,
                "messages": answer["data"]["messages"].as_array().map_or(0, Vec::len)}));
        }
        let workspace_messages: i64 =
            sqlx::query_scalar("SELECT count(*) FROM messages WHERE workspace_id = $1")
                .bind(ws)
                .fetch_one(db)
                .await
                .expect("count");
        rows.push(json!({
            "workspace": ws,
            "workspaceMessages": workspace_messages,
            "conversationMessages": length,
            "headMs": {"memory": memory_hit, "redis_cache": redis_hit, "database": database},
            "coldPagesByCursor": depths,
        }));
    }
    Value::Array(rows)
}

/// Posts messages to one conversation from several clients while others read its head
/// page on two instances; a read that started after a post was acknowledged must show it.
async fn ingest(db: &PgPool, url: &str, redis: &str, ns: &str, plan: &Plan) -> Value {
    let (ws, _, _) = &plan.history[0];
    let layers = Layers {
        l1_bytes: 64 << 20,
        redis: Some(redis.to_owned()),
        namespace: format!("{ns}i"),
    };
    let a = origins::origin(url, &layers).await;
    let b = origins::origin(url, &layers).await;
    let bases = [a.base(), b.base()];
    let (conversation, _) = longest(db, ws).await;
    let user = token("user_3", ws, false);
    let http = reqwest::Client::new();
    let acknowledged = Arc::new(AtomicI64::new(0));
    let (posts, reads, stale) = (
        Arc::new(Mutex::new(Vec::new())),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let until = Instant::now() + plan.ingest_for;
    let mut tasks = Vec::new();
    for n in 0..plan.ingest_clients {
        let (http, user, ws, base) = (http.clone(), user.clone(), ws.clone(), bases[n % 2].clone());
        let (acknowledged, posts, reads, stale) = (
            acknowledged.clone(),
            posts.clone(),
            reads.clone(),
            stale.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let writer = n % 2 == 0;
            while Instant::now() < until {
                if writer {
                    let started = Instant::now();
                    let r = http
                        .post(format!(
                            "{base}/api/workspaces/{ws}/conversations/{conversation}/messages"
                        ))
                        .bearer_auth(&user)
                        .json(&json!({"sender_type": "agent", "body": "ingest"}))
                        .send()
                        .await
                        .expect("post");
                    assert_eq!(r.status().as_u16(), 201);
                    let id = r.json::<Value>().await.expect("json")["data"]["id"]
                        .as_i64()
                        .expect("id");
                    posts.lock().expect("posts").push(started.elapsed());
                    acknowledged.fetch_max(id, Ordering::SeqCst);
                } else {
                    let must_show = acknowledged.load(Ordering::SeqCst);
                    let page = get(
                        &http,
                        &format!("{base}{}", path(conversation, None)),
                        &user,
                        &ws,
                    )
                    .await;
                    reads.fetch_add(1, Ordering::Relaxed);
                    if page["data"]["messages"][0]["id"].as_i64().unwrap_or(0) < must_show {
                        stale.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await.expect("client");
    }
    let mut posts = std::mem::take(&mut *posts.lock().expect("posts"));
    let secs = plan.ingest_for.as_secs_f64();
    json!({
        "clients": plan.ingest_clients,
        "seconds": secs,
        "postsPerSec": posts.len() as f64 / secs,
        "postP99Ms": percentile(&mut posts, 0.99),
        "headReadsPerSec": reads.load(Ordering::Relaxed) as f64 / secs,
        "staleHeadReads": stale.load(Ordering::Relaxed),
    })
}

/// Holds `plan.streams` event streams open on one instance, then writes one contact at a
/// time: resident memory per stream, and the delay from each write's start to its event
/// at every stream.
async fn streams(db: &PgPool, url: &str, redis: &str, ns: &str, plan: &Plan) -> Value {
    let ws = plan.main[0].clone();
    let layers = Layers {
        l1_bytes: 64 << 20,
        redis: Some(redis.to_owned()),
        namespace: format!("{ns}s"),
    };
    let origin = origins::origin(url, &layers).await;
    let user = token("user_3", &ws, false);
    let contact: i64 =
        sqlx::query_scalar("SELECT id FROM contacts WHERE workspace_id = $1 ORDER BY id LIMIT 1")
            .bind(&ws)
            .fetch_one(db)
            .await
            .expect("a contact");
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .expect("client");
    let write = |favorite: bool| {
        let (http, user, ws, base) = (http.clone(), user.clone(), ws.clone(), origin.base());
        async move {
            let r = http
                .patch(format!("{base}/api/workspaces/{ws}/contacts/{contact}"))
                .bearer_auth(&user)
                .json(&json!({ "favorite": favorite }))
                .send()
                .await
                .expect("write");
            assert!(r.status().is_success());
        }
    };
    write(false).await;
    let before = rss_mib(origin.pid());
    let received: Arc<Mutex<Vec<Vec<Instant>>>> = Arc::default();
    let mut opened = Vec::new();
    // One member each, as the members of a workspace watch it (a member's streams are
    // capped at LIVE_MAX_CONNECTIONS_PER_USER).
    for n in 0..plan.streams {
        let r = http
            .get(format!("{}/api/workspaces/{ws}/events", origin.base()))
            .bearer_auth(token(&format!("watcher_{n}"), &ws, false))
            .send()
            .await
            .expect("stream");
        assert!(r.status().is_success(), "stream: {}", r.status());
        opened.push(r);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = rss_mib(origin.pid());
    let mut readers = Vec::new();
    for mut r in opened {
        let received = received.clone();
        readers.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            let mut text = String::new();
            while let Ok(Ok(Some(chunk))) =
                tokio::time::timeout(Duration::from_secs(3), r.chunk()).await
            {
                let at = Instant::now();
                text.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(end) = text.find("\n\n") {
                    let event: String = text.drain(..end + 2).collect();
                    if event.contains(r#""scope":"board""#) {
                        seen.push(at);
                    }
                }
            }
            received.lock().expect("received").push(seen);
        }));
    }
    let mut started = Vec::new();
    for n in 0..plan.stream_writes {
        started.push(Instant::now());
        write(n % 2 == 0).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for r in readers {
        r.await.expect("reader");
    }
    let received = std::mem::take(&mut *received.lock().expect("received"));
    let mut delays = Vec::new();
    let mut missing = 0;
    for seen in &received {
        missing += started.len().saturating_sub(seen.len());
        delays.extend(started.iter().zip(seen).map(|(s, r)| r.duration_since(*s)));
    }
    json!({
        "streams": plan.streams,
        "writes": plan.stream_writes,
        "rssBeforeMiB": before,
        "rssAfterMiB": after,
        "bytesPerStream": ((after - before) * 1048576.0 / plan.streams as f64).round(),
        "eventsMissing": missing,
        "writeToEventP50Ms": percentile(&mut delays.clone(), 0.50),
        "writeToEventP99Ms": percentile(&mut delays, 0.99),
    })
}

pub async fn measure(db: &PgPool, url: &str, redis: &str, ns: &str, plan: &Plan) -> Value {
    for (ws, _, _) in &plan.history {
        crate::database::settings(db, ws, |s| s.features.message_history = true).await;
    }
    json!({
        "pages": pages(db, url, redis, ns, plan).await,
        "ingest": ingest(db, url, redis, ns, plan).await,
        "streams": streams(db, url, redis, ns, plan).await,
    })
}
