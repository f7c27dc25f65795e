-- The typo vocabulary takes a contact's words only where its document changed (or it moved
-- to another workspace): most updates of a contact touch neither (a message's
-- `last_activity_at`, a favorite, an assignment), and each unnested its document and
-- probed the vocabulary for every word, on every message posted.
CREATE FUNCTION contact_search_words_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO contact_search_words (workspace_id, word)
    SELECT DISTINCT n.workspace_id, w
    FROM new_rows n
    JOIN old_rows o ON o.id = n.id,
         unnest(string_to_array(btrim(n.search_doc), ' ')) AS w
    WHERE (n.search_doc IS DISTINCT FROM o.search_doc OR n.workspace_id <> o.workspace_id)
      AND length(w) BETWEEN 3 AND 64 AND w ~ '^[[:alpha:]]+$'
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END;
$$;

DROP TRIGGER contact_search_words_update ON contacts;
CREATE TRIGGER contact_search_words_update
    AFTER UPDATE ON contacts REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION contact_search_words_changed();
