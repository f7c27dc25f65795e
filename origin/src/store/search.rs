//! A contact search as SQL in either store: `shared::search` says what matches; the
//! migrations `contact_search` say why each store indexes it as it does.

use shared::query::ContactListQuery;
use shared::search::{pieces, within_edits, words, Word};
use shared::WorkspaceId;
use sqlx::{Database, Encode, QueryBuilder, Type};

use super::filters::Dialect;

/// The most words a typo may stand for in a search's statement.
const MAX_NEAR_WORDS: usize = 16;
/// The most vocabulary words read for one word's typos (most share a piece and no more).
const MAX_VOCABULARY_READ: usize = 2_000;

/// A search's words, and the indexed words each text word's forgiven typos may have
/// meant (`find_near_words!` looks them up).
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

    /// Statements listing the indexed words that each text word's typos may have meant,
    /// by word: words of letters only, within the edit budget's length, sharing a piece
    /// of the word that survives the edits (`pieces`); `add_near` keeps those in budget.
    /// One short statement per such word, against a vocabulary, never the rows.
    pub fn vocabulary_queries<'a, DB>(
        &self,
        ws: &'a WorkspaceId,
        d: Dialect,
    ) -> Vec<(usize, QueryBuilder<'a, DB>)>
    where
        DB: Database,
        String: Encode<'a, DB> + Type<DB>,
        &'a str: Encode<'a, DB> + Type<DB>,
        i64: Encode<'a, DB> + Type<DB>,
    {
        let mut out = Vec::new();
        for (i, word) in self.words.iter().enumerate() {
            let Word::Text { text, typos } = word else {
                continue;
            };
            if *typos == 0 {
                continue;
            }
            let (len, k) = (text.chars().count() as i64, i64::from(*typos));
            let mut qb = match d {
                Dialect::Postgres => {
                    let mut qb = QueryBuilder::new(
                        "SELECT word FROM contact_search_words WHERE workspace_id = ",
                    );
                    qb.push_bind(ws.as_str()).push(" AND length(word) BETWEEN ");
                    qb
                }
                // The embedded store's vocabulary is every workspace's; a word of another
                // workspace finds no row of this one.
                Dialect::Sqlite => QueryBuilder::new(
                    "SELECT term FROM contacts_search_words WHERE length(term) BETWEEN ",
                ),
            };
            let column = if d == Dialect::Postgres {
                "word"
            } else {
                "term"
            };
            qb.push_bind(len - k)
                .push(" AND ")
                .push_bind(len + k)
                .push(" AND (");
            for (n, piece) in pieces(text, *typos).into_iter().enumerate() {
                let pattern = if n == 0 {
                    format!("{piece}%")
                } else {
                    qb.push(" OR ");
                    format!("%{piece}%")
                };
                qb.push(format_args!("{column} LIKE ")).push_bind(pattern);
            }
            qb.push(format_args!(") LIMIT {MAX_VOCABULARY_READ}"));
            out.push((i, qb));
        }
        out
    }

    /// Keeps, of the `words` the `i`th word's vocabulary statement listed, those a
    /// forgiven typo away from it.
    pub fn add_near(&mut self, i: usize, words: Vec<String>) {
        let (Some(Word::Text { text, typos }), Some(near)) =
            (self.words.get(i), self.near.get_mut(i))
        else {
            return;
        };
        near.extend(
            words
                .into_iter()
                .filter(|w| w != text && w.chars().all(char::is_alphabetic))
                .filter(|w| within_edits(w, text, *typos))
                .take(MAX_NEAR_WORDS),
        );
    }
}

/// Fills a search's typo candidates from a store's vocabulary (`Search::vocabulary_queries`).
macro_rules! find_near_words {
    ($search:expr, $ws:expr, $db:ty, $dialect:expr, $executor:expr) => {{
        if let Some(search) = $search.as_mut() {
            for (i, mut qb) in search.vocabulary_queries::<$db>($ws, $dialect) {
                let words: Vec<String> = qb.build_query_scalar().fetch_all($executor).await?;
                search.add_near(i, words);
            }
        }
    }};
}
pub(crate) use find_near_words;

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

/// A rank of `sort_by=relevance`: the contacts it holds.
pub struct Tier<'s> {
    search: Option<&'s Search>,
    /// Every word matches at least this closely…
    level: Level,
    /// …and not every word this closely (the ranks above).
    not: Option<Level>,
}

impl Tier<'_> {
    /// Appends ` AND` the tier's condition.
    pub fn push<'a, DB>(&self, qb: &mut QueryBuilder<'a, DB>, d: Dialect)
    where
        DB: Database,
        String: Encode<'a, DB> + Type<DB>,
    {
        let Some(s) = self.search else {
            return;
        };
        if s.words.is_empty() {
            qb.push(" AND 1 = 0");
            return;
        }
        for (word, near) in s.words.iter().zip(&s.near) {
            qb.push(" AND ");
            push_word(qb, word, near, d, self.level);
        }
        if let Some(not) = self.not {
            qb.push(" AND NOT (");
            for (i, word) in s.words.iter().enumerate() {
                if i > 0 {
                    qb.push(" AND ");
                }
                push_word(qb, word, &[], d, not);
            }
            qb.push(")");
        }
    }
}

/// The ranks of `sort_by=relevance`, best first: 0 every word is a whole word of the
/// contact (a number: its whole phone), 1 every word at least starts one (a number: is in
/// its phone), 2 a typo forgiven (only where some word has a typo's candidates). Without a
/// search every contact ranks 0.
pub fn tiers(search: Option<&Search>) -> Vec<(u8, Tier<'_>)> {
    let Some(s) = search else {
        return vec![(
            0,
            Tier {
                search,
                level: Level::Match,
                not: None,
            },
        )];
    };
    let tier = |level, not| Tier {
        search: Some(s),
        level,
        not,
    };
    let mut out = vec![
        (0, tier(Level::Whole, None)),
        (1, tier(Level::Prefix, Some(Level::Whole))),
    ];
    if s.near.iter().any(|n| !n.is_empty()) {
        out.push((2, tier(Level::Match, Some(Level::Prefix))));
    }
    out
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
        (Dialect::Postgres, Word::Text { text, .. }) => {
            let end = if level == Level::Whole { " " } else { "" };
            qb.push("(search_doc LIKE ")
                .push_bind(format!("% {text}{end}%"));
            if level == Level::Match {
                for other in near {
                    qb.push(" OR search_doc LIKE ")
                        .push_bind(format!("% {other} %"));
                }
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
