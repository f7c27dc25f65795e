//! Realistic demo and test data, generated inside Postgres in one set-based INSERT per
//! workspace (200k contacts take seconds, not minutes of row-by-row round trips).

use shared::WorkspaceId;
use sqlx::{Connection, PgPool};

use super::super::{
    history_chunks, history_progress, seed_chunks, seed_progress, Seeded, SeededHistory,
    SEED_COLUMNS,
};
use crate::error::Result;

pub async fn seed(db: &PgPool, ws: &WorkspaceId, contacts: u32, boards: u32) -> Result<Seeded> {
    let mut tx = db.begin().await?;
    sqlx::query("SELECT set_config('edgecache.skip_notify', 'on', true), set_config('statement_timeout', '0', true), setseed(0.15213)")
        .execute(&mut *tx)
        .await?;
    sqlx::query("INSERT INTO workspaces (id, name) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING")
        .bind(ws.as_str())
        .bind(format!("Workspace {ws}"))
        .execute(&mut *tx)
        .await?;
    let mut board_ids = Vec::new();
    for n in 1..=boards.max(1) {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO boards (workspace_id, name) VALUES ($1, $2) RETURNING id",
        )
        .bind(ws.as_str())
        .bind(format!("Pipeline {n}"))
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO board_columns (board_id, name, position) \
             SELECT $1, name, ord::int FROM unnest($2::text[]) WITH ORDINALITY AS c(name, ord)",
        )
        .bind(id)
        .bind(&SEED_COLUMNS[..])
        .execute(&mut *tx)
        .await?;
        board_ids.push(id);
    }
    let mut inserted = 0;
    for (from, to) in seed_chunks(contacts) {
        inserted += sqlx::query(SEED_CONTACTS)
            .bind(ws.as_str())
            .bind(from)
            .bind(&board_ids)
            .bind(to)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        seed_progress(ws, inserted, contacts);
    }
    tx.commit().await?;
    // On a connection without the pool's statement timeout: beside other seeds, a large
    // table's vacuum takes longer than any read may.
    let mut conn = db.acquire().await?.detach();
    sqlx::query("SET statement_timeout = 0")
        .execute(&mut conn)
        .await?;
    let vacuumed = sqlx::query("VACUUM (ANALYZE) contacts")
        .execute(&mut conn)
        .await;
    let _ = conn.close().await;
    vacuumed?;
    Ok(Seeded {
        boards: board_ids,
        contacts: inserted,
    })
}

pub async fn is_empty(db: &PgPool) -> Result<bool> {
    let any: Option<i32> = sqlx::query_scalar("SELECT 1 FROM workspaces LIMIT 1")
        .fetch_optional(db)
        .await?;
    Ok(any.is_none())
}

const SEED_CONTACTS: &str = r#"
WITH cols AS (
    SELECT board_id, id AS column_id,
           row_number() OVER (ORDER BY board_id, position) - 1 AS n,
           count(*) OVER () AS k
    FROM board_columns WHERE board_id = ANY($3)
),
g AS (
    SELECT i, random() AS r1, random() AS r2, random() AS r3, random() AS r4, random() AS r5,
           now() - random() * interval '730 days' AS created
    FROM generate_series($2, $4) AS i
),
people AS (
    SELECT g.*,
        (ARRAY['Ada','Grace','Alan','Linus','Margaret','Ken','Barbara','Dennis','Frances','Edsger',
               'Radia','Tim','Hedy','Donald','Katherine','Guido','Sophie','John','Mary','Niklaus'])[1 + i % 20] AS first,
        (ARRAY['Lovelace','Hopper','Turing','Torvalds','Hamilton','Thompson','Liskov','Ritchie','Allen',
               'Dijkstra','Perlman','Berners-Lee','Lamarr','Knuth','Johnson','Rossum','Wilson','Backus',
               'Keller','Wirth','Shaw','Kay','Moore','Cerf'])[1 + (i / 20) % 24] AS last,
        (ARRAY['Acme','Globex','Initech','Umbrella','Hooli','Vandelay','Stark','Wayne','Tyrell',
               'Cyberdyne','Soylent','Aperture'])[1 + (i * 7) % 12] AS company
    FROM g
)
INSERT INTO contacts (workspace_id, board_id, column_id, name, email, phone, company, status, priority,
    assigned_to, needs_response, follow_up, favorite, archived, sentiment, created_at, updated_at,
    last_activity_at, custom_attributes)
