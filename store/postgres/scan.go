package postgres

import (
	"time"

	"github.com/crmhook/crmhook"
	"github.com/crmhook/crmhook/store/internal/sqlstore"
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

const deliveryColumns = sqlstore.DeliveryColumns

func scanDelivery(row pgx.Row, extra ...any) (crmhook.Delivery, error) {
	return sqlstore.ScanDelivery(row.Scan, fromNull, extra...)
}
