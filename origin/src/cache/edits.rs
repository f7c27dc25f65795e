//! Which contact each in-place edit of a board touched, by the board's `Rows` generation
//! after it. A page cached at `Rows` = s is still right at `Rows` = n when none of the
//! edits s+1..=n touched a contact it shows (an in-place edit moves nothing between
//! pages; one that did bumps the page's own generations too, see `shared::invalidation`).
//! Redis holds the shared log, a list per board written by the bump's own script; each
//! instance keeps what it has read of it and its own edits. Whatever the log cannot
//! answer (an edit it lost, a gap longer than it keeps) counts as touching the page.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use shared::keys::KeySpace;
use shared::{BoardId, WorkspaceId};

use super::entry::Rows;
use super::redis::RedisCache;

/// Edits kept per board: a page older than this many edits of its board is refilled.
pub const LOG_LEN: usize = 256;
/// How long Redis keeps a board's log after its last edit.
pub const LOG_KEEP: Duration = Duration::from_secs(24 * 3600);
/// Boards whose logs one instance keeps before it starts over (reading them again).
const MAX_BOARDS: usize = 4096;

type Log = BTreeMap<u64, i64>;

#[derive(Default)]
pub struct EditLog {
    boards: Mutex<HashMap<(WorkspaceId, BoardId), Log>>,
}

impl EditLog {
    fn with_log<T>(&self, ws: &WorkspaceId, board: BoardId, f: impl FnOnce(&mut Log) -> T) -> T {
        let mut boards = self.boards.lock().unwrap_or_else(|p| p.into_inner());
        if boards.len() >= MAX_BOARDS && !boards.contains_key(&(ws.clone(), board)) {
            boards.clear();
        }
        let log = boards.entry((ws.clone(), board)).or_default();
        let out = f(log);
        while log.len() > LOG_LEN {
            log.pop_first();
        }
        out
    }

    /// Edit `seq` of the board touched `contact`.
    pub fn record(&self, ws: &WorkspaceId, board: BoardId, seq: u64, contact: i64) {
        self.with_log(ws, board, |log| log.insert(seq, contact));
    }

    /// Forgets `ws`'s logs: its workspace counter moved (a whole-workspace change, or
    /// counters Redis lost), so no page cached before is reachable, and the `Rows` values
    /// logged may be counted again.
    pub fn clear_workspace(&self, ws: &WorkspaceId) {
        self.boards
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|(w, _), _| w != ws);
    }

    /// Forgets every log: after Redis restarts, its counters may count again from 0.
    pub fn clear(&self) {
        self.boards
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    /// Whether a page cached with `rows` is still right once the board's `Rows` is `now`.
    pub async fn unchanged(
        &self,
        redis: Option<&RedisCache>,
        keys: &KeySpace,
        ws: &WorkspaceId,
        board: BoardId,
        rows: &Rows,
        now: u64,
    ) -> bool {
        if rows.seq == now {
            return true;
        }
        // A page from a later `Rows` than this instance knows, or from before more edits
        // than the log keeps, is not checked (a lagging mirror, a Redis that restarted).
        if rows.seq > now || now - rows.seq > LOG_LEN as u64 {
            return false;
        }
        if let Some(untouched) = self.with_log(ws, board, |log| untouched(log, rows, now)) {
            return untouched;
        }
        let Some(redis) = redis else {
            return false;
        };
        let Ok(raw) = redis.list(&keys.edits(ws, board)).await else {
            return false;
        };
        self.with_log(ws, board, |log| {
            log.extend(raw.iter().filter_map(|e| parse(e)));
            untouched(log, rows, now).unwrap_or(false)
        })
    }
}

/// `Some(true)`: no edit after the page's `Rows` up to `now` touched a contact it shows;
/// `Some(false)`: one did; `None`: the log misses one of them.
fn untouched(log: &Log, rows: &Rows, now: u64) -> Option<bool> {
    let mut all = true;
    for seq in rows.seq + 1..=now {
        if rows.shows(*log.get(&seq)?) {
            all = false;
        }
    }
    Some(all)
}

/// A log entry, `seq:contact`.
fn parse(entry: &str) -> Option<(u64, i64)> {
    let (seq, contact) = entry.split_once(':')?;
    Some((seq.parse().ok()?, contact.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ws() -> WorkspaceId {
        WorkspaceId::parse("15213").expect("valid")
    }

    async fn unchanged(log: &EditLog, rows: &Rows, now: u64) -> bool {
        let keys = KeySpace::new("t").expect("valid");
        log.unchanged(None, &keys, &ws(), BoardId(1), rows, now)
            .await
    }

    #[tokio::test]
    async fn a_page_stays_until_an_edit_touches_a_contact_it_shows() {
        let log = EditLog::default();
        let page = Rows::new(2, vec![10, 11, 12]);
        assert!(unchanged(&log, &page, 2).await);
        log.record(&ws(), BoardId(1), 3, 99);
        assert!(unchanged(&log, &page, 3).await, "another contact");
        log.record(&ws(), BoardId(1), 4, 11);
        assert!(!unchanged(&log, &page, 4).await, "a contact it shows");
        let other_board = log
            .unchanged(
                None,
                &KeySpace::new("t").expect("valid"),
                &ws(),
                BoardId(2),
                &page,
                3,
            )
            .await;
        assert!(!other_board, "no log of that board here: not checked");
    }

    #[tokio::test]
    async fn gaps_later_pages_and_old_pages_count_as_touched() {
        let log = EditLog::default();
        log.record(&ws(), BoardId(1), 3, 99);
        log.record(&ws(), BoardId(1), 5, 98);
        assert!(
            !unchanged(&log, &Rows::new(2, vec![1]), 5).await,
            "4 missing"
        );
        assert!(
            !unchanged(&log, &Rows::new(6, vec![1]), 5).await,
            "from later"
        );
        for seq in 6..(8 + LOG_LEN as u64) {
            log.record(&ws(), BoardId(1), seq, 98);
        }
        let now = 7 + LOG_LEN as u64;
        assert!(!unchanged(&log, &Rows::new(5, vec![1]), now).await);
        assert!(unchanged(&log, &Rows::new(now - 10, vec![1]), now).await);
        log.clear();
        assert!(!unchanged(&log, &Rows::new(now - 10, vec![1]), now).await);
    }

    #[test]
    fn log_entries_parse_or_are_skipped() {
        assert_eq!(parse("12:345"), Some((12, 345)));
        for bad in ["", "12", "x:1", "1:x", "-1:2"] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }
}
