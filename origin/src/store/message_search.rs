//! Message search as SQL in either store (`shared::message_search` says what matches; the
//! migrations `message_search` say how each store indexes it).

use shared::cursor::CursorKey;
use shared::message_search::{
    snippet, HitContact, MessageHit, MessageSearch, MessageSearchPage, SearchSort, Term,
    RELEVANCE_WINDOW,
};
use shared::messages::{CursorPagination, Message};
use shared::WorkspaceId;
use sqlx::{Database, Encode, FromRow, QueryBuilder, Type};

use super::filters::Dialect;
use super::messages::{MessageRow, MESSAGE_COLUMNS};
use super::page_end;

#[derive(FromRow)]
pub struct HitRow {
    #[sqlx(flatten)]
    message: MessageRow,
    contact_id: i64,
    contact_name: String,
}

/// The statement of a search's page: its hits newest first, or by relevance among the
/// newest `RELEVANCE_WINDOW`; one hit more than the page, to tell whether more follow.
/// The hits are chosen from the messages alone and only then joined to their
/// conversation and contact: joined first, the planner gathered every match of each
/// conversation and sorted them, where a common word's newest hits are a short walk back
/// along `(workspace_id, id)`.
pub fn search_query<'a, DB>(
    ws: &'a WorkspaceId,
    q: &MessageSearch,
    d: Dialect,
) -> QueryBuilder<'a, DB>
where
    DB: Database,
    String: Encode<'a, DB> + Type<DB>,
    &'a str: Encode<'a, DB> + Type<DB>,
    i64: Encode<'a, DB> + Type<DB>,
{
    let columns: Vec<String> = MESSAGE_COLUMNS
        .split(',')
        .map(|c| format!("m.{}", c.trim()))
        .collect();
    let relevance = q.sort == SearchSort::Relevance;
    let mut qb = QueryBuilder::new("SELECT h.*, c.contact_id, ct.name AS contact_name FROM (");
    if relevance {
        qb.push("SELECT * FROM (");
    }
    qb.push(format_args!("SELECT {}", columns.join(", ")));
    // Postgres names the query twice, for its rank and its match: built once.
    let words = tsquery(&q.terms);
    match d {
        Dialect::Postgres => {
            qb.push(", ts_rank(m.search_doc, to_tsquery('simple', ")
                .push_bind(words.clone())
                .push(")) AS search_rank FROM messages m");
        }
        // FTS5's rank is bm25, lower is better.
        Dialect::Sqlite => {
            qb.push(
                ", -messages_search.rank AS search_rank FROM messages_search \
                 JOIN messages m ON m.id = messages_search.rowid",
            );
        }
    }
    qb.push(" WHERE m.workspace_id = ").push_bind(ws.as_str());
    match d {
        Dialect::Postgres => {
            qb.push(" AND m.search_doc @@ to_tsquery('simple', ")
                .push_bind(words)
                .push(")");
        }
        Dialect::Sqlite => {
            qb.push(" AND messages_search MATCH ")
                .push_bind(fts5_query(&q.terms));
        }
    }
    if let Some(c) = q.conversation {
        qb.push(" AND m.conversation_id = ").push_bind(c);
    }
    if let Some(contact) = q.contact {
        qb.push(" AND m.conversation_id IN (SELECT id FROM conversations WHERE workspace_id = ")
            .push_bind(ws.as_str())
            .push(" AND contact_id = ")
            .push_bind(contact)
            .push(")");
    }
    if let Some(before) = q.before_id() {
        qb.push(" AND m.id < ").push_bind(before);
    }
    qb.push(" ORDER BY m.id DESC LIMIT ");
    if relevance {
        qb.push_bind(i64::from(RELEVANCE_WINDOW))
            .push(") AS recent ORDER BY search_rank DESC, id DESC LIMIT ")
            .push_bind(i64::from(q.limit) + 1)
            .push(" OFFSET ")
            .push_bind(i64::from(q.skipped()));
    } else {
        qb.push_bind(i64::from(q.limit) + 1);
    }
    qb.push(") AS h JOIN conversations c ON c.id = h.conversation_id AND c.workspace_id = ")
        .push_bind(ws.as_str())
        .push(" JOIN contacts ct ON ct.id = c.contact_id AND ct.workspace_id = c.workspace_id");
    if relevance {
        qb.push(" ORDER BY h.search_rank DESC, h.id DESC");
    } else {
        qb.push(" ORDER BY h.id DESC");
    }
    qb
}

/// The terms as a tsquery: `word:*` for a word as typed, `a <-> b` for a phrase. Terms
/// hold letters and digits only, folded already (`message_search::terms`), so nothing in
/// them is syntax; folding them again in SQL would not be safe (`unaccent` turns some
/// letters into quotes and colons).
fn tsquery(terms: &[Term]) -> String {
    terms
        .iter()
        .map(|t| match t {
            Term::Word(w) => format!("{w}:*"),
            Term::Phrase(words) => format!("({})", words.join(" <-> ")),
        })
        .collect::<Vec<_>>()
        .join(" & ")
}

/// The terms as an FTS5 query: `"word"*` and `"a b"` (a phrase), all of them.
fn fts5_query(terms: &[Term]) -> String {
    terms
        .iter()
        .map(|t| match t {
            Term::Word(w) => format!("\"{w}\"*"),
            Term::Phrase(words) => format!("\"{}\"", words.join(" ")),
        })
        .collect::<Vec<_>>()
        .join(" AND ")
}

/// The page of `rows` (as `search_query` fetched them), with snippets and the next cursor.
pub fn search_page_of(
    mut rows: Vec<HitRow>,
    ws: &WorkspaceId,
    q: &MessageSearch,
    key: &CursorKey,
) -> MessageSearchPage {
    let next_cursor =
        page_end(&mut rows, q.limit).and_then(|last| q.next_cursor(key, ws, last.message.id()));
    let hits = rows
        .into_iter()
        .map(|r| {
            let message = Message::from(r.message);
            MessageHit {
                snippet: snippet(message.body.as_deref().unwrap_or_default(), &q.terms),
                conversation_id: message.conversation_id,
                created_at: message.created_at.clone(),
                contact: HitContact {
                    id: r.contact_id,
                    name: r.contact_name,
                },
                message,
            }
        })
        .collect();
    MessageSearchPage {
        hits,
        pagination: CursorPagination::new(q.limit, next_cursor),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terms_become_each_engines_syntax() {
        let terms = [
            Term::Word("refund".into()),
            Term::Phrase(vec!["order".into(), "number".into()]),
        ];
        assert_eq!(tsquery(&terms), "refund:* & (order <-> number)");
        assert_eq!(fts5_query(&terms), "\"refund\"* AND \"order number\"");
    }
}
