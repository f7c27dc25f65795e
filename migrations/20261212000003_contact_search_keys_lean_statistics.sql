-- As for the keys before: 1,000 entries keep a board's common prefixes apart, for the
-- estimate that decides how a search reaches its rows.
ALTER INDEX contacts_search_lean_keys_idx ALTER COLUMN 1 SET STATISTICS 1000;
ANALYZE contacts;
