-- 0003: a bounded audit log (as SQLite's 0003 says).
ALTER TABLE audit_log ADD COLUMN source TEXT NOT NULL DEFAULT '';
ALTER TABLE audit_log ADD COLUMN count INTEGER NOT NULL DEFAULT 1 CHECK (count >= 1);
ALTER TABLE audit_log ADD COLUMN aggregated INTEGER NOT NULL DEFAULT 0 CHECK (aggregated IN (0, 1));

CREATE UNIQUE INDEX audit_log_minute ON audit_log (kind, source, device_id, request_id, at) WHERE aggregated = 1;
CREATE INDEX audit_log_at ON audit_log (at);
