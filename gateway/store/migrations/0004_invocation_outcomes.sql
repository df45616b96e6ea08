-- 0004: queued calls an admin can list, wait for and cancel.
--
-- A finished call now says how it ended: done (its result says ok), failed
-- (its result says not ok), expired, or cancelled (by an admin; a result
-- that comes after is discarded): queued -> delivered; queued | delivered
-- -> done | failed | expired | cancelled. SQLite cannot change a CHECK
-- constraint, so the table is rebuilt; calls that ended before this
-- migration are failed when their audit row says so.
CREATE TABLE invocations_new (
	request_id  TEXT    PRIMARY KEY CHECK (request_id <> ''),
	device_id   TEXT    NOT NULL CHECK (device_id <> ''),
	capability  TEXT    NOT NULL CHECK (capability <> ''),
	args        BLOB,
	caller      TEXT    NOT NULL DEFAULT '',
	created_at  INTEGER NOT NULL,
	expires_at  INTEGER NOT NULL CHECK (expires_at > created_at),
	timeout_ns  INTEGER NOT NULL CHECK (timeout_ns > 0),
	state       TEXT    NOT NULL CHECK (state IN ('queued', 'delivered', 'done', 'failed', 'expired', 'cancelled')),
	attempts    INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
	result      BLOB,                                         -- set when done, failed or cancelled
	finished_at INTEGER                                       -- set once it ended
) STRICT;

INSERT INTO invocations_new
	SELECT request_id, device_id, capability, args, caller, created_at, expires_at, timeout_ns,
		CASE WHEN state = 'done' AND request_id IN
			(SELECT request_id FROM audit_log WHERE kind = 'invocation.failed' AND request_id <> '')
		THEN 'failed' ELSE state END,
		attempts, result, finished_at
	FROM invocations;

DROP TABLE invocations;
ALTER TABLE invocations_new RENAME TO invocations;

CREATE INDEX invocations_device_state ON invocations (device_id, state);
CREATE INDEX invocations_state_expiry ON invocations (state, expires_at);
-- Listings are newest first.
CREATE INDEX invocations_created ON invocations (created_at);
