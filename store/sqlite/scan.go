package sqlite

import (
	"database/sql"
	"time"

	"github.com/crmhook/crmhook"
	"github.com/crmhook/crmhook/store/internal/sqlstore"
)

// Times are stored as unix microseconds: finer than any test or operator
// needs, the precision Postgres keeps, and without the year-2262 limit of
// nanoseconds. The zero time is stored as NULL (optional columns) or 0.

func micros(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

func nullMicros(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixMicro()
}

func fromMicros(v sql.NullInt64) time.Time {
	if !v.Valid || v.Int64 == 0 {
		return time.Time{}
	}
	return time.UnixMicro(v.Int64).UTC()
}

type scanner interface{ Scan(dest ...any) error }

const eventColumns = `id, source, provider, type, dedupe_key, occurred_at, received_at, payload`

func scanEvent(sc scanner, extra ...any) (crmhook.Event, error) {
	var (
		ev                 crmhook.Event
		provider           string
		occurred, received sql.NullInt64
		payload            []byte
	)
	dest := append([]any{&ev.ID, &ev.Source, &provider, &ev.Type, &ev.DedupeKey, &occurred, &received, &payload}, extra...)
	if err := sc.Scan(dest...); err != nil {
		return crmhook.Event{}, err
	}
	ev.Provider = crmhook.Provider(provider)
	ev.OccurredAt = fromMicros(occurred)
	ev.ReceivedAt = fromMicros(received)
	// The driver may reuse its buffer; the event owns its payload.
	ev.Payload = append([]byte(nil), payload...)
	return ev, nil
}

const deliveryColumns = sqlstore.DeliveryColumns

func scanDelivery(sc scanner, extra ...any) (crmhook.Delivery, error) {
	return sqlstore.ScanDelivery(sc.Scan, fromMicros, extra...)
}
