-- Contact search as a CRM user expects it (shared/src/search.rs): every word of the query
-- matches a word of the name, e-mail, company or phone by prefix, longer words with a
-- typo forgiven, digits anywhere in the phone's digits, case and accents aside.
--
-- Why a trigram index over one folded document rather than full-text search: a tsquery
-- prefix (`gra:*`) cannot say "a typo away", nor find `0042` inside `15550100042`, and its
-- GIN entries for a one- or two-letter prefix cover most of the board, while trigrams
-- serve all three (word prefix, typo candidates through pieces of the word, digits) from
-- one index, which the planner may pass over for the board's sort index when a prefix is
-- short and matches densely (then walking newest first finds a page in a few hundred rows).
CREATE EXTENSION IF NOT EXISTS unaccent;
CREATE EXTENSION IF NOT EXISTS fuzzystrmatch;

-- unaccent() is STABLE (its dictionary could be edited); a generated column needs an
-- IMMUTABLE function. The dictionary is named with its schema so no search_path moves it.
CREATE FUNCTION contact_search_fold(t text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
    RETURN lower(public.unaccent('public.unaccent'::regdictionary, t));

-- ' grace hopper grace hopper navy mil navy 15550100042 ': the words, each between
-- spaces (so ' gra' finds a word's start and ' grace ' a whole word), then the phone's
-- digits as one word.
CREATE FUNCTION contact_search_doc(name text, email text, company text, phone text)
    RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN ' ' || btrim(regexp_replace(contact_search_fold(concat_ws(' ', name, email, company)),
                                       '[^[:alnum:]]+', ' ', 'g'))
        || ' ' || regexp_replace(coalesce(phone, ''), '[^0-9]', '', 'g') || ' ';

-- Whether some word of `doc` is at most `k` edits from `w` (levenshtein_less_equal takes
-- at most 255 characters a side; no forgiven typo is that long).
CREATE FUNCTION contact_search_near(doc text, w text, k int) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN EXISTS (
        SELECT 1 FROM unnest(string_to_array(btrim(doc), ' ')) AS word
        WHERE length(word) <= 255 AND length(w) <= 255
          AND abs(length(word) - length(w)) <= k
          AND levenshtein_less_equal(word, w, k) <= k);

ALTER TABLE contacts ADD COLUMN search_doc text
    GENERATED ALWAYS AS (contact_search_doc(name, email, company, phone)) STORED;

DROP INDEX contacts_search_idx;
CREATE INDEX contacts_search_doc_idx ON contacts USING gin (search_doc gin_trgm_ops);
