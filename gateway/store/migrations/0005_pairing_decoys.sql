-- 0005: the pairing attempts on selectors with no open code.
--
-- The gateway answers such an attempt with a decoy exchange that must cost
-- what an attempt on an open code costs, store writes included, or the time
-- taken would tell which selectors have a code. An open code's attempt
-- updates its count and adds its audit row (an index too); a decoy's
-- updates the count here and overwrites the oldest of the last 64 decoys
-- (an index too): the same work, without a row per guess.
CREATE TABLE pairing_decoys (
	id       INTEGER PRIMARY KEY CHECK (id = 1),
	answered INTEGER NOT NULL DEFAULT 0 CHECK (answered >= 0)
) STRICT;

INSERT INTO pairing_decoys (id) VALUES (1);

-- The last 64 decoys, slot answered % 64: when, and for which selector.
CREATE TABLE recent_decoys (
	slot     INTEGER PRIMARY KEY CHECK (slot BETWEEN 0 AND 63),
	at       INTEGER NOT NULL DEFAULT 0,
	selector TEXT    NOT NULL DEFAULT ''
) STRICT;
CREATE INDEX recent_decoys_at ON recent_decoys (at);

WITH RECURSIVE slots(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM slots WHERE n < 63)
INSERT INTO recent_decoys (slot) SELECT n FROM slots;
