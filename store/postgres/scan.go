package postgres

import (
	"time"

	"github.com/crmhook/crmhook"
	"github.com/jackc/pgx/v5"
)

// Times are timestamptz, which keeps microseconds; the zero time is NULL.

func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func fromNull(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.UTC()
}

const eventColumns = `id, source, provider, type, dedupe_key, occurred_at, received_at, payload`

// rejectionEventColumns are the rejected event's columns of rejections.
const rejectionEventColumns = `event_id, source, provider, type, dedupe_key, occurred_at, received_at, payload`

// eventScan holds one event's columns while they are scanned.
type eventScan struct {
	ev                 crmhook.Event
	provider           string
	occurred, received *time.Time
	payload            []byte
}

func (e *eventScan) dest() []any {
	return []any{&e.ev.ID, &e.ev.Source, &e.provider, &e.ev.Type, &e.ev.DedupeKey, &e.occurred, &e.received, &e.payload}
}

func (e *eventScan) event() crmhook.Event {
	ev := e.ev
	ev.Provider = crmhook.Provider(e.provider)
	ev.OccurredAt = fromNull(e.occurred)
	ev.ReceivedAt = fromNull(e.received)
	ev.Payload = e.payload // pgx copies bytea into a fresh slice
	return ev
}

func scanEvent(row pgx.Row, extra ...any) (crmhook.Event, error) {
	var es eventScan
	if err := row.Scan(append(es.dest(), extra...)...); err != nil {
		return crmhook.Event{}, err
	}
	return es.event(), nil
}

const deliveryColumns = `id, event_id, sink, state, attempts, next_attempt_at, leased_until, last_error, created_at, updated_at, delivered_at`

func scanDelivery(row pgx.Row, extra ...any) (crmhook.Delivery, error) {
	var (
		d                                       crmhook.Delivery
		state                                   string
		next, leased, created, updated, deliver *time.Time
	)
	dest := append([]any{&d.ID, &d.EventID, &d.Sink, &state, &d.Attempts, &next, &leased, &d.LastError, &created, &updated, &deliver}, extra...)
	if err := row.Scan(dest...); err != nil {
		return crmhook.Delivery{}, err
	}
	d.State = crmhook.DeliveryState(state)
	d.NextAttemptAt = fromNull(next)
	d.LeasedUntil = fromNull(leased)
	d.CreatedAt = fromNull(created)
	d.UpdatedAt = fromNull(updated)
	d.DeliveredAt = fromNull(deliver)
	return d, nil
}
