//! The contact-list query of API.md, parsed and validated once. Its canonical form feeds
//! the cache key, so two spellings of the same query share one entry and any other
//! parameter (unknown, cache-busting, hostile) never reaches a key.

use serde::Serialize;

use crate::cursor::{Cursor, CursorKey};
use crate::{BoardId, InputError, UserId, WorkspaceId};

pub const DEFAULT_PER_PAGE: u32 = 50;
pub const MAX_PER_PAGE: u32 = 100;
/// Offset pagination past this depth is a scan nobody needs from a list UI.
pub const MAX_PAGE: u32 = 10_000;
pub const MAX_SEARCH_CHARS: usize = 100;
/// How many contacts a relevance page by number may skip (`page` × `per_page`).
pub const RELEVANCE_MAX_OFFSET: i64 = 1_000;

macro_rules! named_enum {
    ($(#[$meta:meta])* $name:ident, $code:literal, { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            pub fn parse(raw: &str) -> Result<Self, InputError> {
                match raw {
                    $($text => Ok($name::$variant),)+
                    _ => Err(InputError::new(
                        $code,
                        format!(
                            "unknown value {raw:?}; expected one of: {}",
                            [$($text),+].join(", ")
                        ),
                    )),
                }
            }
        }
    };
}

named_enum!(
    /// List filters; each matches one of the workspace counts, so a filtered total equals its count.
    Filter, "invalid_filter", {
        All => "all",
        Open => "open",
        Closed => "closed",
        Unassigned => "unassigned",
        AssignedToMe => "assigned_to_me",
        HighPriority => "high_priority",
        MediumPriority => "medium_priority",
        LowPriority => "low_priority",
        NeedsResponse => "needs_response",
        FollowUp => "follow_up",
        Favorites => "favorites",
        Archived => "archived",
        UnhappyCustomers => "unhappy_customers",
        NewCustomers => "new_customers",
        RecentActivity => "recent_activity",
    }
);

named_enum!(SortBy, "invalid_sort_by", {
    CreatedAt => "created_at",
    UpdatedAt => "updated_at",
    Name => "name",
    LastActivityAt => "last_activity_at",
    Relevance => "relevance",
});

named_enum!(SortOrder, "invalid_sort_order", {
    Asc => "asc",
    Desc => "desc",
});

/// A validated list query. `user` is kept only where the answer depends on who asks.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ContactListQuery {
    /// The page number; with `after`, the one the cursor leads to.
    pub page: u32,
    pub per_page: u32,
    pub filter: Filter,
    pub search: Option<String>,
    pub column_id: Option<i64>,
    pub sort_by: SortBy,
    pub sort_order: SortOrder,
    pub user: Option<UserId>,
    /// Where a cursor page starts: after this row (keyset), instead of at an offset.
    pub after: Option<Cursor>,
}

impl Default for ContactListQuery {
    fn default() -> Self {
        Self {
            page: 1,
            per_page: DEFAULT_PER_PAGE,
            filter: Filter::All,
            search: None,
            column_id: None,
            sort_by: SortBy::CreatedAt,
            sort_order: SortOrder::Desc,
            user: None,
            after: None,
        }
    }
}

pub(crate) fn parse_bounded(
    raw: &str,
    name: &str,
    code: &'static str,
    max: u32,
) -> Result<u32, InputError> {
    let err = || InputError::new(code, format!("{name} must be an integer from 1 to {max}"));
    if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_digit()) || raw.len() > 9 {
        return Err(err());
    }
    match raw.parse::<u32>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        _ => Err(err()),
    }
}

