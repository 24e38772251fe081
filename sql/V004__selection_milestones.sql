-- V004: which selections a retrain milestone covers, stamped on each selection.
-- Why: the retrain of milestone N must export exactly the picks that earned it, and a re-run must export
-- the same set. Milestone N covers the selections numbered 200(N-1)+1 .. 200N in the order they were
-- counted. adfame.repositories.selections.insert_selection stamps the number at insert, under the
-- advisory lock that counts selections (the count before the row, divided by 200, plus one), so the
-- stamp and the milestone row that the 200th pick writes agree; a later deletion never moves a pick
-- into another milestone. Rows older than this migration are numbered by seq, the order they were
-- inserted in (200 is SELECTIONS_PER_RETRAIN of adfame.contracts when this file was written).

ALTER TABLE selections ADD COLUMN milestone integer CHECK (milestone >= 1);

UPDATE selections AS s
SET milestone = (numbered.position - 1) / 200 + 1
FROM (SELECT request_id, row_number() OVER (ORDER BY seq) AS position FROM selections) AS numbered
WHERE s.request_id = numbered.request_id;

ALTER TABLE selections ALTER COLUMN milestone SET NOT NULL;

-- An export reads one milestone's selections in seq order.
CREATE INDEX selections_milestone_seq_idx ON selections (milestone, seq);
