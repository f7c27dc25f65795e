//! The sweep of `contact_search_words`, where a search looks up the words one typo away.
//! Contact writes only add to it (a trigger, `ON CONFLICT DO NOTHING`, so writers never
//! lock a word's row); renamed and deleted contacts leave words behind, which would make
//! every typo lookup of their workspace longer. Each call takes the next words in key
//! order and drops those no contact of the workspace holds, found through the board's
//! whole-word key (`contacts_search_keys_idx`), so a call costs one index probe a word.
//!
//! A contact written while its word is dropped could be missed: its trigger saw the word
//! before the delete, and the delete's snapshot does not see the contact. The dropped
//! words a contact holds are put back by a second statement of the same transaction,
//! whose snapshot is newer; what remains is a writer that commits after that statement,
//! whose word then lacks only its typo lookups until the next write that carries it.

use sqlx::PgPool;

use crate::error::Result;

/// Whether a contact of workspace `ws` holds `word` (SQL expressions): a probe of its
/// boards' whole-word keys. A scalar subquery, so the planner probes the index per word
/// instead of joining every contact against the batch.
fn held(ws: &str, word: &str) -> String {
    format!(
        "(SELECT 1 FROM boards bo JOIN contacts c \
         ON contact_search_keys(c.board_id, c.search_doc) @> ARRAY[bo.id || '=' || {word}] \
         WHERE bo.workspace_id = {ws} LIMIT 1)"
    )
}

pub async fn prune(
    db: &PgPool,
    after: Option<(String, String)>,
    batch: i64,
) -> Result<(u64, Option<(String, String)>)> {
    let (ws, word) = after.unwrap_or_default();
    let mut tx = db.begin().await?;
    // The dropped words, then the batch's last word with the batch's size.
    let swept: Vec<(bool, String, String, i64)> = sqlx::query_as(&format!(
        "WITH batch AS ( \
             SELECT workspace_id, word FROM contact_search_words \
             WHERE (workspace_id, word) > ($1, $2) ORDER BY workspace_id, word LIMIT $3), \
         gone AS ( \
             DELETE FROM contact_search_words w USING batch b \
             WHERE w.workspace_id = b.workspace_id AND w.word = b.word AND {} IS NULL \
             RETURNING w.workspace_id, w.word) \
         SELECT true, workspace_id, word, 0::bigint FROM gone \
         UNION ALL \
         (SELECT false, workspace_id, word, count(*) OVER () FROM batch \
          ORDER BY workspace_id DESC, word DESC LIMIT 1)",
        held("w.workspace_id", "w.word")
    ))
    .bind(&ws)
    .bind(&word)
    .bind(batch)
    .fetch_all(&mut *tx)
    .await?;
    let (gone, last): (Vec<_>, Vec<_>) = swept.into_iter().partition(|(gone, ..)| *gone);
    let (spaces, words): (Vec<String>, Vec<String>) =
        gone.into_iter().map(|(_, ws, word, _)| (ws, word)).unzip();
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
    tx.commit().await?;
    let dropped = (words.len() as u64).saturating_sub(back.rows_affected());
    // A batch shorter than asked reached the end: the next sweep starts over.
    let next = last
        .into_iter()
        .find(|(.., size)| *size >= batch)
        .map(|(_, ws, word, _)| (ws, word));
    Ok((dropped, next))
}
