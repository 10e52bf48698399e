-- Lines the CSV reader rejected (table reject_errors, filled by store_rejects): a file of which it
-- accepted none but rejected some is unusable as a whole (wrong delimiter, not this source's file).
-- Grain: one row. Parameters: none.
SELECT count(DISTINCT line) AS n FROM reject_errors
