-- Counters kept by the database, in the writing transaction: the counts answer and every
-- list total read a few hundred counter rows instead of the workspace's contacts, so a
-- write that invalidates the caches makes the next miss cheap instead of a recount.
--
-- One row per bucket (board, column, assignee) holds the count of each filter that
-- depends on neither the clock nor the reader ('' is "unassigned"): a workspace's counts
-- sum its rows, a board's total sums the board's, `assigned_to_me` sums the reader's
-- bucket. Each bucket is split over a few shards chosen by the writing backend, so many
-- writers in one workspace do not queue on one hot row; readers sum the shards.
CREATE TABLE contact_counters (
    workspace_id   text     NOT NULL,
    board_id       bigint   NOT NULL,
    column_id      bigint   NOT NULL,
    assignee       text     NOT NULL,
    shard          smallint NOT NULL DEFAULT 0,
    live           bigint   NOT NULL,
    open           bigint   NOT NULL,
    closed         bigint   NOT NULL,
    high           bigint   NOT NULL,
    medium         bigint   NOT NULL,
    low            bigint   NOT NULL,
    needs_response bigint   NOT NULL,
    follow_up      bigint   NOT NULL,
    favorites      bigint   NOT NULL,
    archived       bigint   NOT NULL,
    unhappy        bigint   NOT NULL,
    PRIMARY KEY (workspace_id, board_id, column_id, assignee, shard)
);

-- Folds one statement's changed rows into the counters: one grouped upsert per statement
-- (a bulk load of a million contacts is one GROUP BY, not a million upserts), rows in key
-- order so concurrent writers lock counter rows in one order and never deadlock, and
-- buckets whose counts did not move (a touch of last_activity_at, a rename) skipped, so
-- the most frequent CRM write never touches a counter at all.
CREATE FUNCTION contact_counters_fold() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    changed text;
BEGIN
    changed := CASE TG_OP
        WHEN 'INSERT' THEN 'SELECT n.*, 1 AS sign FROM new_rows n'
        WHEN 'DELETE' THEN 'SELECT o.*, -1 AS sign FROM old_rows o'
        ELSE 'SELECT n.*, 1 AS sign FROM new_rows n UNION ALL SELECT o.*, -1 FROM old_rows o'
    END;
    EXECUTE format($sql$
        INSERT INTO contact_counters AS c
        SELECT * FROM (
            SELECT workspace_id, board_id, column_id, coalesce(assigned_to, '') AS assignee,
                   (pg_backend_pid() %% 4)::smallint AS shard,
                   coalesce(sum(sign) FILTER (WHERE NOT archived), 0) AS live,
                   coalesce(sum(sign) FILTER (WHERE NOT archived AND status = 'open'), 0) AS open,
                   coalesce(sum(sign) FILTER (WHERE NOT archived AND status = 'closed'), 0) AS closed,
                   coalesce(sum(sign) FILTER (WHERE NOT archived AND priority = 'high'), 0) AS high,
                   coalesce(sum(sign) FILTER (WHERE NOT archived AND priority = 'medium'), 0) AS medium,
                   coalesce(sum(sign) FILTER (WHERE NOT archived AND priority = 'low'), 0) AS low,
                   coalesce(sum(sign) FILTER (WHERE NOT archived AND needs_response), 0) AS needs_response,
                   coalesce(sum(sign) FILTER (WHERE NOT archived AND follow_up), 0) AS follow_up,
                   coalesce(sum(sign) FILTER (WHERE NOT archived AND favorite), 0) AS favorites,
                   coalesce(sum(sign) FILTER (WHERE archived), 0) AS archived,
                   coalesce(sum(sign) FILTER (WHERE NOT archived AND sentiment = 'negative'), 0) AS unhappy
            FROM (%s) d
            GROUP BY 1, 2, 3, 4
        ) t
        WHERE (live, open, closed, high, medium, low, needs_response, follow_up, favorites,
               archived, unhappy) <> (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        ORDER BY 1, 2, 3, 4
        ON CONFLICT (workspace_id, board_id, column_id, assignee, shard) DO UPDATE SET
            live = c.live + excluded.live,
            open = c.open + excluded.open,
            closed = c.closed + excluded.closed,
            high = c.high + excluded.high,
            medium = c.medium + excluded.medium,
            low = c.low + excluded.low,
            needs_response = c.needs_response + excluded.needs_response,
            follow_up = c.follow_up + excluded.follow_up,
            favorites = c.favorites + excluded.favorites,
            archived = c.archived + excluded.archived,
            unhappy = c.unhappy + excluded.unhappy
    $sql$, changed);
    RETURN NULL;
END;
$$;

CREATE TRIGGER contact_counters_insert AFTER INSERT ON contacts
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION contact_counters_fold();
CREATE TRIGGER contact_counters_update AFTER UPDATE ON contacts
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION contact_counters_fold();
CREATE TRIGGER contact_counters_delete AFTER DELETE ON contacts
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION contact_counters_fold();

CREATE FUNCTION contact_counters_clear() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    TRUNCATE contact_counters;
    RETURN NULL;
END;
$$;

CREATE TRIGGER contact_counters_truncate AFTER TRUNCATE ON contacts
    FOR EACH STATEMENT EXECUTE FUNCTION contact_counters_clear();

-- Contacts already stored start counted.
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

-- The clock's counts (new customers, recent activity) scan only the window they count:
-- the workspace's entries of the last 7 days or 24 hours, never all of them.
CREATE INDEX contacts_created_window_idx ON contacts (workspace_id, created_at)
    INCLUDE (archived, board_id, column_id);
CREATE INDEX contacts_activity_window_idx ON contacts (workspace_id, last_activity_at)
    INCLUDE (archived, board_id, column_id);

-- What the counters replace: two covering indexes every write had to keep up to date.
DROP INDEX contacts_counts_idx;
DROP INDEX contacts_board_totals_idx;
