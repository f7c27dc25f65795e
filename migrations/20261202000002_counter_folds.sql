-- Folds counter shards back into shard 0. Shards let concurrent writers of one bucket take
-- different rows, but every count and list total sums all of them: once a pool of
-- connections has written for a while each bucket has all four, and reads sum four times
-- the rows they need (the mixed bench: 2,080 counter rows per workspace for 520 buckets,
-- its counts refill the costliest statement of the workload). The origin calls these every
-- few seconds; each moves at most `batch` shard rows in one short transaction, and returns
-- how many it moved.
--
-- A fold skips the shard rows writers hold, and takes its other locks in the writers'
-- order, so it never deadlocks with them: writers lock the rows of one shard in key order;
-- a fold locks its shard rows in key order, then the shard-0 rows it adds to, in key order.
-- The clock counters and the buckets are folded by separate calls, never holding one
-- table's rows while waiting for the other's. A fold that still waits on a row after
-- `lock_timeout` gives up (the next call tries again) rather than make writers queue
-- behind it.

CREATE FUNCTION contact_counters_fold(batch integer) RETURNS bigint
LANGUAGE plpgsql SET lock_timeout = '200ms' AS $$
DECLARE
    folded bigint;
BEGIN
    WITH locked AS (
        SELECT workspace_id, board_id, column_id, assignee, shard
        FROM contact_counters
        WHERE shard <> 0
        ORDER BY workspace_id, board_id, column_id, assignee, shard
        LIMIT batch
        FOR UPDATE SKIP LOCKED
    ), moved AS (
        DELETE FROM contact_counters c
        USING locked l
        WHERE (c.workspace_id, c.board_id, c.column_id, c.assignee, c.shard)
            = (l.workspace_id, l.board_id, l.column_id, l.assignee, l.shard)
        RETURNING c.*
    ), added AS (
        INSERT INTO contact_counters AS c
        SELECT workspace_id, board_id, column_id, assignee, 0::smallint,
               sum(live), sum(open), sum(closed), sum(high), sum(medium), sum(low),
               sum(needs_response), sum(follow_up), sum(favorites), sum(archived), sum(unhappy)
        FROM moved
        GROUP BY 1, 2, 3, 4
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
    )
    SELECT count(*) INTO folded FROM moved;
    RETURN folded;
END;
$$;

CREATE FUNCTION contact_clock_counters_fold(batch integer) RETURNS bigint
LANGUAGE plpgsql SET lock_timeout = '200ms' AS $$
DECLARE
    folded bigint;
BEGIN
    WITH locked AS (
        SELECT workspace_id, clock, hour, board_id, column_id, shard
        FROM contact_clock_counters
        WHERE shard <> 0
        ORDER BY workspace_id, clock, hour, board_id, column_id, shard
        LIMIT batch
        FOR UPDATE SKIP LOCKED
    ), moved AS (
        DELETE FROM contact_clock_counters c
        USING locked l
        WHERE (c.workspace_id, c.clock, c.hour, c.board_id, c.column_id, c.shard)
            = (l.workspace_id, l.clock, l.hour, l.board_id, l.column_id, l.shard)
        RETURNING c.*
    ), added AS (
        INSERT INTO contact_clock_counters AS c
        SELECT workspace_id, clock, hour, board_id, column_id, 0::smallint, sum(n)
        FROM moved
        GROUP BY 1, 2, 3, 4, 5
        ORDER BY 1, 2, 3, 4, 5
        ON CONFLICT (workspace_id, clock, hour, board_id, column_id, shard) DO UPDATE SET
            n = c.n + excluded.n
    )
    SELECT count(*) INTO folded FROM moved;
    RETURN folded;
END;
$$;
