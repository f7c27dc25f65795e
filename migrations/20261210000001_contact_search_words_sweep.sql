-- Where the sweep of contact_search_words stands (store/postgres/vocabulary.rs): one row,
-- shared by every instance, so a restart resumes the sweep and instances take turns
-- (the one that holds the row's lock sweeps; the others skip their turn).
CREATE TABLE contact_search_words_sweep (
    one          boolean PRIMARY KEY DEFAULT true CHECK (one),
    workspace_id text NOT NULL,
    word         text NOT NULL
);
INSERT INTO contact_search_words_sweep (workspace_id, word) VALUES ('', '');
