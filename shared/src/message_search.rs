//! Search over a workspace's message history (API.md "Search"): what a query asks for,
//! what an answer holds, and which cached searches a new message can change.

use serde::{Deserialize, Serialize};

use crate::cursor::{Cursor, CursorKey};
use crate::ids::ConversationId;
use crate::messages::{CursorPagination, Message};
use crate::query::MAX_SEARCH_CHARS;
use crate::search::fold;
use crate::{InputError, WorkspaceId};

/// Terms a query may hold; each is a condition of the statement.
pub const MAX_TERMS: usize = 8;
/// Hits a page holds by default (`messages::MAX_LIMIT` at most).
const DEFAULT_LIMIT: u32 = 20;
/// Relevance orders the newest this many matches (a chat workspace's common word matches
/// millions of messages; nobody reads past the first pages of a relevance order).
pub const RELEVANCE_WINDOW: u32 = 1_000;
/// Word buckets a workspace's message searches are spread over (`GenerationScope::Said`).
pub const WORD_BUCKETS: u16 = 1024;

/// What a query matches: a word, by prefix, or words in a row (a "quoted phrase").
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Term {
    Word(String),
    Phrase(Vec<String>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SearchSort {
    Recent,
    Relevance,
}

/// A validated message search.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MessageSearch {
    pub terms: Vec<Term>,
    pub conversation: Option<i64>,
    pub contact: Option<i64>,
    pub sort: SearchSort,
    pub limit: u32,
    /// Newest first: the last hit's id. By relevance: how many hits came before.
    pub after: Option<Cursor>,
}

impl MessageSearch {
    pub fn from_pairs<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
        ws: &WorkspaceId,
        key: &CursorKey,
    ) -> Result<Self, InputError> {
        let mut q = Self {
            terms: Vec::new(),
            conversation: None,
            contact: None,
            sort: SearchSort::Recent,
            limit: DEFAULT_LIMIT,
            after: None,
        };
        let mut cursor = None;
        let known = [
            "q",
            "conversation_id",
            "contact_id",
            "sort",
            "limit",
            "cursor",
        ];
        for (name, value) in crate::messages::known_pairs(pairs, &known)? {
            match name {
                "q" => q.terms = terms(value)?,
                "conversation_id" => q.conversation = Some(ConversationId::parse(value)?.0),
                "contact_id" => q.contact = Some(crate::ContactId::parse(value)?.0),
                "sort" => {
                    q.sort = match value {
                        "recent" => SearchSort::Recent,
                        "relevance" => SearchSort::Relevance,
                        _ => {
                            return Err(InputError::new(
                                "invalid_sort",
                                "sort must be recent or relevance",
                            ))
                        }
                    }
                }
                "limit" => q.limit = crate::messages::limit(value)?,
                _ => cursor = Some(value),
            }
        }
        if q.terms.is_empty() {
            return Err(InputError::new(
                "invalid_search",
                "q must hold at least one word",
            ));
        }
        if let Some(raw) = cursor {
            let valid = |v: &str| match q.sort {
                SearchSort::Recent => v.is_empty(),
                SearchSort::Relevance => v
                    .parse::<u32>()
                    .is_ok_and(|n| n > 0 && n < RELEVANCE_WINDOW),
            };
            q.after = Some(Cursor::decode_valued(raw, key, &q.binding(ws), valid)?);
        }
        Ok(q)
    }

    /// A cursor is bound to the search, not to a page size.
    fn binding(&self, ws: &WorkspaceId) -> String {
        format!("message-search\0{ws}\0{}", self.selects())
    }

    /// Everything that selects the hits, as an unambiguous string.
    fn selects(&self) -> String {
        let terms: Vec<Vec<&str>> = self
            .terms
            .iter()
            .map(|t| match t {
                Term::Word(w) => vec![w.as_str()],
                Term::Phrase(words) => std::iter::once("\"")
                    .chain(words.iter().map(String::as_str))
                    .collect(),
            })
            .collect();
        let sort = match self.sort {
            SearchSort::Recent => "recent",
            SearchSort::Relevance => "relevance",
        };
        serde_json::to_string(&(terms, self.conversation, self.contact, sort)).unwrap_or_default()
    }

    /// The input of the cached answer's key: the search, its page size and position.
    pub fn canonical(&self) -> String {
        let after = self.after.as_ref().map(|c| (c.page, &c.value, c.id));
        serde_json::to_string(&(self.selects(), self.limit, after)).unwrap_or_default()
    }

    /// How many hits came before this page (relevance pages read on by offset).
    pub fn skipped(&self) -> u32 {
        match (&self.after, self.sort) {
            (Some(c), SearchSort::Relevance) => c.value.parse().unwrap_or(0),
            _ => 0,
        }
    }

    /// The id the hits are older than (newest-first pages).
    pub fn before_id(&self) -> Option<i64> {
        self.after
            .as_ref()
            .filter(|_| self.sort == SearchSort::Recent)
            .map(|c| c.id)
    }

    /// The cursor of the page after this one, which ends on message `last`.
    pub fn next_cursor(&self, key: &CursorKey, ws: &WorkspaceId, last: i64) -> Option<String> {
        let value = match self.sort {
            SearchSort::Recent => String::new(),
            SearchSort::Relevance => {
                let next = self.skipped() + self.limit;
                if next >= RELEVANCE_WINDOW {
                    return None;
                }
                next.to_string()
            }
        };
        let page = self.after.as_ref().map_or(1, |c| c.page).saturating_add(1);
        Some(
            Cursor {
                page,
                value,
                id: last,
            }
            .encode(key, &self.binding(ws)),
        )
    }

    /// The word bucket this search's cached answers depend on: a message can be a hit only
    /// if it has a word matching every term, so one term's bucket is enough; the longest
    /// word's is the narrowest.
    pub fn bucket(&self) -> u16 {
        let longest = self
            .terms
            .iter()
            .flat_map(|t| match t {
                Term::Word(w) => std::slice::from_ref(w),
                Term::Phrase(words) => words.as_slice(),
            })
            .max_by_key(|w| w.chars().count().min(3))
            .map_or("", String::as_str);
        let short = longest.chars().count() < 3;
        bucket(&prefix(longest, if short { 1 } else { 3 }))
    }
}

