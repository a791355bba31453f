-- 0001: events, deliveries, dedupe keys and rejections.
-- Times are unix microseconds (the precision Postgres keeps too); NULL or 0
-- stands for the zero time.

CREATE TABLE events (
	id          TEXT PRIMARY KEY,
	source      TEXT NOT NULL,
	provider    TEXT NOT NULL,
	type        TEXT NOT NULL,
	dedupe_key  TEXT NOT NULL,
	occurred_at INTEGER,
	received_at INTEGER NOT NULL,
	payload     BLOB NOT NULL
) STRICT;

-- Listings are newest first.
CREATE INDEX events_received_at ON events (received_at, id);
CREATE INDEX events_source_received_at ON events (source, received_at);

CREATE TABLE deliveries (
	id              INTEGER PRIMARY KEY,
	event_id        TEXT NOT NULL REFERENCES events (id) ON DELETE CASCADE,
	sink            TEXT NOT NULL,
	state           TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'dead')),
	attempts        INTEGER NOT NULL DEFAULT 0,
	next_attempt_at INTEGER NOT NULL,
	leased_until    INTEGER,
	lease_token     TEXT,
	lease_owner     TEXT,
	last_error      TEXT NOT NULL DEFAULT '',
	created_at      INTEGER NOT NULL,
	updated_at      INTEGER NOT NULL,
	delivered_at    INTEGER,
	-- Also the index of deliveries by event (GetEvent, the cascade, Prune).
	UNIQUE (event_id, sink)
) STRICT;

-- Claims: due pending deliveries, oldest due first.
CREATE INDEX deliveries_due ON deliveries (state, next_attempt_at, id);
-- Stats: the oldest pending delivery.
CREATE INDEX deliveries_state_created ON deliveries (state, created_at);

-- A key is a redelivery while expires_at is in the future. It deliberately
-- has no foreign key to events: the window may outlive the event's retention.
CREATE TABLE dedupe_keys (
	key        TEXT PRIMARY KEY,
	event_id   TEXT NOT NULL,
	expires_at INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

CREATE INDEX dedupe_keys_expires_at ON dedupe_keys (expires_at);

CREATE TABLE rejections (
	id          INTEGER PRIMARY KEY,
	event_id    TEXT NOT NULL,
	source      TEXT NOT NULL,
	provider    TEXT NOT NULL,
	type        TEXT NOT NULL,
	dedupe_key  TEXT NOT NULL,
	occurred_at INTEGER,
	received_at INTEGER NOT NULL,
	payload     BLOB NOT NULL,
	reason      TEXT NOT NULL,
	rejected_at INTEGER NOT NULL,
	released_at INTEGER
) STRICT;

CREATE INDEX rejections_rejected_at ON rejections (rejected_at, id);