impl ContactListQuery {
    /// Parses decoded query pairs of a list of `board` in `ws`. A repeated known
    /// parameter is an error (which value was meant is ambiguous); unknown parameters are
    /// ignored and never reach a key. A `cursor` must have been made for this very list
    /// and takes precedence over `page`.
    pub fn from_pairs<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
        ws: &WorkspaceId,
        board: BoardId,
        user: &UserId,
        key: &CursorKey,
    ) -> Result<Self, InputError> {
        let mut q = Self::default();
        let mut seen: Vec<&str> = Vec::new();
        let mut cursor = None;
        for (name, value) in pairs {
            let known = [
                "page",
                "per_page",
                "filter",
                "search",
                "column_id",
                "sort_by",
                "sort_order",
                "cursor",
            ];
            let Some(name) = known.iter().find(|k| **k == name) else {
                continue;
            };
            if seen.contains(name) {
                return Err(InputError::new(
                    "duplicate_parameter",
                    format!("query parameter {name:?} is given more than once"),
                ));
            }
            seen.push(name);
            match *name {
                "page" => q.page = parse_bounded(value, "page", "invalid_page", MAX_PAGE)?,
                "per_page" => {
                    q.per_page = parse_bounded(value, "per_page", "invalid_per_page", MAX_PER_PAGE)?
                }
                "filter" => q.filter = Filter::parse(value)?,
                "search" => q.search = normalize_search(value)?,
                "column_id" => {
                    q.column_id = Some(
                        crate::BoardId::parse(value)
                            .map_err(|_| {
                                InputError::new(
                                    "invalid_column_id",
                                    "column_id must be a positive integer",
                                )
                            })?
                            .0,
                    )
                }
                "sort_by" => q.sort_by = SortBy::parse(value)?,
                "cursor" => cursor = Some(value),
                _ => q.sort_order = SortOrder::parse(value)?,
            }
        }
        if q.filter == Filter::AssignedToMe {
            q.user = Some(user.clone());
        }
        if let Some(raw) = cursor {
            let after = q.decode_cursor(raw, key, ws, board)?;
            q.page = after.page;
            q.after = Some(after);
        }
        // A relevance page by number reads every contact before it, rank by rank.
        if q.sort_by == SortBy::Relevance && q.after.is_none() && q.offset() > RELEVANCE_MAX_OFFSET
        {
            return Err(InputError::new(
                "invalid_page",
                format!("pages sorted by relevance reach the first {RELEVANCE_MAX_OFFSET} contacts; read on with next_cursor"),
            ));
        }
        Ok(q)
    }

    /// `raw` as a cursor of this list, its value checked for the sort before any SQL.
    pub fn decode_cursor(
        &self,
        raw: &str,
        key: &CursorKey,
        ws: &WorkspaceId,
        board: BoardId,
    ) -> Result<Cursor, InputError> {
        let binding = self.binding(ws, board);
        match self.sort_by {
            SortBy::Name => Cursor::decode(raw, key, &binding),
            SortBy::Relevance => {
                Cursor::decode_valued(raw, key, &binding, |v| relevance_at(v).is_some())
            }
            _ => Cursor::decode_timed(raw, key, &binding),
        }
    }

    /// What a cursor of this list is bound to: the list, not the page size or position.
    pub fn binding(&self, ws: &WorkspaceId, board: BoardId) -> String {
        let list = (
            ws.as_str(),
            board.0,
            self.filter.as_str(),
            &self.search,
            self.column_id,
            self.sort_by.as_str(),
            self.sort_order.as_str(),
            self.user.as_ref().map(UserId::as_str),
        );
        serde_json::to_string(&list).unwrap_or_default()
    }

    /// Everything but the page, as an unambiguous string: the input of the key hash.
    /// Written piece by piece rather than by serde_json: every page hit hashes it. It is
    /// the JSON array serde_json writes for the same fields (a test holds them equal).
    pub fn canonical(&self) -> String {
        let mut out = String::with_capacity(64);
        out.push('[');
        out.push_str(itoa::Buffer::new().format(self.per_page));
        out.push_str(",\"");
        out.push_str(self.filter.as_str());
        out.push_str("\",");
        push_json_str(&mut out, self.search.as_deref());
        out.push(',');
        match self.column_id {
            Some(c) => out.push_str(itoa::Buffer::new().format(c)),
            None => out.push_str("null"),
        }
        out.push_str(",\"");
        out.push_str(self.sort_by.as_str());
        out.push_str("\",\"");
        out.push_str(self.sort_order.as_str());
        out.push_str("\",");
        push_json_str(&mut out, self.user.as_ref().map(UserId::as_str));
        out.push(']');
        out
    }

    pub fn offset(&self) -> i64 {
        i64::from(self.page - 1) * i64::from(self.per_page)
    }
}

/// A relevance cursor's value, `{rank}|{last activity}`: the row's rank (0 every word
/// exact, 1 every word at least a prefix, 2 a typo forgiven) and its recency, which breaks
/// ties; `None` for anything else.
pub fn relevance_at(value: &str) -> Option<(u8, &str)> {
    let (rank, at) = value.split_once('|')?;
    let rank = match rank {
        "0" => 0,
        "1" => 1,
        "2" => 2,
        _ => return None,
    };
    crate::cursor::is_timestamp(at).then_some((rank, at))
}

/// `s` as a JSON string, or `null`.
fn push_json_str(out: &mut String, s: Option<&str>) {
    match s {
        Some(s) => out.push_str(&serde_json::to_string(s).unwrap_or_default()),
        None => out.push_str("null"),
    }
}

