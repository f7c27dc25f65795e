-- Nothing uses the old keys' function any more.
DROP FUNCTION IF EXISTS contact_search_keys(bigint, text);
