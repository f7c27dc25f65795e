-- A CRM updates its contacts all day, and each update clears the visibility-map bit of the
-- heap page it touches; a page by offset skips its rows by index alone only where that bit
-- is set. Postgres's default vacuums a table once a fifth of it has changed (400k updates
-- of a 2M-contact table), which leaves most pages unset for hours: vacuum contacts after
-- 1% of it (plus 1,000 rows) has changed instead. A vacuum reads only the pages whose bit
-- is clear, so the shorter interval costs little.
ALTER TABLE contacts SET (autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_threshold = 1000);
