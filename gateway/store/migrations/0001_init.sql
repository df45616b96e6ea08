-- 0001: the gateway's initial schema.
--
-- Times are Unix nanoseconds (INTEGER), NULL when unset. Device IDs are the
-- canonical text form of identity.DeviceID. Secrets (PIN secret, link secret,
-- grant key) are cleared as soon as the row leaves the state that needs them.

-- The gateway CA: one row at most. Its key is why the file is mode 0600.
CREATE TABLE ca (
	id         INTEGER PRIMARY KEY CHECK (id = 1),
	cert_pem   BLOB    NOT NULL,
	key_pem    BLOB    NOT NULL,
	created_at INTEGER NOT NULL
) STRICT;

-- Pairing codes: open -> used | expired | closed.
CREATE TABLE pairing_codes (
	id              INTEGER PRIMARY KEY AUTOINCREMENT,
	selector        TEXT    NOT NULL CHECK (selector <> ''),
	name            TEXT    NOT NULL DEFAULT '',
	pin_secret      TEXT,             -- NULL once the code is no longer open
	link_secret     BLOB,             -- NULL once the code is no longer open
	auto_approve    INTEGER NOT NULL CHECK (auto_approve IN (0, 1)),
	created_at      INTEGER NOT NULL,
	expires_at      INTEGER NOT NULL CHECK (expires_at > created_at),
	state           TEXT    NOT NULL CHECK (state IN ('open', 'used', 'expired', 'closed')),
	failed_attempts INTEGER NOT NULL DEFAULT 0 CHECK (failed_attempts BETWEEN 0 AND 10)
) STRICT;

-- At most one open code per selector: the selector is how a PIN names its code.
CREATE UNIQUE INDEX pairing_codes_open_selector ON pairing_codes (selector) WHERE state = 'open';
CREATE INDEX pairing_codes_state_expiry ON pairing_codes (state, expires_at);

-- Pairing requests: pending -> approved | rejected | expired; approved -> issued.
CREATE TABLE pairing_requests (
	id                 TEXT    PRIMARY KEY CHECK (id <> ''),
	code_id            INTEGER NOT NULL REFERENCES pairing_codes (id),
	device_id          TEXT    NOT NULL CHECK (device_id <> ''),
	public_key         BLOB    NOT NULL,
	name               TEXT    NOT NULL,
	platform           TEXT    NOT NULL,
	csr                BLOB    NOT NULL,
	verification_code  TEXT    NOT NULL,
	grant_key          BLOB,             -- NULL once issued, rejected or expired
	state              TEXT    NOT NULL CHECK (state IN ('pending', 'approved', 'rejected', 'expired', 'issued')),
	created_at         INTEGER NOT NULL,
	expires_at         INTEGER NOT NULL,
	decided_at         INTEGER,
	certificate_serial TEXT    NOT NULL DEFAULT ''
) STRICT;

CREATE INDEX pairing_requests_state_expiry ON pairing_requests (state, expires_at);
CREATE INDEX pairing_requests_created ON pairing_requests (created_at);

-- Paired devices.
CREATE TABLE devices (
	id         TEXT    PRIMARY KEY,
	public_key BLOB    NOT NULL,
	name       TEXT    NOT NULL,
	platform   TEXT    NOT NULL,
	paired_at  INTEGER NOT NULL
) STRICT;

-- Certificates issued to devices (first issue and renewals).
CREATE TABLE certificates (
	serial     TEXT    PRIMARY KEY CHECK (serial <> ''),
	device_id  TEXT    NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
	not_before INTEGER NOT NULL,
	not_after  INTEGER NOT NULL CHECK (not_after > not_before),
	der        BLOB    NOT NULL,
	recorded_at INTEGER NOT NULL
) STRICT;

CREATE INDEX certificates_device ON certificates (device_id, not_after);

-- Revocations outlive the device row on purpose: a removed device's
-- still-valid certificate must stay refused. No foreign key to devices.
CREATE TABLE revocations (
	device_id  TEXT    PRIMARY KEY,
	revoked_at INTEGER NOT NULL
) STRICT;

-- What a registered node said about itself. Presence is kept in memory.
CREATE TABLE nodes (
	device_id TEXT    PRIMARY KEY REFERENCES devices (id) ON DELETE CASCADE,
	name      TEXT    NOT NULL,
	platform  TEXT    NOT NULL,
	version   TEXT    NOT NULL,
	last_seen INTEGER
) STRICT;

-- Audit log. Never holds PIN secrets, link secrets or grant keys.
CREATE TABLE audit_log (
	id         INTEGER PRIMARY KEY AUTOINCREMENT,
	at         INTEGER NOT NULL,
	kind       TEXT    NOT NULL CHECK (kind <> ''),
	device_id  TEXT    NOT NULL DEFAULT '',
	request_id TEXT    NOT NULL DEFAULT '',
	detail     TEXT    NOT NULL DEFAULT ''
) STRICT;
