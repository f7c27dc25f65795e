-- Contact search found its candidates through a trigram index over every workspace's
-- contacts. Measured at 1M contacts in one board (2.3M in all), a two-word prefix such as
-- `grace ho` spent 29-40 ms in that index alone: `gra`, `ace`, ` ho` are in hundreds of
-- thousands of contacts of all workspaces, and the rows it offers still have to be read to
-- drop those whose trigrams fall in different words.
--
-- These keys are exact instead, and scoped to the contact's board (search is per board,
-- and a board is one workspace's): `4:gra` for every prefix of a word up to six letters,
-- `4=grace` for each whole word, and `4#0042` for every three to six digits in a row (a
-- number is matched anywhere in a word's digits, as in the phone's). Against keys of two
-- to eight letters and no whole words (an index 38% smaller), a common name and a letter
-- (`grace h`) took 130-180 ms without the letter's key, 8-30 ms with it. `grace ho` is then two posting lists of that board only (6 ms for the same
-- search), and the statement's `LIKE`s on `search_doc` still say exactly what matches:
-- the keys only narrow the rows they test (`search::push_hint`).
CREATE FUNCTION contact_search_keys(board bigint, doc text) RETURNS text[]
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN ARRAY(
        SELECT k FROM (
            SELECT board || ':' || left(w, n) AS k
            FROM unnest(string_to_array(btrim(doc), ' ')) AS w,
                 generate_series(1, least(length(w), 6)) AS n
            UNION ALL
            SELECT board || '=' || w
            FROM unnest(string_to_array(btrim(doc), ' ')) AS w
            WHERE length(w) <= 64
            UNION ALL
            SELECT board || '#' || substr(r[1], i, n)
            FROM regexp_matches(doc, '[0-9]{3,}', 'g') AS r,
                 generate_series(3, 6) AS n,
                 generate_series(1, length(r[1]) - n + 1) AS i
        ) keys
    );
SET LOCAL maintenance_work_mem = '256MB';
CREATE INDEX contacts_search_keys_idx ON contacts
    USING gin (contact_search_keys(board_id, search_doc));
-- How many contacts share a key tells the planner whether to gather them or to walk the
-- board in order; 1,000 entries keep the board's common prefixes apart.
ALTER INDEX contacts_search_keys_idx ALTER COLUMN 1 SET STATISTICS 1000;
DROP INDEX contacts_search_doc_idx;

-- A search that matches many contacts walks the board newest first and tests each row:
-- with the words in this index, it reads index entries (about 0.4 µs each) instead of a
-- heap row each (about 5 µs): `grace ho` at 1M contacts from 127 to 9 ms.
DROP INDEX contacts_board_created_idx;
CREATE INDEX contacts_board_created_idx ON contacts (board_id, created_at, id)
    INCLUDE (workspace_id, archived, search_doc);
ANALYZE contacts;
