-- 0003: what the admin console reads, each on an index.
--
-- A delivery keeps its event's received_at, so that the deliveries waiting
-- in a state (pending, dead) list in the order of their events: the
-- console's "events with a dead delivery" and a sink's dead letters page
-- on (received_at, id) like every listing of events. Filled here once for
-- the deliveries stored before (one pass over the table).
ALTER TABLE deliveries ADD COLUMN event_received_at INTEGER NOT NULL DEFAULT 0;
UPDATE deliveries SET event_received_at = (SELECT received_at FROM events WHERE events.id = deliveries.event_id);

-- What waits (pending or dead), newest event first: the events with a
-- delivery in a state, a sink's dead letters, each sink's queue (sink is
-- in the index, so none of them reads a row to choose). Partial: a
-- delivered delivery leaves it, so it stays as small as the queue and the
-- dead letters, whatever the history. One index for all three: every
-- insert pays for each index of deliveries.
CREATE INDEX deliveries_waiting ON deliveries (state, event_received_at, event_id, sink)
	WHERE state <> 'delivered';
-- Activity: deliveries delivered per minute (only a delivered delivery
-- has a delivered_at: a replay clears it).
CREATE INDEX deliveries_delivered_at ON deliveries (delivered_at)
	WHERE delivered_at IS NOT NULL;
-- Activity: deliveries whose latest attempt failed (retrying or dead), by
-- when it failed; covering, so a count reads no row. A new delivery has no
-- attempt, so inserts skip it.
CREATE INDEX deliveries_failed_at ON deliveries (updated_at, state, attempts)
	WHERE state <> 'delivered' AND attempts > 0;

-- The console's search: the events stored under a dedupe key, also after
-- the key's window ended and dedupe_keys forgot it.
CREATE INDEX events_dedupe_key ON events (dedupe_key);

-- Rejections waiting for a release (the console's list, Stats' count).
CREATE INDEX rejections_waiting ON rejections (rejected_at, id)
	WHERE released_at IS NULL;