SELECT $1, c.board_id, c.column_id,
    p.first || ' ' || p.last,
    lower(p.first || '.' || replace(p.last, '-', '') || p.i) || '@' || lower(p.company) || '.example',
    '+1-555-' || lpad((p.i % 10000)::text, 4, '0'),
    p.company,
    CASE WHEN p.r1 < 0.62 THEN 'open' ELSE 'closed' END,
    CASE WHEN p.r2 < 0.15 THEN 'high' WHEN p.r2 < 0.65 THEN 'medium' ELSE 'low' END,
    CASE WHEN p.r3 < 0.28 THEN NULL ELSE 'user_' || (1 + (p.r3 * 1000)::int % 25) END,
    p.r4 < 0.14,
    p.r5 < 0.11,
    (p.i % 23) = 0,
    p.r1 > 0.93,
    CASE WHEN p.r4 > 0.9 THEN 'negative' WHEN p.r4 > 0.5 THEN 'positive' ELSE 'neutral' END,
    p.created,
    p.created + (now() - p.created) * p.r5,
    p.created + (now() - p.created) * sqrt(p.r5),
    jsonb_build_object('plan', (ARRAY['free','team','business','enterprise'])[1 + p.i % 4],
                       'seats', 1 + (p.r2 * 200)::int,
                       'source', (ARRAY['web','referral','event','ads','partner'])[1 + (p.i / 3) % 5])
FROM people p JOIN cols c ON c.n = p.i % c.k
"#;

/// Starts `conversations` conversations with the workspace's newest contacts and spreads
/// `messages` over them, a month of history: the first conversation holds half of them
/// (a long thread), the others share the rest.
pub async fn seed_messages(
    db: &PgPool,
    ws: &WorkspaceId,
    conversations: u32,
    messages: u64,
) -> Result<SeededHistory> {
    let mut tx = db.begin().await?;
    sqlx::query("SELECT set_config('edgecache.skip_notify', 'on', true), set_config('statement_timeout', '0', true)")
        .execute(&mut *tx)
        .await?;
    let ids: Vec<i64> = sqlx::query_scalar(SEED_CONVERSATIONS)
        .bind(ws.as_str())
        .bind(i64::from(conversations))
        .fetch_all(&mut *tx)
        .await?;
    let mut inserted = 0;
    if !ids.is_empty() {
        for (from, to) in history_chunks(messages) {
            inserted += sqlx::query(SEED_MESSAGES)
                .bind(ws.as_str())
                .bind(from)
                .bind(to)
                .bind(messages as i64)
                .bind(&ids)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            history_progress(ws, inserted, messages);
        }
        sqlx::query(
            "UPDATE conversations c SET last_message_at = coalesce((SELECT created_at FROM messages m \
             WHERE m.conversation_id = c.id ORDER BY id DESC LIMIT 1), c.created_at) WHERE c.id = ANY($1)",
        )
        .bind(&ids)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    sqlx::query("VACUUM (ANALYZE) messages").execute(db).await?;
    Ok(SeededHistory {
        conversations: ids,
        messages: inserted,
    })
}

const SEED_CONVERSATIONS: &str = "
INSERT INTO conversations (workspace_id, contact_id, status, created_at, last_message_at)
SELECT $1, id, CASE WHEN n % 4 = 0 THEN 'resolved' ELSE 'open' END,
       now() - interval '30 days', now() - interval '30 days'
FROM (SELECT id, row_number() OVER (ORDER BY id DESC) AS n
      FROM contacts WHERE workspace_id = $1 ORDER BY id DESC LIMIT $2) c
ORDER BY n
RETURNING id";

const SEED_MESSAGES: &str = "
INSERT INTO messages (workspace_id, conversation_id, sender_type, sender_id, body, created_at)
SELECT $1,
    CASE WHEN k = 1 OR i <= $4 / 2 THEN $5[1] ELSE $5[2 + i % (k - 1)] END,
    CASE WHEN i % 10 = 0 THEN 'bot' WHEN i % 2 = 0 THEN 'agent' ELSE 'contact' END,
    CASE WHEN i % 10 <> 0 AND i % 2 = 0 THEN 'user_' || (1 + i % 25) END,
    (ARRAY['Hi, is anyone there?','Thanks for reaching out!','Could you send the invoice again?',
           'Sure, one moment please.','The export still fails on my side.','We shipped a fix, can you retry?',
           'Works now, thank you!','Can we move the call to Thursday?','Here is the screenshot.',
           'I have forwarded this to billing.','Any update on this?','Closing this for now.'])[1 + i % 12]
        || ' #' || i,
    now() - interval '30 days' + (i::float8 / greatest($4, 1)) * (interval '30 days' - interval '1 minute')
FROM generate_series($2::bigint, $3::bigint) AS i, (SELECT cardinality($5::bigint[]) AS k) s
ORDER BY i";
