-- 0002: the offline invocation queue (as SQLite's 0002 says).
CREATE TABLE invocations (
	request_id  TEXT    PRIMARY KEY CHECK (request_id <> ''),
	device_id   TEXT    NOT NULL CHECK (device_id <> ''),
	capability  TEXT    NOT NULL CHECK (capability <> ''),
	args        BYTEA,
	caller      TEXT    NOT NULL DEFAULT '',
	created_at  BIGINT  NOT NULL,
	expires_at  BIGINT  NOT NULL CHECK (expires_at > created_at),
	timeout_ns  BIGINT  NOT NULL CHECK (timeout_ns > 0),
	state       TEXT    NOT NULL CONSTRAINT invocations_state_check
		CHECK (state IN ('queued', 'delivered', 'done', 'expired')),
	attempts    INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
	result      BYTEA,
	finished_at BIGINT
);

CREATE INDEX invocations_device_state ON invocations (device_id, state);
CREATE INDEX invocations_state_expiry ON invocations (state, expires_at);
