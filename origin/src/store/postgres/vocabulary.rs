//! The sweep of `contact_search_words`, where a search looks up the words one typo away.
//! Contact writes only add to it (a trigger, `ON CONFLICT DO NOTHING`, so writers never
//! lock a word's row); renamed and deleted contacts leave words behind, which would make
//! every typo lookup of their workspace longer. Each call takes the next words in key
//! order from where the last one stopped (`contact_search_words_sweep`, one row that the
//! sweeping instance holds locked, so instances take turns and a restart resumes) and
//! drops those no contact of the workspace holds: one probe a word of the whole-word keys
//! of the workspace's boards (`contacts_search_lean_keys_idx`).
//!
//! A contact written while its word is dropped could be missed: its trigger saw the word
//! before the delete, and the delete's snapshot does not see the contact. The dropped
//! words a contact holds are put back by a second statement of the same transaction,
//! whose snapshot is newer; what remains is a transaction still open after that
//! statement that brings back a word no contact held: until the next write that carries
//! it, that word has no typo lookups (exact and prefix matches do not use this table).

use sqlx::PgPool;

use crate::error::Result;

/// Whether a contact of workspace `ws` holds `word` (SQL expressions): one scan of the
/// keys index for the word's key on any of the workspace's boards. A scalar subquery,
/// so the planner probes the index per word instead of joining every contact against
/// the batch.
fn held(ws: &str, word: &str) -> String {
    format!(
        "(SELECT 1 FROM contacts c WHERE contact_search_keys_lean(c.board_id, c.search_doc) && \
         ARRAY(SELECT bo.id || '=' || {word} FROM boards bo WHERE bo.workspace_id = {ws}) \
         LIMIT 1)"
    )
}

/// Sweeps the next `batch` words; how many went. Another instance sweeping, it does
/// nothing.
pub async fn prune(db: &PgPool, batch: i64) -> Result<u64> {
    let mut tx = db.begin().await?;
    let Some((ws, word)): Option<(String, String)> = sqlx::query_as(
        "SELECT workspace_id, word FROM contact_search_words_sweep FOR UPDATE SKIP LOCKED",
    )
    .fetch_optional(&mut *tx)
    .await?
    else {
        return Ok(0);
    };
    // The planner expects a key in thousands of contacts, so `LIMIT 1` would have it
    // walk an index or the table testing each row's keys, for a word nobody holds: every
    // row. Only the keys index's own scan is left to it (2 ms a word at 1M contacts).
    for off in ["enable_seqscan", "enable_indexscan", "enable_indexonlyscan"] {
        sqlx::query(&format!("SET LOCAL {off} = off"))
            .execute(&mut *tx)
            .await?;
    }
    // The batch, each word with whether no contact holds it, read without a lock: the
    // probes of held words take the time, and no writer waits on them.
    let swept: Vec<(String, String, bool)> = sqlx::query_as(&format!(
        "SELECT workspace_id, word, {} IS NULL FROM contact_search_words \
         WHERE (workspace_id, word) > ($1, $2) ORDER BY workspace_id, word LIMIT $3",
        held("workspace_id", "word")
    ))
    .bind(&ws)
    .bind(&word)
    .bind(batch)
    .fetch_all(&mut *tx)
    .await?;
    let unheld =
        |(ws, word, unheld): &(String, String, bool)| unheld.then(|| (ws.clone(), word.clone()));
    let (spaces, words): (Vec<String>, Vec<String>) = swept.iter().filter_map(unheld).unzip();
    // Those still unheld go; a writer adding one of them waits from here to the commit.
    let gone: Vec<(String, String)> = sqlx::query_as(&format!(
        "DELETE FROM contact_search_words w \
         USING unnest($1::text[], $2::text[]) AS g(ws, word) \
         WHERE w.workspace_id = g.ws AND w.word = g.word AND {} IS NULL \
         RETURNING w.workspace_id, w.word",
        held("w.workspace_id", "w.word")
    ))
    .bind(&spaces)
    .bind(&words)
    .fetch_all(&mut *tx)
    .await?;
    let (spaces, words): (Vec<String>, Vec<String>) = gone.into_iter().unzip();
    let back = sqlx::query(&format!(
        "INSERT INTO contact_search_words (workspace_id, word) \
         SELECT g.ws, g.word FROM unnest($1::text[], $2::text[]) AS g(ws, word) \
         WHERE {} IS NOT NULL ON CONFLICT DO NOTHING",
        held("g.ws", "g.word")
    ))
    .bind(&spaces)
    .bind(&words)
    .execute(&mut *tx)
    .await?;
    // A batch shorter than asked reached the end: the next sweep starts over.
    let (ws, word, _) = swept
        .last()
        .filter(|_| swept.len() as i64 >= batch)
        .cloned()
        .unwrap_or_default();
    sqlx::query("UPDATE contact_search_words_sweep SET workspace_id = $1, word = $2")
        .bind(ws)
        .bind(word)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok((words.len() as u64).saturating_sub(back.rows_affected()))
}
