-- Fewer search keys a contact, and longer prefixes. Every key of a contact is written
-- again whenever its row moves (a message's `last_activity_at` too), and the keys index
-- was most of what search cost writers: at 200k contacts, contact updates ran at 0.70×
-- the database without search, and at 0.93-0.95× with only this index dropped (pgbench,
-- 8 clients).
--
-- - Digits are keyed by runs of three and four (not three to six): a longer number is
--   looked up by every run of four it holds, which the index intersects; an 11-digit
--   phone had 30 such keys, now 17.
-- - A word of digits only has no prefix keys: a search's number is looked up by its
--   runs, never as a word's start.
-- - Prefixes go up to eight letters (not six): `lovelas` was keyed by `lovela`, in 4% of
--   a board, and matching nothing read the whole board (340 ms at 1M contacts).
--
-- 63 keys a contact on average in the bench's board, now 51. A function of its own, so
-- that its index is built beside the old one without locking contacts (the next
-- migrations) while origins of the version before search through the old one.
CREATE FUNCTION contact_search_keys_lean(board bigint, doc text) RETURNS text[]
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN ARRAY(
        SELECT k FROM (
            SELECT board || ':' || left(w, n) AS k
            FROM unnest(string_to_array(btrim(doc), ' ')) AS w,
                 generate_series(1, least(length(w), 8)) AS n
            WHERE w !~ '^[0-9]+$'
            UNION ALL
            SELECT board || '=' || w
            FROM unnest(string_to_array(btrim(doc), ' ')) AS w
            WHERE length(w) <= 64
            UNION ALL
            SELECT board || '#' || substr(r[1], i, n)
            FROM regexp_matches(doc, '[0-9]{3,}', 'g') AS r,
                 generate_series(3, 4) AS n,
                 generate_series(1, length(r[1]) - n + 1) AS i
        ) keys
    );
