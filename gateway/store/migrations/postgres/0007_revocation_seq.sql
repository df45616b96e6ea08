-- 0007: every revocation gets a sequence number (as SQLite's 0007 says).
-- Not a SEQUENCE: its numbers are taken at insert, not at commit, so a
-- revocation committed late could carry a number below one a gateway has
-- already read past. MAX + 1 under SERIALIZABLE makes concurrent revokers
-- conflict instead, and the one run again takes the next number.
ALTER TABLE revocations ADD COLUMN seq BIGINT;

UPDATE revocations SET seq = n.seq
	FROM (SELECT device_id, ROW_NUMBER() OVER (ORDER BY revoked_at, device_id) AS seq FROM revocations) n
	WHERE revocations.device_id = n.device_id;

ALTER TABLE revocations ALTER COLUMN seq SET NOT NULL;
CREATE UNIQUE INDEX revocations_seq ON revocations (seq);
