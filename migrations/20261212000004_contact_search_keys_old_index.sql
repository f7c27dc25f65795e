-- no-transaction
-- The old keys go once this version's origins search through the new ones; dropped
-- without waiting on readers of contacts.
DROP INDEX CONCURRENTLY IF EXISTS contacts_search_keys_idx;
