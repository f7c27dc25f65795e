-- Message search (shared/src/message_search.rs): words by prefix and quoted phrases in the
-- bodies of a workspace's messages, newest first. Full-text search here, not trigrams:
-- a body is long and a query's words are whole words, and a tsvector holds word
-- positions, which a phrase needs. Words are split and folded as contacts' are.
ALTER TABLE messages ADD COLUMN search_doc tsvector GENERATED ALWAYS AS (
    to_tsvector('simple', regexp_replace(search_fold(coalesce(body, '')), '[^[:alnum:]]+', ' ', 'g'))
) STORED;
CREATE INDEX messages_search_idx ON messages USING gin (search_doc);
-- Newest first across the workspace: a common word's hits are found walking back from
-- the newest message, a rare word's through the GIN entries.
CREATE INDEX messages_workspace_recent_idx ON messages (workspace_id, id);
ANALYZE messages;
