//! A contact search as SQL in either store: `shared::search` says what matches; the
//! migrations `contact_search` say why each store indexes it as it does.

use shared::query::ContactListQuery;
use shared::search::{pieces, within_edits, words, Word};
use shared::{BoardId, WorkspaceId};
use sqlx::{Database, Encode, QueryBuilder, Type};

use super::filters::Dialect;

/// The most words a typo may stand for in a search's statement.
const MAX_NEAR_WORDS: usize = 16;
/// The most vocabulary words read for one word's typos (most share a piece and no more).
const MAX_VOCABULARY_READ: usize = 2_000;

/// The longest prefix of a word with a search key of its own, the shortest and longest
/// run of digits, and the longest whole word (the migrations `contact_search_keys`,
/// `contact_search_keys_lean`).
const KEY_PREFIX: usize = 8;
const KEY_DIGITS: (usize, usize) = (3, 4);
const KEY_WHOLE: usize = 64;

/// A search's words, and the indexed words each text word's forgiven typos may have
/// meant (`find_near_words!` looks them up).
#[derive(Debug, Default)]
pub struct Search {
    words: Vec<Word>,
    near: Vec<Vec<String>>,
    /// How Postgres finds the matches.
    pub found: Found,
}

/// How a search's statement reaches its rows in Postgres. Gathering the matches through
/// the board's search keys costs in proportion to how many there are; walking the
/// board's sort index and testing each row costs in proportion to how few (a page of a
/// name every twentieth contact has is found in a thousand rows, of a rare one only at
/// the board's end). `searched_rows` counts the matches up to the total's cap, through
/// their keys unless the planner expects them in many contacts, and then knows which.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub enum Found {
    #[default]
    Keys,
    /// Testing the rows in the sort's order, with no keys to tempt the planner away.
    Walk,
    /// Among these contacts (the matches `Keys` found), the words tested again: a contact
    /// renamed since no longer matches.
    Among(Vec<i64>),
}

impl Search {
    pub fn of(q: &ContactListQuery) -> Option<Self> {
        let words = words(q.search.as_deref()?);
        Some(Self {
            near: vec![Vec::new(); words.len()],
            words,
            found: Found::Keys,
        })
    }

    /// Postgres: a statement whose plan estimates how many contacts of `board` hold the
    /// search's keys; `None` for a search with none (only short numbers).
    pub fn keys_estimate_query<'a, DB>(&self, board: BoardId) -> Option<QueryBuilder<'a, DB>>
    where
        DB: Database,
        String: Encode<'a, DB> + Type<DB>,
    {
        let mut qb = QueryBuilder::new("EXPLAIN (FORMAT JSON) SELECT 1 FROM contacts WHERE true");
        push_keys(&mut qb, self, board, Level::Match).then_some(qb)
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
pub fn push_matches<'a, DB>(qb: &mut QueryBuilder<'a, DB>, s: &Search, board: BoardId, d: Dialect)
where
    DB: Database,
    String: Encode<'a, DB> + Type<DB>,
{
    if s.words.is_empty() {
        qb.push(" AND 1 = 0");
    }
    if d == Dialect::Postgres {
        push_found(qb, s, board, Level::Match);
    }
    for (word, near) in s.words.iter().zip(&s.near) {
        qb.push(" AND ");
        push_word(qb, word, near, d, Level::Match);
    }
}

/// Appends ` AND` how Postgres is to reach the rows matching at `level` (`Found`).
fn push_found<'a, DB>(qb: &mut QueryBuilder<'a, DB>, s: &Search, board: BoardId, level: Level)
where
    DB: Database,
    String: Encode<'a, DB> + Type<DB>,
{
    match &s.found {
        Found::Keys => {
            push_keys(qb, s, board, level);
        }
        Found::Walk => {}
        Found::Among(ids) if ids.is_empty() => {
            qb.push(" AND 1 = 0");
        }
        Found::Among(ids) => {
            let ids: Vec<String> = ids.iter().map(i64::to_string).collect();
            qb.push(format_args!(" AND id IN ({})", ids.join(", ")));
        }
    }
}

