-- 0002: the offline invocation queue.
--
-- Calls queued for a node that was offline, kept until a result arrives or
-- their queue TTL passes: queued -> delivered -> done; queued | delivered ->
-- expired. A delivered call is delivered again after a reconnect; the node
-- runs a request ID at most once. Args and result are never copied into the
-- audit log.
--
-- No foreign key to devices: a finished call's result stays readable after
-- its device is removed.
CREATE TABLE invocations (
	request_id  TEXT    PRIMARY KEY CHECK (request_id <> ''),  -- a ULID, canonical text form
	device_id   TEXT    NOT NULL CHECK (device_id <> ''),
	capability  TEXT    NOT NULL CHECK (capability <> ''),
	args        BLOB,                                         -- JSON; NULL when none
	caller      TEXT    NOT NULL DEFAULT '',
	created_at  INTEGER NOT NULL,
	expires_at  INTEGER NOT NULL CHECK (expires_at > created_at),
	timeout_ns  INTEGER NOT NULL CHECK (timeout_ns > 0),       -- per-delivery deadline
	state       TEXT    NOT NULL CHECK (state IN ('queued', 'delivered', 'done', 'expired')),
	attempts    INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
	result      BLOB,                                         -- set when done
	finished_at INTEGER                                       -- set when done or expired
) STRICT;

CREATE INDEX invocations_device_state ON invocations (device_id, state);
CREATE INDEX invocations_state_expiry ON invocations (state, expires_at);
