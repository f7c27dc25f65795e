-- Counter rows are updated all day and never change their key: half-empty pages let each
-- update stay on its page without a new index entry (a HOT update), and a fixed vacuum
-- threshold keeps these small tables of hot rows from piling up dead versions (the mixed
-- bench found 6,000 dead versions beside 5,000 live counter rows, never vacuumed). Pages
-- already full take the fillfactor when next rewritten.
ALTER TABLE contact_counters SET (fillfactor = 50, autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 500);
ALTER TABLE contact_clock_counters SET (fillfactor = 50, autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 500);
