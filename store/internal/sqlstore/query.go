package sqlstore

import (
	"fmt"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/crmhook/crmhook"
)

// DefaultListLimit is the Limit of a listing filter that gives none.
const DefaultListLimit = 100

// ListLimit is the number of rows a listing with Limit n returns.
func ListLimit(n int) int {
	if n <= 0 {
		return DefaultListLimit
	}
	return n
}

// DefaultClaimLimit is the Limit of a ClaimParams that gives none.
const DefaultClaimLimit = 1

// ClaimLimit checks p's lease and returns how many deliveries the claim
// may take.
func ClaimLimit(p crmhook.ClaimParams) (int, error) {
	if p.Lease <= 0 {
		return 0, fmt.Errorf("lease must be positive, got %v", p.Lease)
	}
	if p.Limit <= 0 {
		return DefaultClaimLimit, nil
	}
	return p.Limit, nil
}

// SortClaims puts claims in the order Claim returns them: oldest due
// first, then by delivery id. (RETURNING does not promise an order.)
func SortClaims(claims []crmhook.Claim) {
	sort.Slice(claims, func(i, j int) bool {
		a, b := claims[i].Delivery, claims[j].Delivery
		if !a.NextAttemptAt.Equal(b.NextAttemptAt) {
			return a.NextAttemptAt.Before(b.NextAttemptAt)
		}
		return a.ID < b.ID
	})
}

// IsGlob reports whether a type filter is a path.Match pattern rather than
// an exact type, so the driver must translate it.
func IsGlob(pattern string) bool {
	return strings.ContainsAny(pattern, `*?[\`)
}

// Rows is what Collect needs of a driver's result set (pgx.Rows,
// *sql.Rows).
type Rows interface {
	Next() bool
	Err() error
}

// Collect scans every row of rows with scan and returns them in order. It
// stops at the first scan error; otherwise its error is rows.Err(). The
// caller still closes rows.
func Collect[R Rows, T any](rows R, scan func(R) (T, error)) ([]T, error) {
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// NewRejection fills what Store.Reject leaves to the store: an empty
// Event.ID gets a fresh one, a zero RejectedAt now(), a zero
// Event.ReceivedAt the RejectedAt. It also returns the payload as bytes,
// never nil, for a NOT NULL column.
func NewRejection(r crmhook.Rejection, now func() time.Time) (crmhook.Rejection, []byte) {
	if r.Event.ID == "" {
		r.Event.ID = crmhook.NewEventID()
	}
	if r.RejectedAt.IsZero() {
		r.RejectedAt = now()
	}
	if r.Event.ReceivedAt.IsZero() {
		r.Event.ReceivedAt = r.RejectedAt
	}
	payload := []byte(r.Event.Payload)
	if payload == nil {
		payload = []byte{}
	}
	return r, payload
}

// MaxLastError bounds what a failure leaves in last_error.
const MaxLastError = 4096

// TruncateLastError cuts s to at most MaxLastError bytes without splitting
// a UTF-8 character.
func TruncateLastError(s string) string {
	if len(s) <= MaxLastError {
		return s
	}
	s = s[:MaxLastError]
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}
