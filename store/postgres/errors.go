package postgres

import (
	"context"
	"errors"

	"github.com/crmhook/crmhook/store/internal/sqlstore"
	"github.com/jackc/pgx/v5/pgconn"
)

// errAlreadyReleased is what releasing a rejection a second time returns.
var errAlreadyReleased = sqlstore.ErrAlreadyReleased

// fail labels err for op and sorts it, as the SQLite store does. Errors
// already sorted and errors about one request (a constraint, bad data) pass
// through; everything else (a lost connection, a server shutting down, out
// of disk, a pool that cannot connect) means the store cannot serve now and
// wraps crmhook.ErrUnavailable, which the receiver answers with 503. After
// Close, those are crmhook.ErrClosed.
func (s *Store) fail(ctx context.Context, op string, err error) error {
	return sqlstore.Classify(ctx, "postgres: "+op, err, s.closed.Load(), isAboutRequest)
}

// failTx is fail for BEGIN and COMMIT: whatever their error, the
// transaction did not happen because of the store, not the request.
func (s *Store) failTx(ctx context.Context, op string, err error) error {
	return sqlstore.ClassifyTx(ctx, "postgres: "+op, err, s.closed.Load(), isAboutRequest)
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
func isUnavailable(err error) bool { return sqlstore.IsUnavailable(err) }

// isTransient reports whether err is a deadlock or serialization failure:
// Postgres rolled the transaction back, and running it again may succeed.
func isTransient(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40P01" || pe.Code == "40001")
}
