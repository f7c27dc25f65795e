-- Counters kept by the database, as in Postgres (see its migration of the same name): one
-- row per bucket (board, column, assignee; '' is "unassigned") with the count of each
-- filter that depends on neither the clock nor the reader, kept by triggers in the
-- writing transaction. SQLite has one writer at a time, so there are no shards.
CREATE TABLE contact_counters (
    workspace_id   TEXT    NOT NULL,
    board_id       INTEGER NOT NULL,
    column_id      INTEGER NOT NULL,
    assignee       TEXT    NOT NULL,
    shard          INTEGER NOT NULL DEFAULT 0,
    live           INTEGER NOT NULL,
    open           INTEGER NOT NULL,
    closed         INTEGER NOT NULL,
    high           INTEGER NOT NULL,
    medium         INTEGER NOT NULL,
    low            INTEGER NOT NULL,
    needs_response INTEGER NOT NULL,
    follow_up      INTEGER NOT NULL,
    favorites      INTEGER NOT NULL,
    archived       INTEGER NOT NULL,
    unhappy        INTEGER NOT NULL,
    PRIMARY KEY (workspace_id, board_id, column_id, assignee, shard)
) WITHOUT ROWID;

-- One contact entering (sign 1) or leaving (sign -1) a bucket. The triggers below insert
-- into this view, so each filter's definition is written once.
CREATE VIEW contact_counter_moves AS
SELECT workspace_id, board_id, column_id, assigned_to, archived, status, priority,
       needs_response, follow_up, favorite, sentiment, 0 AS sign
FROM contacts WHERE 0;

CREATE TRIGGER contact_counter_move INSTEAD OF INSERT ON contact_counter_moves
BEGIN
    INSERT INTO contact_counters (workspace_id, board_id, column_id, assignee, shard, live, open,
        closed, high, medium, low, needs_response, follow_up, favorites, archived, unhappy)
    VALUES (NEW.workspace_id, NEW.board_id, NEW.column_id, coalesce(NEW.assigned_to, ''), 0,
        NEW.sign * (NOT NEW.archived),
        NEW.sign * (NOT NEW.archived AND NEW.status = 'open'),
        NEW.sign * (NOT NEW.archived AND NEW.status = 'closed'),
        NEW.sign * (NOT NEW.archived AND NEW.priority = 'high'),
        NEW.sign * (NOT NEW.archived AND NEW.priority = 'medium'),
        NEW.sign * (NOT NEW.archived AND NEW.priority = 'low'),
        NEW.sign * (NOT NEW.archived AND NEW.needs_response),
        NEW.sign * (NOT NEW.archived AND NEW.follow_up),
        NEW.sign * (NOT NEW.archived AND NEW.favorite),
        NEW.sign * (NEW.archived <> 0),
        NEW.sign * (NOT NEW.archived AND NEW.sentiment = 'negative'))
    ON CONFLICT (workspace_id, board_id, column_id, assignee, shard) DO UPDATE SET
        live = live + excluded.live,
        open = open + excluded.open,
        closed = closed + excluded.closed,
        high = high + excluded.high,
        medium = medium + excluded.medium,
        low = low + excluded.low,
        needs_response = needs_response + excluded.needs_response,
        follow_up = follow_up + excluded.follow_up,
        favorites = favorites + excluded.favorites,
        archived = archived + excluded.archived,
        unhappy = unhappy + excluded.unhappy;
END;

CREATE TRIGGER contact_counters_insert AFTER INSERT ON contacts
BEGIN
    INSERT INTO contact_counter_moves VALUES (NEW.workspace_id, NEW.board_id, NEW.column_id,
        NEW.assigned_to, NEW.archived, NEW.status, NEW.priority, NEW.needs_response,
        NEW.follow_up, NEW.favorite, NEW.sentiment, 1);
END;

CREATE TRIGGER contact_counters_delete AFTER DELETE ON contacts
BEGIN
    INSERT INTO contact_counter_moves VALUES (OLD.workspace_id, OLD.board_id, OLD.column_id,
        OLD.assigned_to, OLD.archived, OLD.status, OLD.priority, OLD.needs_response,
        OLD.follow_up, OLD.favorite, OLD.sentiment, -1);
END;

-- Only a change of a counted column moves a contact between counts: a touch of
-- last_activity_at or a rename never reaches the counters.
CREATE TRIGGER contact_counters_update AFTER UPDATE OF board_id, column_id, assigned_to,
    archived, status, priority, needs_response, follow_up, favorite, sentiment ON contacts
BEGIN
    INSERT INTO contact_counter_moves VALUES (OLD.workspace_id, OLD.board_id, OLD.column_id,
        OLD.assigned_to, OLD.archived, OLD.status, OLD.priority, OLD.needs_response,
        OLD.follow_up, OLD.favorite, OLD.sentiment, -1);
    INSERT INTO contact_counter_moves VALUES (NEW.workspace_id, NEW.board_id, NEW.column_id,
        NEW.assigned_to, NEW.archived, NEW.status, NEW.priority, NEW.needs_response,
        NEW.follow_up, NEW.favorite, NEW.sentiment, 1);
END;

INSERT INTO contact_counters
SELECT workspace_id, board_id, column_id, coalesce(assigned_to, ''), 0,
       count(*) FILTER (WHERE NOT archived),
       count(*) FILTER (WHERE NOT archived AND status = 'open'),
       count(*) FILTER (WHERE NOT archived AND status = 'closed'),
       count(*) FILTER (WHERE NOT archived AND priority = 'high'),
       count(*) FILTER (WHERE NOT archived AND priority = 'medium'),
       count(*) FILTER (WHERE NOT archived AND priority = 'low'),
       count(*) FILTER (WHERE NOT archived AND needs_response),
       count(*) FILTER (WHERE NOT archived AND follow_up),
       count(*) FILTER (WHERE NOT archived AND favorite),
       count(*) FILTER (WHERE archived),
       count(*) FILTER (WHERE NOT archived AND sentiment = 'negative')
FROM contacts
GROUP BY 1, 2, 3, 4;

-- The clock's counts scan only their window (see the Postgres migration).
CREATE INDEX contacts_created_window_idx ON contacts (workspace_id, created_at, archived, board_id, column_id);
CREATE INDEX contacts_activity_window_idx ON contacts (workspace_id, last_activity_at, archived, board_id, column_id);
DROP INDEX contacts_counts_idx;
