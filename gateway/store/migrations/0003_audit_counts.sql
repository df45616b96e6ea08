-- 0003: a bounded audit log.
--
-- Attempts refused before the client authenticated (pairing hellos for no
-- open code, failed key confirmations, node handshakes with certificates
-- the gateway does not accept) are counted rather than written one by one:
-- an aggregated row stands for count events of its kind, source (the
-- client's IP address), device and request in the minute that starts at its
-- at; its detail is the first one's. Rows older than the gateway's audit
-- retention are deleted by its sweeper, oldest first (hence the index on at).
ALTER TABLE audit_log ADD COLUMN source TEXT NOT NULL DEFAULT '';
ALTER TABLE audit_log ADD COLUMN count INTEGER NOT NULL DEFAULT 1 CHECK (count >= 1);
ALTER TABLE audit_log ADD COLUMN aggregated INTEGER NOT NULL DEFAULT 0 CHECK (aggregated IN (0, 1));

-- One aggregated row per key and minute: later counts are added to it.
CREATE UNIQUE INDEX audit_log_minute ON audit_log (kind, source, device_id, request_id, at) WHERE aggregated = 1;
CREATE INDEX audit_log_at ON audit_log (at);
