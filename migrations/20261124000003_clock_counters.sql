-- The clock's counts (new customers: created in the last 7 days; recent activity: active in
-- the last 24 hours) kept as counters too. Every chat message touches last_activity_at, so
-- in a busy workspace the 24 hours' window holds tens of thousands of contacts whose index
-- entries the writes keep dirty: scanning it on each counts miss was the mixed workload's
-- bottleneck. Rows count, per hour of the contact's created_at or last_activity_at, per
-- board and column, the contacts that are not archived. A count sums the hours its window
-- starts in and after, then subtracts the contacts of its first hour that are older than
-- the window: one index range scan of at most an hour.
--
-- Only hours a count may still read are kept: an hour older than 8 days (the longest window
-- and a day's margin, so that transactions disagreeing on now() still agree about any hour
-- a count reads) is neither added to nor taken from, so a contact that ages out of a window
-- needs no write. Rows that fall behind are pruned by the origin (`prune_clock_counters`).
CREATE TABLE contact_clock_counters (
    workspace_id text     NOT NULL,
    clock        text     NOT NULL,
    hour         bigint   NOT NULL,
    board_id     bigint   NOT NULL,
    column_id    bigint   NOT NULL,
    shard        smallint NOT NULL DEFAULT 0,
    n            bigint   NOT NULL,
    PRIMARY KEY (workspace_id, clock, hour, board_id, column_id, shard)
);

-- Hours since the epoch: the unit of the clock counters.
CREATE FUNCTION contact_hour(t timestamptz) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT floor(extract(epoch FROM t) / 3600)::bigint $$;

-- One contact's contributions (`sign` -1 when it leaves), one per clock.
CREATE FUNCTION contact_clock_rows(c contacts, sign integer) RETURNS SETOF contact_clock_counters
LANGUAGE sql STABLE AS $$
    SELECT c.workspace_id, t.clock, t.hour, c.board_id, c.column_id, 0::smallint, sign::bigint
    FROM (VALUES ('created_at', contact_hour(c.created_at)),
                 ('last_activity_at', contact_hour(c.last_activity_at))) AS t(clock, hour)
    WHERE NOT c.archived AND t.hour >= contact_hour(now() - interval '8 days')
$$;

-- As contact_counters_add: grouped, into the writing backend's shard, in key order.
CREATE FUNCTION contact_clock_counters_add(deltas contact_clock_counters[]) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO contact_clock_counters AS c
    SELECT workspace_id, clock, hour, board_id, column_id, (pg_backend_pid() % 4)::smallint, sum(n)
    FROM unnest(deltas)
    GROUP BY 1, 2, 3, 4, 5
    HAVING sum(n) <> 0
    ORDER BY 1, 2, 3, 4, 5
    ON CONFLICT (workspace_id, clock, hour, board_id, column_id, shard) DO UPDATE SET
        n = c.n + excluded.n;
END;
$$;

CREATE FUNCTION contact_clock_counters_statement() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM contact_clock_counters_add(ARRAY(
            SELECT r FROM new_rows n CROSS JOIN LATERAL contact_clock_rows(n, 1) r));
    ELSE
        PERFORM contact_clock_counters_add(ARRAY(
            SELECT r FROM old_rows o CROSS JOIN LATERAL contact_clock_rows(o, -1) r));
    END IF;
    RETURN NULL;
END;
$$;

CREATE FUNCTION contact_clock_counters_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM contact_clock_counters_add(ARRAY(
        SELECT r FROM contact_clock_rows(OLD, -1) r
        UNION ALL
        SELECT r FROM contact_clock_rows(NEW, 1) r));
    RETURN NULL;
END;
$$;

CREATE TRIGGER contact_clock_counters_insert AFTER INSERT ON contacts
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION contact_clock_counters_statement();
CREATE TRIGGER contact_clock_counters_delete AFTER DELETE ON contacts
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION contact_clock_counters_statement();
-- A touch within the hour its contact was last active in changes no counter.
CREATE TRIGGER contact_clock_counters_update AFTER UPDATE ON contacts
    FOR EACH ROW
    WHEN ((OLD.workspace_id, OLD.board_id, OLD.column_id, OLD.archived,
           contact_hour(OLD.created_at), contact_hour(OLD.last_activity_at))
          IS DISTINCT FROM
          (NEW.workspace_id, NEW.board_id, NEW.column_id, NEW.archived,
           contact_hour(NEW.created_at), contact_hour(NEW.last_activity_at)))
    EXECUTE FUNCTION contact_clock_counters_row();

CREATE FUNCTION contact_clock_counters_clear() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    TRUNCATE contact_clock_counters;
    RETURN NULL;
END;
$$;

CREATE TRIGGER contact_clock_counters_truncate AFTER TRUNCATE ON contacts
    FOR EACH STATEMENT EXECUTE FUNCTION contact_clock_counters_clear();

INSERT INTO contact_clock_counters
SELECT (r).workspace_id, (r).clock, (r).hour, (r).board_id, (r).column_id, 0, count(*)
FROM (SELECT contact_clock_rows(c, 1) AS r FROM contacts c) t
GROUP BY 1, 2, 3, 4, 5;
