package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/crmhook/crmhook"
	"github.com/jackc/pgx/v5/pgconn"
)

// errAlreadyReleased is what releasing a rejection a second time returns.
var errAlreadyReleased = errors.New("rejection already released")

// fail labels err for op and sorts it, as the SQLite store does. Errors
// already sorted and errors about one request (a constraint, bad data) pass
// through; everything else (a lost connection, a server shutting down, out
// of disk, a pool that cannot connect) means the store cannot serve now and
// wraps crmhook.ErrUnavailable, which the receiver answers with 503. After
// Close, those are crmhook.ErrClosed.
func (s *Store) fail(ctx context.Context, op string, err error) error {
	switch {
	case err == nil:
		return nil
	case isSorted(err) || isAboutRequest(err):
		return fmt.Errorf("postgres: %s: %w", op, err)
	case ctx.Err() != nil:
		return fmt.Errorf("postgres: %s: %w", op, ctx.Err())
	case s.closed.Load():
		return fmt.Errorf("postgres: %s: %w", op, crmhook.ErrClosed)
	}
	return fmt.Errorf("postgres: %s: %w: %w", op, crmhook.ErrUnavailable, err)
}

// failTx is fail for BEGIN and COMMIT: whatever their error, the
// transaction did not happen because of the store, not the request.
func (s *Store) failTx(ctx context.Context, op string, err error) error {
	if isSorted(err) || ctx.Err() != nil || s.closed.Load() {
		return s.fail(ctx, op, err)
	}
	return fmt.Errorf("postgres: %s: %w: %w", op, crmhook.ErrUnavailable, err)
}

// isSorted reports whether err already says what kind of failure it is.
func isSorted(err error) bool {
	for _, target := range []error{
		crmhook.ErrNotFound, crmhook.ErrLeaseLost, crmhook.ErrClosed, crmhook.ErrUnavailable,
		errAlreadyReleased, context.Canceled, context.DeadlineExceeded,
	} {
		if errors.Is(err, target) {
			return true
		}
	}
	return false
}

// isAboutRequest reports whether Postgres refused the request itself
// (integrity constraint, data exception, a statement it cannot run) rather
// than failed to serve it.
func isAboutRequest(err error) bool {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || len(pe.Code) < 2 {
		return false
	}
	switch pe.Code[:2] {
	case "22", "23", "42":
		return true
	}
	return false
}

// isUnavailable reports whether err (already through fail) means the store,
// not the request, failed.
func isUnavailable(err error) bool {
	return errors.Is(err, crmhook.ErrUnavailable) || errors.Is(err, crmhook.ErrClosed)
}

// isTransient reports whether err is a deadlock or serialization failure:
// Postgres rolled the transaction back, and running it again may succeed.
func isTransient(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40P01" || pe.Code == "40001")
}
