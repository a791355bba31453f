-- 0002: the provider side's state: source secrets, rotations in progress,
-- what the watchdog last saw of each subscription, the gaps it found, and
-- named leases that let one replica at a time run a singleton job. Times
-- are timestamptz; NULL stands for the zero time.

-- Secrets a source accepts besides those of the config file. secret is the
-- secret itself: Attio shows a webhook's secret once, on create.
CREATE TABLE secrets (
	id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	source          text NOT NULL,
	secret          text NOT NULL,
	subscription_id text NOT NULL DEFAULT '',
	state           text NOT NULL CHECK (state IN ('active', 'retiring', 'retired')),
	created_at      timestamptz NOT NULL,
	retire_at       timestamptz
);

-- ListSecrets: a source's secrets, oldest first.
CREATE INDEX secrets_source_created ON secrets (source, created_at, id);

-- At most one rotation per source. grace_ns is a duration in nanoseconds;
-- data is the rotation's provider state, byte for byte.
CREATE TABLE rotations (
	source        text PRIMARY KEY,
	phase         text NOT NULL,
	new_secret_id bigint NOT NULL,
	grace_ns      bigint NOT NULL,
	started_at    timestamptz NOT NULL,
	updated_at    timestamptz NOT NULL,
	data          bytea NOT NULL
);

CREATE TABLE subscription_states (
	source          text NOT NULL,
	subscription_id text NOT NULL,
	status          text NOT NULL,
	last_checked_at timestamptz,
	last_healthy_at timestamptz,
	PRIMARY KEY (source, subscription_id)
);

CREATE TABLE gaps (
	id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	source          text NOT NULL,
	subscription_id text NOT NULL,
	from_at         timestamptz NOT NULL,
	to_at           timestamptz,
	recorded_at     timestamptz NOT NULL
);

-- ListGaps: newest first (by recorded_at), of one source or of all.
CREATE INDEX gaps_source_recorded ON gaps (source, recorded_at, id);
CREATE INDEX gaps_recorded ON gaps (recorded_at, id);

-- A lease is held by owner until expires_at; after that anyone may take it.
CREATE TABLE leases (
	name       text PRIMARY KEY,
	owner      text NOT NULL,
	expires_at timestamptz NOT NULL
);
