-- no-transaction
-- Built without blocking writers (minutes at millions of contacts); alone in its file, as
-- Postgres runs CONCURRENTLY only outside a transaction.
CREATE INDEX CONCURRENTLY IF NOT EXISTS contacts_search_lean_keys_idx ON contacts
    USING gin (contact_search_keys_lean(board_id, search_doc));