/// The terms of `q`: its quoted phrases and its other words, folded as the stores fold
/// what they index (`search::fold`).
fn terms(q: &str) -> Result<Vec<Term>, InputError> {
    if q.chars().count() > MAX_SEARCH_CHARS || q.chars().any(char::is_control) {
        return Err(InputError::new(
            "invalid_search",
            format!(
                "q must be at most {MAX_SEARCH_CHARS} characters, none of them control characters"
            ),
        ));
    }
    let words = |s: &str| -> Vec<String> {
        fold(s)
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .map(str::to_owned)
            .collect()
    };
    let mut out = Vec::new();
    for (i, part) in q.split('"').enumerate() {
        if i % 2 == 1 {
            let phrase = words(part);
            match phrase.len() {
                0 => {}
                1 => out.extend(phrase.into_iter().map(Term::Word)),
                _ => out.push(Term::Phrase(phrase)),
            }
        } else {
            out.extend(words(part).into_iter().map(Term::Word));
        }
    }
    out.dedup();
    out.truncate(MAX_TERMS);
    Ok(out)
}

fn prefix(word: &str, chars: usize) -> String {
    word.chars().take(chars).collect()
}

/// FNV-1a over the prefix: stable across builds and runtimes (the edge computes it too).
fn bucket(prefix: &str) -> u16 {
    let mut h: u32 = 0x811c_9dc5;
    for b in prefix.bytes() {
        h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    (h % u32::from(WORD_BUCKETS)) as u16
}

/// The word buckets a message `body` can change: those of each word's first letter and
/// first three letters, which every search matching the word depends on (`bucket`).
/// `None` (every search) for a body with letters beyond ASCII once folded: the stores
/// fold those more thoroughly than `fold` (`unaccent` maps `ё` to `е`, splits `İ`), so
/// a word's bucket here need not be the one of the searches its stored form matches.
pub fn buckets_of(body: &str) -> Option<Vec<u16>> {
    let folded = fold(body);
    if !folded.is_ascii() {
        return None;
    }
    let mut out: Vec<u16> = folded
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .flat_map(|w| [bucket(&prefix(w, 1)), bucket(&prefix(w, 3))])
        .collect();
    out.sort_unstable();
    out.dedup();
    Some(out)
}

/// One hit: the message, where it was said and by whom it was heard, and the matched
/// words marked in an escaped excerpt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageHit {
    pub message: Message,
    pub conversation_id: i64,
    pub contact: HitContact,
    pub created_at: String,
    pub snippet: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HitContact {
    pub id: i64,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageSearchPage {
    pub hits: Vec<MessageHit>,
    pub pagination: CursorPagination,
}

/// About this many characters of a body around its first matched word.
const SNIPPET_CHARS: usize = 160;

/// An excerpt of `body` around its first match of `terms`, HTML-escaped, each matched
/// word in `<mark>`.
pub fn snippet(body: &str, terms: &[Term]) -> String {
    let wanted: Vec<&str> = terms
        .iter()
        .flat_map(|t| match t {
            Term::Word(w) => std::slice::from_ref(w),
            Term::Phrase(words) => words.as_slice(),
        })
        .map(String::as_str)
        .collect();
    // Words of the body with their byte ranges, to mark them in place.
    let mut words: Vec<(usize, usize)> = Vec::new();
    let mut start = None;
    for (i, c) in body.char_indices().chain([(body.len(), ' ')]) {
        match (c.is_alphanumeric(), start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                words.push((s, i));
                start = None;
            }
            _ => {}
        }
    }
    let matches = |(s, e): &(usize, usize)| {
        let folded = fold(&body[*s..*e]);
        wanted.iter().any(|w| folded.starts_with(w))
    };
    let first = words.iter().find(|w| matches(w)).map_or(0, |w| w.0);
    let from = body[..first]
        .char_indices()
        .rev()
        .nth(SNIPPET_CHARS / 3)
        .map_or(0, |(i, _)| i);
    let to = body[from..]
        .char_indices()
        .nth(SNIPPET_CHARS)
        .map_or(body.len(), |(i, _)| from + i);
    let mut out = String::new();
    if from > 0 {
        out.push('…');
    }
    let mut at = from;
    for w in words
        .iter()
        .filter(|w| w.0 >= from && w.1 <= to && matches(w))
    {
        escape_into(&mut out, &body[at..w.0]);
        out.push_str("<mark>");
        escape_into(&mut out, &body[w.0..w.1]);
        out.push_str("</mark>");
        at = w.1;
    }
    escape_into(&mut out, &body[at..to]);
    if to < body.len() {
        out.push('…');
    }
    out
}

fn escape_into(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn search(pairs: &[(&str, &str)]) -> Result<MessageSearch, &'static str> {
        let ws = WorkspaceId::parse("w1").expect("ws");
        MessageSearch::from_pairs(pairs.iter().copied(), &ws, &CursorKey::for_tests())
            .map_err(|e| e.code)
    }

    #[test]
    fn a_query_is_words_and_quoted_phrases_folded() {
        let q = search(&[("q", "Refund \"Order NUMBER\" café \"x\"")]).expect("valid");
        assert_eq!(
            q.terms,
            vec![
                Term::Word("refund".into()),
                Term::Phrase(vec!["order".into(), "number".into()]),
                Term::Word("cafe".into()),
                Term::Word("x".into()),
            ]
        );
        assert_eq!(search(&[("q", " \"\" ")]), Err("invalid_search"));
        assert_eq!(search(&[]), Err("invalid_search"));
        assert_eq!(search(&[("q", "a"), ("sort", "x")]), Err("invalid_sort"));
    }

    #[test]
    fn a_cursor_belongs_to_its_search() {
        let ws = WorkspaceId::parse("w1").expect("ws");
        let key = CursorKey::for_tests();
        let q = search(&[("q", "refund")]).expect("valid");
        let next = q.next_cursor(&key, &ws, 99).expect("a next page");
        let ok = search(&[("q", "refund"), ("cursor", &next)]).expect("next page");
        assert_eq!(ok.before_id(), Some(99));
        assert_eq!(
            search(&[("q", "refunds"), ("cursor", &next)]),
            Err("invalid_cursor")
        );
        let by_rank =
            search(&[("q", "refund"), ("sort", "relevance"), ("limit", "10")]).expect("valid");
        let next = by_rank.next_cursor(&key, &ws, 5).expect("a next page");
        let second = search(&[
            ("q", "refund"),
            ("sort", "relevance"),
            ("limit", "10"),
            ("cursor", &next),
        ])
        .expect("second page");
        assert_eq!((second.skipped(), second.before_id()), (10, None));
    }

    #[test]
    fn a_message_changes_the_bucket_of_every_search_it_could_match() {
        let body = "Your refund for order 1234 is on its way, José";
        let changed = buckets_of(body).expect("folds to ASCII");
        for q in [
            "refund",
            "ref",
            "re",
            "r",
            "order 12",
            "\"its way\"",
            "jose",
            "JOS",
        ] {
            let s = search(&[("q", q)]).expect("valid");
            assert!(changed.contains(&s.bucket()), "{q}");
        }
        assert!(changed.len() < 30, "{changed:?}");
        assert_eq!(
            buckets_of("Всё готово"),
            None,
            "the stores fold it their own way"
        );
    }

    #[test]
    fn a_snippet_marks_matches_and_escapes_the_rest() {
        let q = search(&[("q", "refund")]).expect("valid");
        assert_eq!(
            snippet("<b>Refunds</b> & more", &q.terms),
            "&lt;b&gt;<mark>Refunds</mark>&lt;/b&gt; &amp; more"
        );
        let long = format!("{} refund {}", "word ".repeat(100), "tail ".repeat(100));
        let s = snippet(&long, &q.terms);
        assert!(s.starts_with('…') && s.ends_with('…') && s.contains("<mark>refund</mark>"));
    }
}
