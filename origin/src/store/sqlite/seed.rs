//! Demo and test data for the embedded store: the Postgres seed's distributions, written
//! as one INSERT … SELECT over a recursive counter (SQLite has no generate_series).

use shared::WorkspaceId;
use sqlx::SqlitePool;

use super::super::{
    history_chunks, history_progress, seed_chunks, seed_progress, Seeded, SeededHistory,
    SEED_COLUMNS,
};
use crate::error::Result;

pub async fn seed(db: &SqlitePool, ws: &WorkspaceId, contacts: u32, boards: u32) -> Result<Seeded> {
    let mut tx = db.begin().await?;
    sqlx::query("INSERT INTO workspaces (id, name) VALUES (?, ?) ON CONFLICT (id) DO NOTHING")
        .bind(ws.as_str())
        .bind(format!("Workspace {ws}"))
        .execute(&mut *tx)
        .await?;
    let mut board_ids = Vec::new();
    for n in 1..=boards.max(1) {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO boards (workspace_id, name) VALUES (?, ?) RETURNING id",
        )
        .bind(ws.as_str())
        .bind(format!("Pipeline {n}"))
        .fetch_one(&mut *tx)
        .await?;
        for (position, name) in (1i64..).zip(SEED_COLUMNS) {
            sqlx::query("INSERT INTO board_columns (board_id, name, position) VALUES (?, ?, ?)")
                .bind(id)
                .bind(name)
                .bind(position)
                .execute(&mut *tx)
                .await?;
        }
        board_ids.push(id);
    }
    let board_list = serde_json::to_string(&board_ids).map_err(super::super::internal)?;
    let mut inserted = 0;
    for (from, to) in seed_chunks(contacts) {
        inserted += sqlx::query(SEED_CONTACTS)
            .bind(ws.as_str())
            .bind(from)
            .bind(&board_list)
            .bind(to)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        seed_progress(ws, inserted, contacts);
    }
    tx.commit().await?;
    sqlx::query("ANALYZE").execute(db).await?;
    Ok(Seeded {
        boards: board_ids,
        contacts: inserted,
    })
}

pub async fn is_empty(db: &SqlitePool) -> Result<bool> {
    let any: Option<i64> = sqlx::query_scalar("SELECT 1 FROM workspaces LIMIT 1")
        .fetch_optional(db)
        .await?;
    Ok(any.is_none())
}

/// `?1` workspace, contacts numbered `?2` to `?4`, `?3` the boards as a JSON array. Random
/// fractions come from `random()`'s low 20 bits; MATERIALIZED keeps each row's draws
/// the same wherever they are used.
const SEED_CONTACTS: &str = r#"
WITH RECURSIVE
g(i) AS (SELECT ?2 WHERE ?2 <= ?4 UNION ALL SELECT i + 1 FROM g WHERE i < ?4),
cols AS (
    SELECT board_id, id AS column_id,
           row_number() OVER (ORDER BY board_id, position) - 1 AS n,
           count(*) OVER () AS k
    FROM board_columns WHERE board_id IN (SELECT value FROM json_each(?3))
),
draws AS MATERIALIZED (
    SELECT i,
        (random() & 1048575) / 1048576.0 AS r1, (random() & 1048575) / 1048576.0 AS r2,
        (random() & 1048575) / 1048576.0 AS r3, (random() & 1048575) / 1048576.0 AS r4,
        (random() & 1048575) / 1048576.0 AS r5,
        julianday('now') - ((random() & 1048575) / 1048576.0) * 730 AS created
    FROM g
),
people AS (
    SELECT d.*,
        json_extract('["Ada","Grace","Alan","Linus","Margaret","Ken","Barbara","Dennis","Frances","Edsger","Radia","Tim","Hedy","Donald","Katherine","Guido","Sophie","John","Mary","Niklaus"]',
                     '$[' || (i % 20) || ']') AS first,
        json_extract('["Lovelace","Hopper","Turing","Torvalds","Hamilton","Thompson","Liskov","Ritchie","Allen","Dijkstra","Perlman","Berners-Lee","Lamarr","Knuth","Johnson","Rossum","Wilson","Backus","Keller","Wirth","Shaw","Kay","Moore","Cerf"]',
                     '$[' || ((i / 20) % 24) || ']') AS last,
        json_extract('["Acme","Globex","Initech","Umbrella","Hooli","Vandelay","Stark","Wayne","Tyrell","Cyberdyne","Soylent","Aperture"]',
                     '$[' || ((i * 7) % 12) || ']') AS company
    FROM draws d
)
INSERT INTO contacts (workspace_id, board_id, column_id, name, email, phone, company, status, priority,
    assigned_to, needs_response, follow_up, favorite, archived, sentiment, created_at, updated_at,
    last_activity_at, custom_attributes)
