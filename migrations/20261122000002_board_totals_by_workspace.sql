-- Page totals filter on workspace and board; with the workspace outside the index the
-- planner fell back to a full scan of contacts. Keyed on both, the total is an
-- index-only scan of one board's entries.
DROP INDEX contacts_board_totals_idx;
CREATE INDEX contacts_board_totals_idx ON contacts (workspace_id, board_id)
    INCLUDE (column_id, archived, status, priority, assigned_to, needs_response, follow_up,
             favorite, sentiment, created_at, last_activity_at);
