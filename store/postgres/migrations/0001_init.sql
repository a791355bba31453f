-- 0001: events, deliveries, dedupe keys and rejections. Times are
-- timestamptz (microseconds); NULL stands for the zero time.

CREATE TABLE events (
	id          text PRIMARY KEY,
	source      text NOT NULL,
	provider    text NOT NULL,
	type        text NOT NULL,
	dedupe_key  text NOT NULL,
	occurred_at timestamptz,
	received_at timestamptz NOT NULL,
	payload     bytea NOT NULL
);

-- Listings are newest first.
CREATE INDEX events_received_at ON events (received_at, id);
CREATE INDEX events_source_received_at ON events (source, received_at);

CREATE TABLE deliveries (
	id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	event_id        text NOT NULL REFERENCES events (id) ON DELETE CASCADE,
	sink            text NOT NULL,
	state           text NOT NULL CHECK (state IN ('pending', 'delivered', 'dead')),
	attempts        integer NOT NULL DEFAULT 0,
	next_attempt_at timestamptz NOT NULL,
	leased_until    timestamptz,
	lease_token     text,
	lease_owner     text,
	last_error      text NOT NULL DEFAULT '',
	created_at      timestamptz NOT NULL,
	updated_at      timestamptz NOT NULL,
	delivered_at    timestamptz,
	-- Also the index of deliveries by event (GetEvent, the cascade, Prune).
	UNIQUE (event_id, sink)
);

-- Claims: due pending deliveries, oldest due first. Partial, so delivered
-- history does not bloat the index the dispatchers scan.
CREATE INDEX deliveries_due ON deliveries (next_attempt_at, id) WHERE state = 'pending';
-- Stats and listings by state; the oldest pending delivery.
CREATE INDEX deliveries_state_created ON deliveries (state, created_at);

-- A key is a redelivery while expires_at is in the future. It deliberately
-- has no foreign key to events: the window may outlive the event's retention.
CREATE TABLE dedupe_keys (
	key        text PRIMARY KEY,
	event_id   text NOT NULL,
	expires_at timestamptz NOT NULL
);

CREATE INDEX dedupe_keys_expires_at ON dedupe_keys (expires_at);

CREATE TABLE rejections (
	id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	event_id    text NOT NULL,
	source      text NOT NULL,
	provider    text NOT NULL,
	type        text NOT NULL,
	dedupe_key  text NOT NULL,
	occurred_at timestamptz,
	received_at timestamptz NOT NULL,
	payload     bytea NOT NULL,
	reason      text NOT NULL,
	rejected_at timestamptz NOT NULL,
	released_at timestamptz
);

CREATE INDEX rejections_rejected_at ON rejections (rejected_at, id);
