-- Contact search as a CRM user expects it (shared/src/search.rs): every word of the query
-- matches a word of the name, e-mail, company or phone by prefix, longer words with a
-- typo forgiven, digits anywhere in the phone's digits, case and accents aside.
--
-- Why a trigram index over one folded document rather than full-text search: a tsquery
-- prefix (`gra:*`) cannot find `0042` inside `15550100042`, and its GIN entries for a one-
-- or two-letter prefix cover most of the board, while trigrams serve a word's start, a
-- whole word (a typo's candidates) and digits anywhere from one index, which the planner
-- may pass over for the board's sort index when a prefix is short and matches densely
-- (walking newest first then finds a page in a few hundred rows).
CREATE EXTENSION IF NOT EXISTS unaccent;

-- unaccent() is STABLE (its dictionary could be edited); a generated column needs an
-- IMMUTABLE function. The dictionary is named with its schema so no search_path moves it.
CREATE FUNCTION search_fold(t text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
    RETURN lower(public.unaccent('public.unaccent'::regdictionary, t));

-- ' grace hopper grace hopper navy mil navy 15550100042 ': the words, each between
-- spaces (so ' gra' finds a word's start and ' grace ' a whole word), then the phone's
-- digits as one word.
CREATE FUNCTION contact_search_doc(name text, email text, company text, phone text)
    RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN ' ' || btrim(regexp_replace(search_fold(concat_ws(' ', name, email, company)),
                                       '[^[:alnum:]]+', ' ', 'g'))
        || ' ' || regexp_replace(coalesce(phone, ''), '[^0-9]', '', 'g') || ' ';

ALTER TABLE contacts ADD COLUMN search_doc text
    GENERATED ALWAYS AS (contact_search_doc(name, email, company, phone)) STORED;

DROP INDEX contacts_search_idx;
CREATE INDEX contacts_search_doc_idx ON contacts USING gin (search_doc gin_trgm_ops);

-- The words a typo may have meant: every word of letters only (a typo in `hopper123` or a
-- number means nothing) that some contact of the workspace has, or had (a word nobody has
-- any more finds no row, so none is ever removed). A search looks its typos up here, in a
-- few thousand words, instead of measuring edit distances across the rows that share a
-- piece of the word. Kept per statement, so a bulk load adds each word once.
CREATE TABLE contact_search_words (
    workspace_id text NOT NULL,
    word         text NOT NULL,
    PRIMARY KEY (workspace_id, word)
);
CREATE INDEX contact_search_words_trgm_idx ON contact_search_words USING gin (word gin_trgm_ops);

CREATE FUNCTION contact_search_words_add() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO contact_search_words (workspace_id, word)
    SELECT DISTINCT n.workspace_id, w
    FROM new_rows n, unnest(string_to_array(btrim(n.search_doc), ' ')) AS w
    WHERE length(w) BETWEEN 3 AND 64 AND w ~ '^[[:alpha:]]+$'
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END;
$$;

CREATE TRIGGER contact_search_words_insert
    AFTER INSERT ON contacts REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION contact_search_words_add();
CREATE TRIGGER contact_search_words_update
    AFTER UPDATE ON contacts REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION contact_search_words_add();

INSERT INTO contact_search_words (workspace_id, word)
SELECT DISTINCT c.workspace_id, w
FROM contacts c, unnest(string_to_array(btrim(c.search_doc), ' ')) AS w
WHERE length(w) BETWEEN 3 AND 64 AND w ~ '^[[:alpha:]]+$'
ON CONFLICT DO NOTHING;
ANALYZE contacts;
