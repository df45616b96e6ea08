-- 0006: the gateways of one database, and which of them holds which node.
--
-- Only gateways on PostgreSQL use these tables (on SQLite a gateway is
-- alone); SQLite has them so that a version means one schema on both.
--
-- A gateway holds a lease on its row, renewed every few seconds; a gateway
-- whose lease has lapsed is dead to the others, and so are its routes.
-- node_addresses are the addresses it tells nodes (a JSON array);
-- peer_address is where the other gateways reach it.
CREATE TABLE gateways (
	id             TEXT    PRIMARY KEY CHECK (id <> ''),
	node_addresses TEXT    NOT NULL,
	peer_address   TEXT    NOT NULL,
	started_at     INTEGER NOT NULL,
	lease_expires  INTEGER NOT NULL
) STRICT;

-- A route is one attached session: written when it attaches, deleted when
-- it detaches (by its own gateway and epoch only, so a late detach of an
-- old session never removes the newer one). A device has more than one
-- route only for a moment (a reconnect through another gateway) or while
-- a dead gateway's lease runs out; the route with the highest seq, of a
-- gateway whose lease is live, is the one that counts.
CREATE TABLE routes (
	seq         INTEGER PRIMARY KEY AUTOINCREMENT,
	device_id   TEXT    NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
	gateway_id  TEXT    NOT NULL REFERENCES gateways (id) ON DELETE CASCADE,
	epoch       INTEGER NOT NULL CHECK (epoch > 0),
	attached_at INTEGER NOT NULL,
	UNIQUE (device_id, gateway_id, epoch)
) STRICT;
CREATE INDEX routes_gateway ON routes (gateway_id);
