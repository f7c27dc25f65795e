//! Search as people type it: every prefix of real queries, one request per keystroke,
//! cold (an origin with no cache layer, so every answer is the database's) and warm (the
//! same keystrokes again through an origin with L1 and Redis), for contacts in the
//! plan's largest scaling workspace and for messages in its largest history workspace;
//! both again while writes land at the mixed workload's rate; what the search indexes
//! weigh, and what they cost writers (`search_cost`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sqlx::PgPool;
use tokio::task::JoinHandle;

use crate::database;
use crate::mixed::percentile;
use crate::plan::Plan;
use crate::rng::Rng;
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

/// Writes a second while the searches run "under writes": the mixed workload's 5% of its
/// paced 1,000 reads a second.
const WRITES_PER_SEC: u64 = 50;

/// Bodies of the messages posted under writes: some hold words of `MESSAGE_QUERIES` (their
/// searches miss after them), some none (those searches stay cached).
const POSTED: [&str; 6] = [
    "Could you send the invoice for March?",
    "Any news on the refund?",
    "Here is the screenshot you asked for.",
    "Great, talk soon!",
    "The export works again.",
    "Good morning",
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

/// Each path once, in order; the p50 and p99 in ms, how many answered and how many of
/// them a cache held.
async fn typed(
    http: &reqwest::Client,
    base: &str,
    paths: &[String],
    user: &str,
    ws: &str,
) -> Value {
    let mut times: Vec<Duration> = Vec::with_capacity(paths.len());
    let mut slowest: Vec<(Duration, &str)> = Vec::with_capacity(paths.len());
    let (mut failed, mut hits) = (0, 0);
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
                hits += usize::from(
                    r.headers()
                        .get("x-cache-status")
                        .is_some_and(|v| v.as_bytes() == b"HIT"),
                );
                let _ = r.bytes().await;
                times.push(started.elapsed());
                slowest.push((started.elapsed(), path.as_str()));
            }
            _ => failed += 1,
        }
    }
    // The keystrokes behind the tail, slowest first.
    slowest.sort_by_key(|s| std::cmp::Reverse(s.0));
    let slowest: Vec<Value> = slowest
        .iter()
        .take(3)
        .map(|(took, path)| json!({"path": path, "ms": took.as_secs_f64() * 1e3}))
        .collect();
    json!({
        "requests": paths.len(),
        "failed": failed,
        "hits": hits,
        "p50Ms": percentile(&mut times, 0.5),
        "p99Ms": percentile(&mut times, 0.99),
        "slowest": slowest,
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

/// Writes through `base` at `WRITES_PER_SEC` until dropped, in turn a message posted to one
/// of the message workspace's conversations and a favorite flipped in the contact
/// workspace, as the mixed workload's writers do.
struct Writes {
    stop: Arc<AtomicBool>,
    task: JoinHandle<u64>,
}

impl Writes {
    async fn start(db: &PgPool, base: String, contacts_ws: &str, messages_ws: &str) -> Self {
        let contacts = database::ids(
            db,
            "SELECT id FROM contacts WHERE workspace_id = $1 ORDER BY id DESC LIMIT 1000",
            contacts_ws,
        )
        .await;
        let conversations = database::ids(
            db,
            "SELECT id FROM conversations WHERE workspace_id = $1 ORDER BY id LIMIT 100",
            messages_ws,
        )
        .await;
        let (contacts_ws, messages_ws) = (contacts_ws.to_owned(), messages_ws.to_owned());
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let task = tokio::spawn(async move {
            let http = reqwest::Client::new();
            let (contact_user, message_user) = (
                token("user_3", &contacts_ws, false),
                token("user_3", &messages_ws, false),
            );
            let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / WRITES_PER_SEC));
            let (mut rng, mut done) = (Rng::seeded(7), 0u64);
            while !stopped.load(Ordering::Relaxed) {
                tick.tick().await;
                let request = if done % 2 == 0 {
                    let c = conversations[rng.below(conversations.len())];
                    http.post(format!(
                        "{base}/api/workspaces/{messages_ws}/conversations/{c}/messages"
                    ))
                    .bearer_auth(&message_user)
                    .json(&json!({"sender_type": "agent", "body": POSTED[rng.below(POSTED.len())]}))
                } else {
                    let c = contacts[rng.below(contacts.len())];
                    http.patch(format!("{base}/api/workspaces/{contacts_ws}/contacts/{c}"))
                        .bearer_auth(&contact_user)
                        .json(&json!({"favorite": rng.below(2) == 0}))
                };
                let r = request.send().await.expect("write");
                assert!(
                    r.status().is_success(),
                    "write under search: {}",
                    r.status()
                );
                done += 1;
            }
            done
        });
        Self { stop, task }
    }

    /// Stops writing; the writes made.
    async fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.expect("writer")
    }
}

pub async fn measure(
    db: &PgPool,
    url: &str,
    redis: &str,
    namespace: &str,
    (contacts_ws, messages_ws): (&str, &str),
    plan: &Plan,
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
        let mut runs = serde_json::Map::new();
        for under_writes in [false, true] {
            let writes = match under_writes {
                true => Some(Writes::start(db, cached.base(), contacts_ws, messages_ws).await),
                false => None,
            };
            let started = Instant::now();
            let cold = typed(&http, &uncached.base(), paths, &user, ws).await;
            typed(&http, &cached.base(), paths, &user, ws).await;
            let warm = typed(&http, &cached.base(), paths, &user, ws).await;
            let mut run = json!({"cold": cold, "warm": warm});
            if let Some(writes) = writes {
                let per_sec = writes.stop().await as f64 / started.elapsed().as_secs_f64();
                run["writesPerSec"] = json!(per_sec);
            }
            let key = if under_writes { "underWrites" } else { "quiet" };
            runs.insert(key.to_owned(), run);
        }
        runs.insert("workspace".to_owned(), json!(ws));
        out.insert(name.to_owned(), Value::Object(runs));
    }
    out.insert(
        "indexBytes".to_owned(),
        json!({
            "contactKeys": bytes_of(db, "contacts_search_lean_keys_idx").await,
            "contactsByCreationWithWords": bytes_of(db, "contacts_board_created_idx").await,
            "contactWords": bytes_of(db, "contact_search_words").await,
            "messagesFullText": bytes_of(db, "messages_search_idx").await,
            "messagesRecent": bytes_of(db, "messages_workspace_recent_idx").await,
        }),
    );
    out.insert(
        "writeCost".to_owned(),
        crate::search_cost::measure(plan).await,
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