/// Search is case-insensitive, so it is keyed lower-cased and trimmed; blank means none.
fn normalize_search(raw: &str) -> Result<Option<String>, InputError> {
    let trimmed = raw.trim();
    if trimmed.chars().count() > MAX_SEARCH_CHARS {
        return Err(InputError::new(
            "invalid_search",
            format!("search must be at most {MAX_SEARCH_CHARS} characters"),
        ));
    }
    if trimmed.chars().any(char::is_control) {
        return Err(InputError::new(
            "invalid_search",
            "search must not contain control characters",
        ));
    }
    Ok((!trimmed.is_empty()).then(|| trimmed.to_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user() -> UserId {
        UserId::parse("u1").expect("valid user")
    }

    fn ws() -> WorkspaceId {
        WorkspaceId::parse("15213").expect("valid workspace")
    }

    fn parse(pairs: &[(&str, &str)]) -> Result<ContactListQuery, InputError> {
        ContactListQuery::from_pairs(
            pairs.iter().copied(),
            &ws(),
            BoardId(1),
            &user(),
            &CursorKey::for_tests(),
        )
    }

    #[test]
    fn relevance_pages_by_number_stop_before_reading_too_far() {
        let by = |page: &str| {
            parse(&[
                ("sort_by", "relevance"),
                ("per_page", "100"),
                ("page", page),
            ])
        };
        assert!(by("11").is_ok());
        assert_eq!(by("12").map_err(|e| e.code), Err("invalid_page"));
    }

    #[test]
    fn defaults_match_the_contract() {
        let q = parse(&[]).expect("empty query is valid");
        assert_eq!((q.page, q.per_page, q.filter), (1, 50, Filter::All));
        assert_eq!(
            (q.sort_by, q.sort_order),
            (SortBy::CreatedAt, SortOrder::Desc)
        );
    }

    #[test]
    fn out_of_range_pages_and_sizes_are_rejected_with_their_codes() {
        let cases = [
            (("per_page", "0"), "invalid_per_page"),
            (("per_page", "10000"), "invalid_per_page"),
            (("page", "-1"), "invalid_page"),
            (("page", "0"), "invalid_page"),
            (("page", "1e3"), "invalid_page"),
            (("filter", "everything"), "invalid_filter"),
            (("sort_by", "email"), "invalid_sort_by"),
            (("sort_order", "up"), "invalid_sort_order"),
            (("column_id", "x"), "invalid_column_id"),
        ];
        for (pair, code) in cases {
            assert_eq!(parse(&[pair]).map_err(|e| e.code), Err(code), "{pair:?}");
        }
    }

    #[test]
    fn a_repeated_parameter_is_rejected_and_an_unknown_one_ignored() {
        assert_eq!(
            parse(&[("page", "1"), ("page", "2")]).map_err(|e| e.code),
            Err("duplicate_parameter")
        );
        assert_eq!(parse(&[("_", "123")]), parse(&[]));
    }

    #[test]
    fn the_canonical_form_is_the_json_serde_writes_for_the_same_fields() {
        let queries = [
            vec![],
            vec![
                ("per_page", "100"),
                ("column_id", "7"),
                ("sort_order", "asc"),
            ],
            vec![
                ("search", "Zoë \"quoted\" \\ back"),
                ("filter", "assigned_to_me"),
            ],
            vec![("sort_by", "name"), ("filter", "archived")],
        ];
        for pairs in queries {
            let q = parse(&pairs).expect("valid");
            let by_serde = serde_json::to_string(&(
                q.per_page,
                q.filter.as_str(),
                &q.search,
                q.column_id,
                q.sort_by.as_str(),
                q.sort_order.as_str(),
                q.user.as_ref().map(UserId::as_str),
            ))
            .expect("json");
            assert_eq!(q.canonical(), by_serde, "{pairs:?}");
        }
    }

    #[test]
    fn search_is_keyed_case_insensitively_and_blank_search_is_none() {
        let a = parse(&[("search", "  Alice ")]).expect("valid");
        let b = parse(&[("search", "alice")]).expect("valid");
        assert_eq!(a.canonical(), b.canonical());
        assert_eq!(parse(&[("search", "   ")]).expect("valid").search, None);
    }

    #[test]
    fn only_assigned_to_me_depends_on_the_user() {
        assert_eq!(parse(&[("filter", "open")]).expect("valid").user, None);
        let mine = parse(&[("filter", "assigned_to_me")]).expect("valid");
        assert_eq!(mine.user, Some(user()));
    }

    #[test]
    fn a_cursor_sets_the_page_and_is_refused_for_another_sort_or_workspace() {
        let open = parse(&[("filter", "open")]).expect("valid");
        let after = Cursor {
            page: 4,
            value: "2026-01-01T00:00:00.000001Z".into(),
            id: 9,
        };
        let raw = after.encode(&CursorKey::for_tests(), &open.binding(&ws(), BoardId(1)));
        let next = parse(&[("filter", "open"), ("page", "1"), ("cursor", &raw)]).expect("valid");
        assert_eq!((next.page, next.after), (4, Some(after)));
        let other_sort = parse(&[("filter", "open"), ("sort_order", "asc"), ("cursor", &raw)]);
        assert_eq!(other_sort.map_err(|e| e.code), Err("invalid_cursor"));
        let other_ws = WorkspaceId::parse("15214").expect("valid workspace");
        let elsewhere = ContactListQuery::from_pairs(
            [("filter", "open"), ("cursor", raw.as_str())],
            &other_ws,
            BoardId(1),
            &user(),
            &CursorKey::for_tests(),
        );
        assert_eq!(elsewhere.map_err(|e| e.code), Err("invalid_cursor"));
    }
}
