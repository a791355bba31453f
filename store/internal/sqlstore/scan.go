package sqlstore

import (
	"time"

	"github.com/crmhook/crmhook"
)

// DeliveryColumns are the columns of deliveries ScanDelivery reads, in its
// order.
const DeliveryColumns = `id, event_id, sink, state, attempts, next_attempt_at, leased_until, last_error, created_at, updated_at, delivered_at`

// ScanDelivery scans DeliveryColumns, then extra, with scan (a driver's
// row Scan). T is what the driver scans a nullable time column into, and
// toTime turns it into a time, zero for NULL.
func ScanDelivery[T any](scan func(dest ...any) error, toTime func(T) time.Time, extra ...any) (crmhook.Delivery, error) {
	var (
		d                                       crmhook.Delivery
		state                                   string
		next, leased, created, updated, deliver T
	)
	dest := append([]any{&d.ID, &d.EventID, &d.Sink, &state, &d.Attempts, &next, &leased, &d.LastError, &created, &updated, &deliver}, extra...)
	if err := scan(dest...); err != nil {
		return crmhook.Delivery{}, err
	}
	d.State = crmhook.DeliveryState(state)
	d.NextAttemptAt = toTime(next)
	d.LeasedUntil = toTime(leased)
	d.CreatedAt = toTime(created)
	d.UpdatedAt = toTime(updated)
	d.DeliveredAt = toTime(deliver)
	return d, nil
}