/// Appends ` AND` the search keys (`contacts_search_lean_keys_idx`) that every contact whose
/// words match at `level` has: the words' tests alone say what matches, and these let
/// the index offer only rows of the board that hold each word, or one of its typos.
fn push_keys<'a, DB>(
    qb: &mut QueryBuilder<'a, DB>,
    s: &Search,
    board: BoardId,
    level: Level,
) -> bool
where
    DB: Database,
    String: Encode<'a, DB> + Type<DB>,
{
    let board = board.0;
    let mut all = Vec::new();
    let mut any = Vec::new();
    for (word, near) in s.words.iter().zip(&s.near) {
        let mut keys = Vec::new();
        match (word, level) {
            (Word::Text { text, .. } | Word::Digits(text), Level::Whole) => {
                if text.chars().count() <= KEY_WHOLE {
                    keys.push(format!("{board}={text}"));
                }
            }
            (Word::Text { text, .. }, _) => {
                let start: String = text.chars().take(KEY_PREFIX).collect();
                keys.push(format!("{board}:{start}"));
                if level == Level::Match {
                    keys.extend(near.iter().map(|w| format!("{board}={w}")));
                }
            }
            // Digits match anywhere in a word, so within a run of digits: a contact's keys
            // are its runs of three and four, a number's every run of four it holds (the
            // index intersects them), or itself if it has three. Fewer have none (they
            // are in most contacts' phones anyway).
            (Word::Digits(digits), _) => {
                let (least, most) = KEY_DIGITS;
                let run = digits.len().min(most);
                if digits.len() >= least {
                    all.extend(
                        (0..=digits.len() - run)
                            .map(|i| format!("{board}#{}", &digits[i..i + run])),
                    );
                }
            }
        }
        match keys.len() {
            0 => {}
            1 => all.extend(keys),
            _ => any.push(keys),
        }
    }
    let mut push = |keys: Vec<String>, op: &str| {
        qb.push(format_args!(
            " AND contact_search_keys_lean(board_id, search_doc) {op} ARRAY["
        ));
        for (i, key) in keys.into_iter().enumerate() {
            if i > 0 {
                qb.push(", ");
            }
            qb.push_bind(key);
        }
        qb.push("]::text[]");
    };
    let keyed = !all.is_empty() || !any.is_empty();
    if !all.is_empty() {
        push(all, "@>");
    }
    for keys in any {
        push(keys, "&&");
    }
    keyed
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

    /// Appends ` AND` how Postgres is to reach the tier's rows (`Found`).
    pub fn push_found<'a, DB>(&self, qb: &mut QueryBuilder<'a, DB>, board: BoardId, d: Dialect)
    where
        DB: Database,
        String: Encode<'a, DB> + Type<DB>,
    {
        if let Some(s) = self.search.filter(|_| d == Dialect::Postgres) {
            push_found(qb, s, board, self.level);
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
        // `strpos`, not `LIKE`: the planner estimates a `LIKE` by testing it against the
        // column's histogram of 1,000 documents (0.2 ms a word, planned anew for every
        // keystroke), and the keys or the walk decide how the rows are reached anyway.
        (Dialect::Postgres, Word::Digits(digits)) => {
            let piece = if level == Level::Whole {
                format!(" {digits} ")
            } else {
                digits.clone()
            };
            push_in_doc(qb, piece);
        }
        (Dialect::Postgres, Word::Text { text, .. }) => {
            let end = if level == Level::Whole { " " } else { "" };
            qb.push("(");
            push_in_doc(qb, format!(" {text}{end}"));
            if level == Level::Match {
                for other in near {
                    qb.push(" OR ");
                    push_in_doc(qb, format!(" {other} "));
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

/// Appends that the contact's folded document holds `piece`.
fn push_in_doc<'a, DB>(qb: &mut QueryBuilder<'a, DB>, piece: String)
where
    DB: Database,
    String: Encode<'a, DB> + Type<DB>,
{
    qb.push("strpos(search_doc, ")
        .push_bind(piece)
        .push(") > 0");
}
