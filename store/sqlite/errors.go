package sqlite

import (
	"context"
	"errors"

	"github.com/crmhook/crmhook/store/internal/sqlstore"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// errAlreadyReleased is what releasing a rejection a second time returns.
var errAlreadyReleased = sqlstore.ErrAlreadyReleased

// fail labels err for op and sorts it. Errors already sorted (the store's
// sentinels, the caller's cancellation) and errors about one request (a
// constraint, a malformed statement) pass through; everything else (I/O,
// disk full, read-only file, lock timeouts, a closed database handle) means
// the store cannot serve now and wraps crmhook.ErrUnavailable, which the
// receiver answers with 503. After Close, those are crmhook.ErrClosed.
func (s *Store) fail(ctx context.Context, op string, err error) error {
	return sqlstore.Classify(ctx, "sqlite: "+op, err, s.closed.Load(), isAboutRequest)
}

// failTx is fail for BEGIN and COMMIT: whatever their error, the
// transaction did not happen because of the store, not the request.
func (s *Store) failTx(ctx context.Context, op string, err error) error {
	return sqlstore.ClassifyTx(ctx, "sqlite: "+op, err, s.closed.Load(), isAboutRequest)
}

// isSorted reports whether err already says what kind of failure it is.
func isSorted(err error) bool { return sqlstore.IsSorted(err) }

// isAboutRequest reports whether SQLite refused the request itself rather
// than failed to serve it.
func isAboutRequest(err error) bool {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	switch se.Code() & 0xff { // the primary code of an extended one
	case sqlite3.SQLITE_CONSTRAINT, sqlite3.SQLITE_MISMATCH, sqlite3.SQLITE_RANGE,
		sqlite3.SQLITE_TOOBIG, sqlite3.SQLITE_ERROR:
		return true
	}
	return false
}

// isUnavailable reports whether err (already through fail) means the store,
// not the request, failed.
func isUnavailable(err error) bool { return sqlstore.IsUnavailable(err) }
