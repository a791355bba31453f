package sqlite

import (
	"context"
	"errors"
	"fmt"

	"github.com/crmhook/crmhook"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// errAlreadyReleased is what releasing a rejection a second time returns.
var errAlreadyReleased = errors.New("rejection already released")

// fail labels err for op and sorts it. Errors already sorted (the store's
// sentinels, the caller's cancellation) and errors about one request (a
// constraint, a malformed statement) pass through; everything else (I/O,
// disk full, read-only file, lock timeouts, a closed database handle) means
// the store cannot serve now and wraps crmhook.ErrUnavailable, which the
// receiver answers with 503. After Close, those are crmhook.ErrClosed.
func (s *Store) fail(ctx context.Context, op string, err error) error {
	switch {
	case err == nil:
		return nil
	case isSorted(err) || isAboutRequest(err):
		return fmt.Errorf("sqlite: %s: %w", op, err)
	case ctx.Err() != nil:
		// The driver reports an interrupted statement in its own words.
		return fmt.Errorf("sqlite: %s: %w", op, ctx.Err())
	case s.closed.Load():
		return fmt.Errorf("sqlite: %s: %w", op, crmhook.ErrClosed)
	}
	return fmt.Errorf("sqlite: %s: %w: %w", op, crmhook.ErrUnavailable, err)
}

// failTx is fail for BEGIN and COMMIT: whatever their error, the
// transaction did not happen because of the store, not the request.
func (s *Store) failTx(ctx context.Context, op string, err error) error {
	if isSorted(err) || ctx.Err() != nil || s.closed.Load() {
		return s.fail(ctx, op, err)
	}
	return fmt.Errorf("sqlite: %s: %w: %w", op, crmhook.ErrUnavailable, err)
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
func isUnavailable(err error) bool {
	return errors.Is(err, crmhook.ErrUnavailable) || errors.Is(err, crmhook.ErrClosed)
}