SELECT ?1, c.board_id, c.column_id,
    p.first || ' ' || p.last,
    lower(p.first || '.' || replace(p.last, '-', '') || p.i) || '@' || lower(p.company) || '.example',
    '+1-555-' || substr('0000' || (p.i % 10000), -4, 4),
    p.company,
    CASE WHEN p.r1 < 0.62 THEN 'open' ELSE 'closed' END,
    CASE WHEN p.r2 < 0.15 THEN 'high' WHEN p.r2 < 0.65 THEN 'medium' ELSE 'low' END,
    CASE WHEN p.r3 < 0.28 THEN NULL ELSE 'user_' || (1 + CAST(p.r3 * 1000 AS INTEGER) % 25) END,
    p.r4 < 0.14,
    p.r5 < 0.11,
    (p.i % 23) = 0,
    p.r1 > 0.93,
    CASE WHEN p.r4 > 0.9 THEN 'negative' WHEN p.r4 > 0.5 THEN 'positive' ELSE 'neutral' END,
    strftime('%Y-%m-%dT%H:%M:%fZ', p.created),
    strftime('%Y-%m-%dT%H:%M:%fZ', p.created + (julianday('now') - p.created) * p.r5),
    strftime('%Y-%m-%dT%H:%M:%fZ', p.created + (julianday('now') - p.created) * (1 - (1 - p.r5) * (1 - p.r5))),
    json_object('plan', json_extract('["free","team","business","enterprise"]', '$[' || (p.i % 4) || ']'),
                'seats', 1 + CAST(p.r2 * 200 AS INTEGER),
                'source', json_extract('["web","referral","event","ads","partner"]', '$[' || ((p.i / 3) % 5) || ']'))
FROM people p JOIN cols c ON c.n = p.i % c.k
"#;

/// The Postgres seed's conversations and messages (see there), in SQLite's terms.
pub async fn seed_messages(
    db: &SqlitePool,
    ws: &WorkspaceId,
    conversations: u32,
    messages: u64,
) -> Result<SeededHistory> {
    let mut tx = db.begin().await?;
    let ids: Vec<i64> = sqlx::query_scalar(SEED_CONVERSATIONS)
        .bind(ws.as_str())
        .bind(i64::from(conversations))
        .fetch_all(&mut *tx)
        .await?;
    let mut inserted = 0;
    if !ids.is_empty() {
        let list = serde_json::to_string(&ids).map_err(super::super::internal)?;
        for (from, to) in history_chunks(messages) {
            inserted += sqlx::query(SEED_MESSAGES)
                .bind(ws.as_str())
                .bind(from)
                .bind(to)
                .bind(messages as i64)
                .bind(&list)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            history_progress(ws, inserted, messages);
        }
        sqlx::query(
            "UPDATE conversations SET last_message_at = coalesce((SELECT created_at FROM messages m \
             WHERE m.conversation_id = conversations.id ORDER BY id DESC LIMIT 1), created_at) \
             WHERE id IN (SELECT value FROM json_each(?))",
        )
        .bind(&list)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(SeededHistory {
        conversations: ids,
        messages: inserted,
    })
}

const SEED_CONVERSATIONS: &str = "
INSERT INTO conversations (workspace_id, contact_id, status, created_at, last_message_at)
SELECT ?1, id, CASE WHEN n % 4 = 0 THEN 'resolved' ELSE 'open' END,
       strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-30 days'), strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-30 days')
FROM (SELECT id, row_number() OVER (ORDER BY id DESC) AS n
      FROM contacts WHERE workspace_id = ?1 ORDER BY id DESC LIMIT ?2)
ORDER BY n
RETURNING id";

/// `?1` workspace, messages numbered `?2` to `?3` of `?4`, `?5` the conversations as JSON.
const SEED_MESSAGES: &str = r#"
WITH RECURSIVE
g(i) AS (SELECT ?2 WHERE ?2 <= ?3 UNION ALL SELECT i + 1 FROM g WHERE i < ?3),
s(k) AS (SELECT json_array_length(?5))
INSERT INTO messages (workspace_id, conversation_id, sender_type, sender_id, body, created_at)
SELECT ?1,
    json_extract(?5, '$[' || (CASE WHEN k = 1 OR i <= ?4 / 2 THEN 0 ELSE 1 + i % (k - 1) END) || ']'),
    CASE WHEN i % 10 = 0 THEN 'bot' WHEN i % 2 = 0 THEN 'agent' ELSE 'contact' END,
    CASE WHEN i % 10 <> 0 AND i % 2 = 0 THEN 'user_' || (1 + i % 25) END,
    json_extract('["Hi, is anyone there?","Thanks for reaching out!","Could you send the invoice again?","Sure, one moment please.","The export still fails on my side.","We shipped a fix, can you retry?","Works now, thank you!","Can we move the call to Thursday?","Here is the screenshot.","I have forwarded this to billing.","Any update on this?","Closing this for now."]',
                 '$[' || (i % 12) || ']') || ' #' || i,
    strftime('%Y-%m-%dT%H:%M:%fZ', julianday('now') - 30 + (i * 1.0 / max(?4, 1)) * (30 - 1.0 / 1440))
FROM g, s
ORDER BY i
"#;
