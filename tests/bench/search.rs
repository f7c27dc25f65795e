//! Search as people type it: every prefix of real queries, one request per keystroke,
//! cold (an origin with no cache layer, so every answer is the database's) and warm (the
//! same keystrokes again through an origin with L1 and Redis), for contacts in the
//! plan's largest scaling workspace and for messages in its largest history workspace;
//! and what the search indexes weigh.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sqlx::PgPool;

use crate::mixed::percentile;
use e2e::origins::{self, token, Layers};

/// Queries of the seeded data as a CRM user types them: names, e-mails, companies, phone
/// digits in three formats, and two with a typo.
const CONTACT_QUERIES: [&str; 20] = [
    "grace hopper",
    "ada lovelace",
    "alan turing",
    "linus torvalds",
    "margaret hamilton",
    "ken thompson",
    "barbara liskov",
    "dennis ritchie",
    "donald knuth",
    "guido rossum",
    "acme",
    "initech",
    "hooli",
    "grace.hopper1",
    "ada.lovelace7",
    "+1-555-0042",
    "5550199",
    "0042",
    "hoper",
    "lovelase",
];

/// Queries of the seeded message bodies: words, a phrase, and words of two.
const MESSAGE_QUERIES: [&str; 8] = [
    "invoice",
    "screenshot",
    "thursday",
    "export fails",
    "\"shipped a fix\"",
    "billing",
    "forwarded",
    "retry",
];

/// Every prefix of `query`, as typed (a keystroke each; a space or a quote alone sends
/// nothing new, as a search box waits for a word).
fn keystrokes(query: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (i, _) in query.char_indices().skip(1).chain([(query.len(), ' ')]) {
        let typed = query[..i].trim_end().to_owned();
        if out.last() != Some(&typed) && typed.chars().any(char::is_alphanumeric) {
            out.push(typed);
        }
    }
    out
}

/// Each path once, in order; the p50 and p99 in ms and how many answered.
async fn typed(
    http: &reqwest::Client,
    base: &str,
    paths: &[String],
    user: &str,
    ws: &str,
) -> Value {
    let mut times: Vec<Duration> = Vec::with_capacity(paths.len());
    let mut failed = 0;
    for path in paths {
        let started = Instant::now();
        let r = http
            .get(format!("{base}{path}"))
            .bearer_auth(user)
            .header("X-Workspace-ID", ws)
            .send()
            .await;
        match r {
            Ok(r) if r.status().is_success() => {
                let _ = r.bytes().await;
                times.push(started.elapsed());
            }
            _ => failed += 1,
        }
    }
    json!({
        "requests": paths.len(),
        "failed": failed,
        "p50Ms": percentile(&mut times, 0.5),
        "p99Ms": percentile(&mut times, 0.99),
    })
}

fn encoded(q: &str) -> String {
    form_urlencoded::byte_serialize(q.as_bytes()).collect()
}

async fn bytes_of(db: &PgPool, relation: &str) -> i64 {
    sqlx::query_scalar("SELECT coalesce(pg_total_relation_size(to_regclass($1)), 0)")
        .bind(relation)
        .fetch_one(db)
        .await
        .unwrap_or(0)
}

pub async fn measure(
    db: &PgPool,
    url: &str,
    redis: &str,
    namespace: &str,
    contacts_ws: &str,
    messages_ws: &str,
) -> Value {
    for ws in [contacts_ws, messages_ws] {
        crate::database::settings(db, ws, |s| s.features.search = true).await;
    }
    let uncached = origins::origin(
        url,
        &Layers {
            l1_bytes: 0,
            redis: None,
            namespace: namespace.to_owned(),
        },
    )
    .await;
    let cached = origins::origin(
        url,
        &Layers {
            l1_bytes: 256 * 1024 * 1024,
            redis: Some(redis.to_owned()),
            namespace: namespace.to_owned(),
        },
    )
    .await;
    let http = reqwest::Client::new();
    let board: i64 =
        sqlx::query_scalar("SELECT id FROM boards WHERE workspace_id = $1 ORDER BY id LIMIT 1")
            .bind(contacts_ws)
            .fetch_one(db)
            .await
            .expect("board");
    let contact_paths: Vec<String> = CONTACT_QUERIES
        .iter()
        .flat_map(|q| keystrokes(q))
        .map(|typed| format!("/api/boards/{board}/contacts?search={}", encoded(&typed)))
        .collect();
    let message_paths: Vec<String> = MESSAGE_QUERIES
        .iter()
        .flat_map(|q| keystrokes(q))
        .map(|typed| {
            format!(
                "/api/workspaces/{messages_ws}/messages/search?q={}",
                encoded(&typed)
            )
        })
        .collect();
    let mut out = serde_json::Map::new();
    for (name, ws, paths) in [
        ("contacts", contacts_ws, &contact_paths),
        ("messages", messages_ws, &message_paths),
    ] {
        let user = token("user_3", ws, false);
        let cold = typed(&http, &uncached.base(), paths, &user, ws).await;
        typed(&http, &cached.base(), paths, &user, ws).await;
        let warm = typed(&http, &cached.base(), paths, &user, ws).await;
        out.insert(
            name.to_owned(),
            json!({"workspace": ws, "cold": cold, "warm": warm}),
        );
    }
    out.insert(
        "indexBytes".to_owned(),
        json!({
            "contactsTrigram": bytes_of(db, "contacts_search_doc_idx").await,
            "contactWords": bytes_of(db, "contact_search_words").await,
            "messagesFullText": bytes_of(db, "messages_search_idx").await,
            "messagesRecent": bytes_of(db, "messages_workspace_recent_idx").await,
        }),
    );
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_is_typed_one_keystroke_at_a_time() {
        assert_eq!(keystrokes("ab c"), ["a", "ab", "ab c"]);
        assert_eq!(keystrokes("\"a\""), ["\"a", "\"a\""]);
    }
}
