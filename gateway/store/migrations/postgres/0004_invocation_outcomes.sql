-- 0004: queued calls an admin can list, wait for and cancel (as SQLite's
-- 0004 says). PostgreSQL can change a CHECK constraint in place.
ALTER TABLE invocations DROP CONSTRAINT invocations_state_check;
ALTER TABLE invocations ADD CONSTRAINT invocations_state_check
	CHECK (state IN ('queued', 'delivered', 'done', 'failed', 'expired', 'cancelled'));

UPDATE invocations SET state = 'failed'
	WHERE state = 'done' AND request_id IN
		(SELECT request_id FROM audit_log WHERE kind = 'invocation.failed' AND request_id <> '');

CREATE INDEX invocations_created ON invocations (created_at);
