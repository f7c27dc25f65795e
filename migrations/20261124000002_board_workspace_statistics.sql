-- A board belongs to one workspace, so `workspace_id = $1 AND board_id = $2` selects a
-- board's contacts; without knowing that, the planner multiplied the two selectivities,
-- expected a board to hold a tenth of its rows, and chose to bitmap-scan and sort the
-- whole board instead of walking its sort index: 89 ms instead of 6 ms for page 50.
CREATE STATISTICS contacts_board_workspace (dependencies) ON workspace_id, board_id FROM contacts;
