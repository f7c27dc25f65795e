//! Which cached pages an in-place edit reached, as the origin decides it
//! (`origin/src/cache/edits.rs`): a page is stored with the board's `Rows` value when it
//! was filled and the contacts it shows; each edit of the board moves `Rows` by one and is
//! logged with its contact in the workspace's object. A page whose board has moved since
//! is still right when no logged edit in between touched a contact it shows, so an edit
//! (a message touching its contact, a flag) leaves the board's other pages as they were.

use std::fmt::Write;

use serde::Deserialize;

/// The edits of a board the object keeps: a page older than this many edits is refilled.
pub const LOG_LEN: i64 = 64;

/// What a page's KV value starts with: `r{rows}:{id},{id}…` and a newline, then the
/// page as the origin answered it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp {
    pub rows: u64,
    pub contacts: Vec<i64>,
}

/// The board's `Rows` value now and its logged edits, `(rows value, contact)` in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RowsNow {
    pub rows: u64,
    pub edits: Vec<(u64, i64)>,
}

impl Stamp {
    /// The stamp of a page the origin answered with `data`, filled at `rows`; `None` when
    /// `data` names no contacts' ids (such a page is not stored: no edit could reach it).
    pub fn of_page(rows: u64, data: &str) -> Option<Self> {
        #[derive(Deserialize)]
        struct Page {
            contacts: Vec<Id>,
        }
        #[derive(Deserialize)]
        struct Id {
            id: i64,
        }
        let page = serde_json::from_str::<Page>(data).ok()?;
        Some(Self {
            rows,
            contacts: page.contacts.into_iter().map(|c| c.id).collect(),
        })
    }

    /// The KV value: this stamp, then `data`.
    pub fn value(&self, data: &str) -> String {
        let mut out = String::with_capacity(data.len() + 16 + self.contacts.len() * 8);
        let _ = write!(out, "r{}:", self.rows);
        for (i, id) in self.contacts.iter().enumerate() {
            let _ = write!(out, "{}{id}", if i > 0 { "," } else { "" });
        }
        out.push('\n');
        out.push_str(data);
        out
    }

    /// A KV value's stamp and page; `None` for a value without a stamp.
    pub fn split(value: &str) -> Option<(Self, &str)> {
        let (head, data) = value.split_once('\n')?;
        let (rows, ids) = head.strip_prefix('r')?.split_once(':')?;
        let contacts = ids
            .split(',')
            .filter(|id| !id.is_empty())
            .map(str::parse)
            .collect::<Result<_, _>>()
            .ok()?;
        Some((
            Self {
                rows: rows.parse().ok()?,
                contacts,
            },
            data,
        ))
    }

    /// Whether the page is still right at `now`: no edit since it was filled, or every
    /// one of them logged and none of a contact it shows.
    pub fn untouched(&self, now: &RowsNow) -> bool {
        if self.rows == now.rows {
            return true;
        }
        if self.rows > now.rows {
            return false;
        }
        let since: Vec<&(u64, i64)> = now.edits.iter().filter(|(at, _)| *at > self.rows).collect();
        let all_logged = since.len() as u64 == now.rows - self.rows;
        all_logged && since.iter().all(|(_, c)| !self.contacts.contains(c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_carries_its_stamp_and_the_page_unchanged() {
        let data = r#"{"contacts":[{"id":4,"name":"a"},{"id":9}],"pagination":{}}"#;
        let stamp = Stamp::of_page(12, data).expect("a page");
        assert_eq!(stamp.contacts, [4, 9]);
        let value = stamp.value(data);
        assert_eq!(Stamp::split(&value), Some((stamp, data)));
        let empty = Stamp::of_page(3, r#"{"contacts":[]}"#).expect("an empty page");
        assert_eq!(Stamp::split(&empty.value("{}")), Some((empty, "{}")));
        assert_eq!(Stamp::of_page(3, r#"{"rows":[{"id":1}]}"#), None);
        assert_eq!(Stamp::split(data), None, "an unstamped value");
        assert_eq!(Stamp::split("r1:x\n{}"), None);
    }

    #[test]
    fn a_page_is_right_until_a_logged_edit_touches_a_contact_it_shows() {
        let page = Stamp {
            rows: 5,
            contacts: vec![1, 2],
        };
        let now = |rows, edits: &[(u64, i64)]| RowsNow {
            rows,
            edits: edits.to_vec(),
        };
        assert!(page.untouched(&now(5, &[])));
        assert!(page.untouched(&now(7, &[(5, 1), (6, 3), (7, 4)])));
        assert!(!page.untouched(&now(7, &[(6, 3), (7, 2)])), "its contact 2");
        assert!(
            !page.untouched(&now(7, &[(7, 4)])),
            "edit 6 is no longer logged"
        );
        assert!(!page.untouched(&now(4, &[])), "counters restarted lower");
    }
}
