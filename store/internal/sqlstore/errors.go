// Package sqlstore holds the driver-independent parts of the SQL stores:
// how a driver error is sorted into the crmhook error kinds (errors.go),
// how the embedded numbered migrations are read (migrations.go), the
// handoff between callers and group-committing writers (handoff.go),
// listing limits, claim order and row collection (query.go), the delivery
// columns and their scan (scan.go), pruning by chunks (prune.go), and what
// the ControlStore methods check and fill in before any SQL runs
// (control.go). Each driver keeps its own SQL and its own driver calls.
package sqlstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/crmhook/crmhook"
)

// ErrAlreadyReleased is what releasing a rejection a second time returns.
var ErrAlreadyReleased = crmhook.ErrAlreadyReleased

// Classify labels err with label (e.g. "postgres: list events") and sorts
// it. Errors already sorted and errors aboutRequest says are about one
// request (a constraint, bad data) pass through; everything else means the
// store cannot serve now and wraps crmhook.ErrUnavailable, which the
// receiver answers with 503. When ctx is done its error replaces the
// driver's (drivers report an interrupted statement in their own words);
// when closed, crmhook.ErrClosed does.
func Classify(ctx context.Context, label string, err error, closed bool, aboutRequest func(error) bool) error {
	switch {
	case err == nil:
		return nil
	case IsSorted(err) || aboutRequest(err):
		return fmt.Errorf("%s: %w", label, err)
	case ctx.Err() != nil:
		return fmt.Errorf("%s: %w", label, ctx.Err())
	case closed:
		return fmt.Errorf("%s: %w", label, crmhook.ErrClosed)
	}
	return fmt.Errorf("%s: %w: %w", label, crmhook.ErrUnavailable, err)
}

// ClassifyTx is Classify for BEGIN and COMMIT: whatever their error, the
// transaction did not happen because of the store, not the request.
func ClassifyTx(ctx context.Context, label string, err error, closed bool, aboutRequest func(error) bool) error {
	if IsSorted(err) || ctx.Err() != nil || closed {
		return Classify(ctx, label, err, closed, aboutRequest)
	}
	return fmt.Errorf("%s: %w: %w", label, crmhook.ErrUnavailable, err)
}

// IsSorted reports whether err already says what kind of failure it is.
func IsSorted(err error) bool {
	for _, target := range []error{
		crmhook.ErrNotFound, crmhook.ErrLeaseLost, crmhook.ErrClosed, crmhook.ErrUnavailable,
		ErrAlreadyReleased, context.Canceled, context.DeadlineExceeded,
	} {
		if errors.Is(err, target) {
			return true
		}
	}
	return false
}

// IsUnavailable reports whether err (already through Classify) means the
// store, not the request, failed.
func IsUnavailable(err error) bool {
	return errors.Is(err, crmhook.ErrUnavailable) || errors.Is(err, crmhook.ErrClosed)
}
