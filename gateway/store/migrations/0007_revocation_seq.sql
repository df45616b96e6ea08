-- 0007: every revocation gets a sequence number, so that a gateway can ask
-- for the revocations it has not applied yet (seq above the last one it
-- did) instead of reading them all. Numbers are taken as MAX + 1 in the
-- revoking transaction, so they are unique and, where several gateways
-- share a database, in commit order: a reader that saw seq N never sees a
-- smaller number appear later.
ALTER TABLE revocations ADD COLUMN seq INTEGER NOT NULL DEFAULT 0;

UPDATE revocations SET seq = (SELECT COUNT(*) FROM revocations r
	WHERE r.revoked_at < revocations.revoked_at
	   OR (r.revoked_at = revocations.revoked_at AND r.device_id <= revocations.device_id));

CREATE UNIQUE INDEX revocations_seq ON revocations (seq);
