-- A page by offset (`page=N`, as old clients ask) skips the rows before it. The sort
-- indexes now carry the workspace and the archived flag, so the default list (and the
-- archived one) finds the ids of a page by an index-only scan, reading index entries for
-- the skipped rows instead of one heap page each, and then reads only the page's own rows
-- (`page_query`). Same keys as before; only the included columns are new.
DROP INDEX contacts_board_created_idx;
CREATE INDEX contacts_board_created_idx ON contacts (board_id, created_at, id)
    INCLUDE (workspace_id, archived);
DROP INDEX contacts_board_updated_idx;
CREATE INDEX contacts_board_updated_idx ON contacts (board_id, updated_at, id)
    INCLUDE (workspace_id, archived);
DROP INDEX contacts_board_activity_idx;
CREATE INDEX contacts_board_activity_idx ON contacts (board_id, last_activity_at, id)
    INCLUDE (workspace_id, archived);
DROP INDEX contacts_board_name_idx;
CREATE INDEX contacts_board_name_idx ON contacts (board_id, name, id)
    INCLUDE (workspace_id, archived);
DROP INDEX contacts_board_column_created_idx;
CREATE INDEX contacts_board_column_created_idx ON contacts (board_id, column_id, created_at, id)
    INCLUDE (workspace_id, archived);
