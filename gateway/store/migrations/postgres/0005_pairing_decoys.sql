-- 0005: the pairing attempts on selectors with no open code (as SQLite's
-- 0005 says).
CREATE TABLE pairing_decoys (
	id       INTEGER PRIMARY KEY CHECK (id = 1),
	answered BIGINT  NOT NULL DEFAULT 0 CHECK (answered >= 0)
);

INSERT INTO pairing_decoys (id) VALUES (1);

CREATE TABLE recent_decoys (
	slot     INTEGER PRIMARY KEY CHECK (slot BETWEEN 0 AND 63),
	at       BIGINT  NOT NULL DEFAULT 0,
	selector TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX recent_decoys_at ON recent_decoys (at);

INSERT INTO recent_decoys (slot) SELECT generate_series(0, 63);
