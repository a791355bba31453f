-- 0002: the provider side's state: source secrets, rotations in progress,
-- what the watchdog last saw of each subscription, the gaps it found, and
-- named leases for singleton jobs. Times are unix microseconds; NULL
-- stands for the zero time.

-- Secrets a source accepts besides those of the config file. secret is the
-- secret itself: Attio shows a webhook's secret once, on create.
CREATE TABLE secrets (
	id              INTEGER PRIMARY KEY,
	source          TEXT NOT NULL,
	secret          TEXT NOT NULL,
	subscription_id TEXT NOT NULL DEFAULT '',
	state           TEXT NOT NULL CHECK (state IN ('active', 'retiring', 'retired')),
	created_at      INTEGER NOT NULL,
	retire_at       INTEGER
) STRICT;

-- ListSecrets: a source's secrets, oldest first.
CREATE INDEX secrets_source_created ON secrets (source, created_at, id);

-- At most one rotation per source. grace_ns is a duration in nanoseconds;
-- data is the rotation's provider state, byte for byte.
CREATE TABLE rotations (
	source        TEXT PRIMARY KEY,
	phase         TEXT NOT NULL,
	new_secret_id INTEGER NOT NULL,
	grace_ns      INTEGER NOT NULL,
	started_at    INTEGER NOT NULL,
	updated_at    INTEGER NOT NULL,
	data          BLOB NOT NULL
) STRICT, WITHOUT ROWID;

CREATE TABLE subscription_states (
	source          TEXT NOT NULL,
	subscription_id TEXT NOT NULL,
	status          TEXT NOT NULL,
	last_checked_at INTEGER,
	last_healthy_at INTEGER,
	PRIMARY KEY (source, subscription_id)
) STRICT, WITHOUT ROWID;

CREATE TABLE gaps (
	id              INTEGER PRIMARY KEY,
	source          TEXT NOT NULL,
	subscription_id TEXT NOT NULL,
	from_at         INTEGER NOT NULL,
	to_at           INTEGER,
	recorded_at     INTEGER NOT NULL
) STRICT;

-- ListGaps: newest first (by recorded_at), of one source or of all.
CREATE INDEX gaps_source_recorded ON gaps (source, recorded_at, id);
CREATE INDEX gaps_recorded ON gaps (recorded_at, id);

-- A lease is held by owner until expires_at; after that anyone may take it.
CREATE TABLE leases (
	name       TEXT PRIMARY KEY,
	owner      TEXT NOT NULL,
	expires_at INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
