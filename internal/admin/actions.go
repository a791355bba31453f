package admin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"

	"github.com/crmhook/crmhook"
)

// The admin's actions, one code path each for the JSON API and the
// console: checked the same way, logged the same way (ids and counts, never
// a payload), the dispatcher woken the same way. Each takes the logger of
// its caller, so that the log says which of them acted.

// MaxReplayIDs bounds the deliveries one replay selects by id.
const MaxReplayIDs = 1000

// requestError is an action refused as asked (HTTP 400): its message says
// why, for the person or program that asked.
type requestError struct{ msg string }

func (e *requestError) Error() string { return e.msg }

func refuse(format string, args ...any) error { return &requestError{fmt.Sprintf(format, args...)} }

// replay makes the deliveries f selects pending again (see
// crmhook.Store.Replay). It refuses an empty filter unless all is set
// (replaying everything is never an accident), a state other than
// delivered or dead, a sink that is not configured, and more than
// MaxReplayIDs ids.
func (m *Server) replay(ctx context.Context, log *slog.Logger, f crmhook.DeliveryFilter, all bool) (int, error) {
	empty := f.State == "" && f.Sink == "" && f.EventID == "" && f.Source == "" && f.Since.IsZero() && f.Until.IsZero() &&
		f.Limit == 0 && len(f.IDs) == 0
	if empty && !all {
		return 0, refuse("replay needs a filter (state, sink, event_id, source, since, until, delivery_ids) or \"all\": true")
	}
	if err := validState(f.State); err != nil || f.State == crmhook.StatePending {
		return 0, refuse("state must be delivered or dead")
	}
	if f.Sink != "" && !slices.Contains(m.Sinks, f.Sink) {
		return 0, refuse("no sink is named %q; the configured sinks are: %s", f.Sink, strings.Join(m.Sinks, ", "))
	}
	if len(f.IDs) > MaxReplayIDs {
		return 0, refuse("at most %d deliveries by id at once, not %d", MaxReplayIDs, len(f.IDs))
	}
	n, err := m.Store.Replay(ctx, f)
	if err != nil {
		return 0, err
	}
	attrs := []any{"action", "replay", "count", n, "state", f.State, "sink", f.Sink, "source", f.Source, "event_id", f.EventID}
	if len(f.IDs) > 0 {
		attrs = append(attrs, "delivery_ids", f.IDs)
	}
	log.Info("admin: replayed deliveries", attrs...)
	if n > 0 {
		m.Notify()
	}
	return n, nil
}

// release accepts a rejected event after all (see Releaser).
func (m *Server) release(ctx context.Context, log *slog.Logger, id int64) (crmhook.InsertResult, error) {
	res, err := m.Releaser.Release(ctx, id)
	if err != nil {
		return res, err
	}
	log.Info("admin: released a rejection", "action", "release", "rejection_id", id, "event_id", res.EventID, "duplicate", res.Duplicate)
	return res, nil
}

// actionError answers an action's error: a refusal as 400 with its
// message, anything else as storeError does.
func (m *Server) actionError(w http.ResponseWriter, err error) {
	var re *requestError
	if errors.As(err, &re) {
		writeJSON(w, http.StatusBadRequest, apiError{re.msg})
		return
	}
	m.storeError(w, err)
}
