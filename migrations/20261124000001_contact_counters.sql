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

-- One contact's contribution to its bucket's counters (`sign` -1 when it leaves): the
-- one definition of what each counter counts.
CREATE FUNCTION contact_counter_row(c contacts, sign integer) RETURNS contact_counters
LANGUAGE sql IMMUTABLE AS $$
    SELECT ROW(c.workspace_id, c.board_id, c.column_id, coalesce(c.assigned_to, ''), 0,
        sign * (NOT c.archived)::int,
        sign * (NOT c.archived AND c.status = 'open')::int,
        sign * (NOT c.archived AND c.status = 'closed')::int,
        sign * (NOT c.archived AND c.priority = 'high')::int,
        sign * (NOT c.archived AND c.priority = 'medium')::int,
        sign * (NOT c.archived AND c.priority = 'low')::int,
        sign * (NOT c.archived AND c.needs_response)::int,
        sign * (NOT c.archived AND c.follow_up)::int,
        sign * (NOT c.archived AND c.favorite)::int,
        sign * c.archived::int,
        sign * (NOT c.archived AND c.sentiment = 'negative')::int)::contact_counters
$$;

-- Adds contributions to the counters: grouped per bucket (a bulk load of a million
-- contacts is one upsert per bucket, not a million), into the shard of the writing
-- backend, rows in key order so that concurrent writers lock counter rows in one order
-- and never deadlock, and buckets whose sums are all zero skipped.
CREATE FUNCTION contact_counters_add(deltas contact_counters[]) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO contact_counters AS c
    SELECT workspace_id, board_id, column_id, assignee, (pg_backend_pid() % 4)::smallint,
           sum(live), sum(open), sum(closed), sum(high), sum(medium), sum(low),
           sum(needs_response), sum(follow_up), sum(favorites), sum(archived), sum(unhappy)
    FROM unnest(deltas)
    GROUP BY 1, 2, 3, 4
    HAVING (sum(live), sum(open), sum(closed), sum(high), sum(medium), sum(low),
            sum(needs_response), sum(follow_up), sum(favorites), sum(archived), sum(unhappy))
        <> (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
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
        unhappy = c.unhappy + excluded.unhappy;
END;
$$;

-- Inserts and deletes: once per statement, over its transition table.
CREATE FUNCTION contact_counters_statement() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM contact_counters_add(ARRAY(SELECT contact_counter_row(n, 1) FROM new_rows n));
    ELSE
        PERFORM contact_counters_add(ARRAY(SELECT contact_counter_row(o, -1) FROM old_rows o));
    END IF;
    RETURN NULL;
END;
$$;

-- Updates: once per row, and only for a row whose counted columns changed (the trigger's
-- WHEN is checked without calling any function), so the most frequent CRM write, a
-- touch of last_activity_at, costs the counters nothing.
CREATE FUNCTION contact_counters_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM contact_counters_add(ARRAY[contact_counter_row(OLD, -1), contact_counter_row(NEW, 1)]);
    RETURN NULL;
END;
$$;

CREATE TRIGGER contact_counters_insert AFTER INSERT ON contacts
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION contact_counters_statement();
CREATE TRIGGER contact_counters_delete AFTER DELETE ON contacts
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION contact_counters_statement();
CREATE TRIGGER contact_counters_update AFTER UPDATE ON contacts
    FOR EACH ROW
    WHEN ((OLD.workspace_id, OLD.board_id, OLD.column_id, OLD.assigned_to, OLD.archived,
           OLD.status, OLD.priority, OLD.needs_response, OLD.follow_up, OLD.favorite,
           OLD.sentiment)
          IS DISTINCT FROM
          (NEW.workspace_id, NEW.board_id, NEW.column_id, NEW.assigned_to, NEW.archived,
           NEW.status, NEW.priority, NEW.needs_response, NEW.follow_up, NEW.favorite,
           NEW.sentiment))
    EXECUTE FUNCTION contact_counters_row();

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
