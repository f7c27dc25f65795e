-- The clock's counts kept as counters, as in Postgres (see its migration of the same name):
-- per hour of created_at or last_activity_at, per board and column, the contacts that are
-- not archived; hours older than 8 days are neither added to nor taken from.
CREATE TABLE contact_clock_counters (
    workspace_id TEXT    NOT NULL,
    clock        TEXT    NOT NULL,
    hour         INTEGER NOT NULL,
    board_id     INTEGER NOT NULL,
    column_id    INTEGER NOT NULL,
    shard        INTEGER NOT NULL DEFAULT 0,
    n            INTEGER NOT NULL,
    PRIMARY KEY (workspace_id, clock, hour, board_id, column_id, shard)
) WITHOUT ROWID;

-- One contact entering (sign 1) or leaving (sign -1) its hours; the triggers below insert
-- into this view, so the hours are computed in one place.
CREATE VIEW contact_clock_moves AS
SELECT workspace_id, board_id, column_id, archived, created_at, last_activity_at, 0 AS sign
FROM contacts WHERE 0;

CREATE TRIGGER contact_clock_move INSTEAD OF INSERT ON contact_clock_moves
WHEN NOT NEW.archived
BEGIN
    INSERT INTO contact_clock_counters (workspace_id, clock, hour, board_id, column_id, shard, n)
    SELECT NEW.workspace_id, t.clock, t.hour, NEW.board_id, NEW.column_id, 0, NEW.sign
    FROM (SELECT 'created_at' AS clock, CAST(strftime('%s', NEW.created_at) AS INTEGER) / 3600 AS hour
          UNION ALL
          SELECT 'last_activity_at', CAST(strftime('%s', NEW.last_activity_at) AS INTEGER) / 3600) t
    WHERE t.hour >= CAST(strftime('%s', 'now', '-8 days') AS INTEGER) / 3600
    ON CONFLICT (workspace_id, clock, hour, board_id, column_id, shard) DO UPDATE SET
        n = n + excluded.n;
END;

CREATE TRIGGER contact_clock_counters_insert AFTER INSERT ON contacts
BEGIN
    INSERT INTO contact_clock_moves VALUES (NEW.workspace_id, NEW.board_id, NEW.column_id,
        NEW.archived, NEW.created_at, NEW.last_activity_at, 1);
END;

CREATE TRIGGER contact_clock_counters_delete AFTER DELETE ON contacts
BEGIN
    INSERT INTO contact_clock_moves VALUES (OLD.workspace_id, OLD.board_id, OLD.column_id,
        OLD.archived, OLD.created_at, OLD.last_activity_at, -1);
END;

-- A touch within the hour its contact was last active in changes no counter.
CREATE TRIGGER contact_clock_counters_update AFTER UPDATE OF board_id, column_id, archived,
    created_at, last_activity_at ON contacts
WHEN OLD.board_id IS NOT NEW.board_id OR OLD.column_id IS NOT NEW.column_id
    OR OLD.archived IS NOT NEW.archived
    OR CAST(strftime('%s', OLD.created_at) AS INTEGER) / 3600
        IS NOT CAST(strftime('%s', NEW.created_at) AS INTEGER) / 3600
    OR CAST(strftime('%s', OLD.last_activity_at) AS INTEGER) / 3600
        IS NOT CAST(strftime('%s', NEW.last_activity_at) AS INTEGER) / 3600
BEGIN
    INSERT INTO contact_clock_moves VALUES (OLD.workspace_id, OLD.board_id, OLD.column_id,
        OLD.archived, OLD.created_at, OLD.last_activity_at, -1);
    INSERT INTO contact_clock_moves VALUES (NEW.workspace_id, NEW.board_id, NEW.column_id,
        NEW.archived, NEW.created_at, NEW.last_activity_at, 1);
END;

INSERT INTO contact_clock_moves
SELECT workspace_id, board_id, column_id, archived, created_at, last_activity_at, 1 FROM contacts;
