//! A contact search as SQL in either store: `shared::search` says what matches; the
//! migrations `contact_search` say why each store indexes it as it does.

use shared::query::ContactListQuery;
use shared::search::{pieces, within_edits, words, Word};
use sqlx::{Database, Encode, QueryBuilder, SqlitePool, Type};

use super::filters::Dialect;
use crate::error::Result;

/// The most words a typo may stand for in the embedded store's statement.
const MAX_NEAR_WORDS: usize = 16;

/// A search's words, and for the embedded store the indexed words each text word's
/// forgiven typos may have meant (Postgres finds those in the statement itself).
#[derive(Debug, Default)]
pub struct Search {
    words: Vec<Word>,
    near: Vec<Vec<String>>,
}

impl Search {
    pub fn of(q: &ContactListQuery) -> Option<Self> {
        let words = words(q.search.as_deref()?);
        Some(Self {
            near: vec![Vec::new(); words.len()],
            words,
        })
    }

    /// Looks up, in the embedded store's vocabulary, the words each text word's typos
    /// may have meant: the vocabulary is read once per search, not per row.
    pub async fn with_near_words(mut self, db: &SqlitePool) -> Result<Self> {
        for (word, near) in self.words.iter().zip(self.near.iter_mut()) {
            let Word::Text { text, typos } = word else {
                continue;
            };
            if *typos == 0 {
                continue;
            }
            let len = text.chars().count();
            let mut qb = QueryBuilder::<sqlx::Sqlite>::new(
                "SELECT term FROM contacts_search_words WHERE length(term) BETWEEN ",
            );
            qb.push_bind(len.saturating_sub(usize::from(*typos)) as i64)
                .push(" AND ")
                .push_bind((len + usize::from(*typos)) as i64)
                .push(" AND (");
            for (i, piece) in pieces(text, *typos).into_iter().enumerate() {
                if i > 0 {
                    qb.push(" OR ");
                }
                qb.push("instr(term, ").push_bind(piece).push(") > 0");
            }
            qb.push(")");
            let terms: Vec<String> = qb.build_query_scalar().fetch_all(db).await?;
            near.extend(
                terms
                    .into_iter()
                    .filter(|t| t != text && within_edits(t, text, *typos))
                    .take(MAX_NEAR_WORDS),
            );
        }
        Ok(self)
    }
}

/// How closely a word must match: as a whole word, as the start of one, or (a search's
/// own condition) the start of one or a forgiven typo away.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Level {
    Whole,
    Prefix,
    Match,
}

/// Appends ` AND` a condition per word: each must match the contact. A search of no
/// words (punctuation alone) matches nothing.
pub fn push_matches<'a, DB>(qb: &mut QueryBuilder<'a, DB>, s: &Search, d: Dialect)
where
    DB: Database,
    String: Encode<'a, DB> + Type<DB>,
{
    if s.words.is_empty() {
        qb.push(" AND 1 = 0");
    }
    for (word, near) in s.words.iter().zip(&s.near) {
        qb.push(" AND ");
        push_word(qb, word, near, d, Level::Match);
    }
}

/// Appends the contact's rank for `sort_by=relevance`: 0 when every word is a whole word
/// of it (a number: its whole phone), 1 when every word at least starts one (a number:
/// is in its phone), else 2 (a typo forgiven). Without a search every contact ranks 0.
pub fn push_rank<'a, DB>(qb: &mut QueryBuilder<'a, DB>, s: Option<&Search>, d: Dialect)
where
    DB: Database,
    String: Encode<'a, DB> + Type<DB>,
{
    let Some(s) = s.filter(|s| !s.words.is_empty()) else {
        qb.push("0");
        return;
    };
    qb.push("(CASE WHEN ");
    for (then, level) in [(0, Level::Whole), (1, Level::Prefix)] {
        if then > 0 {
            qb.push(" WHEN ");
        }
        for (i, word) in s.words.iter().enumerate() {
            if i > 0 {
                qb.push(" AND ");
            }
            push_word(qb, word, &[], d, level);
        }
        qb.push(format_args!(" THEN {then}"));
    }
    qb.push(" ELSE 2 END)");
}

fn push_word<'a, DB>(
    qb: &mut QueryBuilder<'a, DB>,
    word: &Word,
    near: &[String],
    d: Dialect,
    level: Level,
) where
    DB: Database,
    String: Encode<'a, DB> + Type<DB>,
{
    match (d, word) {
        (Dialect::Postgres, Word::Digits(digits)) => {
            let pattern = if level == Level::Whole {
                format!("% {digits} %")
            } else {
                format!("%{digits}%")
            };
            qb.push("search_doc LIKE ").push_bind(pattern);
        }
        (Dialect::Postgres, Word::Text { text, typos }) => {
            let end = if level == Level::Whole { " " } else { "" };
            qb.push("(search_doc LIKE ")
                .push_bind(format!("% {text}{end}%"));
            if level == Level::Match && *typos > 0 {
                // Some piece of the word survives any `typos` edits unchanged (the trigram
                // index finds those rows); the edit distance then decides.
                qb.push(" OR ((");
                for (i, piece) in pieces(text, *typos).into_iter().enumerate() {
                    let pattern = if i == 0 {
                        format!("% {piece}%")
                    } else {
                        qb.push(" OR ");
                        format!("%{piece}%")
                    };
                    qb.push("search_doc LIKE ").push_bind(pattern);
                }
                qb.push(") AND contact_search_near(search_doc, ")
                    .push_bind(text.clone())
                    .push(format_args!(", {typos}))"));
            }
            qb.push(")");
        }
        (Dialect::Sqlite, Word::Digits(digits)) => {
            let star = if level == Level::Whole { "" } else { "*" };
            qb.push("(id IN (SELECT rowid FROM contacts_search WHERE contacts_search MATCH ")
                .push_bind(format!("\"{digits}\"{star}"))
                .push(")");
            // The trigram index needs three characters to look anything up.
            if level != Level::Whole && digits.len() >= 3 {
                qb.push(
                    " OR id IN (SELECT rowid FROM contacts_search_phone \
                     WHERE contacts_search_phone MATCH ",
                )
                .push_bind(format!("\"{digits}\""))
                .push(")");
            }
            qb.push(")");
        }
        (Dialect::Sqlite, Word::Text { text, .. }) => {
            let mut any = match level {
                Level::Whole => format!("\"{text}\""),
                _ => format!("\"{text}\"*"),
            };
            for other in near {
                any.push_str(&format!(" OR \"{other}\""));
            }
            qb.push("id IN (SELECT rowid FROM contacts_search WHERE contacts_search MATCH ")
                .push_bind(any)
                .push(")");
        }
    }
}
