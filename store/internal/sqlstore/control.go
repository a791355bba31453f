package sqlstore

import (
	"errors"
	"fmt"
	"time"

	"github.com/crmhook/crmhook"
)

// The ControlStore methods check what they are given before any SQL runs,
// so that a bad request is refused as one (never as ErrUnavailable) and a
// constraint never quotes a row, a secret among its columns, back in an
// error. None of these errors says anything of a secret's value.

// NewSecret checks a secret for PutSecret and fills what the store leaves
// to itself: an empty State is active, a zero CreatedAt is now(). RetireAt
// is kept for a retiring secret only, which must have one.
func NewSecret(s crmhook.SourceSecret, now func() time.Time) (crmhook.SourceSecret, error) {
	switch {
	case s.Source == "":
		return s, errors.New("secret: no source")
	case s.Secret == "":
		return s, errors.New("secret: empty")
	}
	if s.State == "" {
		s.State = crmhook.SecretActive
	}
	retireAt, err := SecretState(s.State, s.RetireAt)
	if err != nil {
		return s, err
	}
	s.RetireAt = retireAt
	if s.CreatedAt.IsZero() {
		s.CreatedAt = now()
	}
	return s, nil
}

// SecretState checks a state SetSecretState moves a secret to and returns
// the RetireAt to store with it: retireAt for a retiring secret, which must
// have one, zero otherwise.
func SecretState(state crmhook.SecretState, retireAt time.Time) (time.Time, error) {
	switch state {
	case crmhook.SecretRetiring:
		if retireAt.IsZero() {
			return time.Time{}, errors.New("secret: retiring without a RetireAt")
		}
		return retireAt, nil
	case crmhook.SecretActive, crmhook.SecretRetired:
		return time.Time{}, nil
	}
	return time.Time{}, fmt.Errorf("secret: unknown state %q", state)
}

// NewRotation checks a rotation for PutRotation: it needs a Source. A zero
// StartedAt or UpdatedAt is now().
func NewRotation(r crmhook.Rotation, now func() time.Time) (crmhook.Rotation, error) {
	if r.Source == "" {
		return r, errors.New("rotation: no source")
	}
	if r.StartedAt.IsZero() {
		r.StartedAt = now()
	}
	if r.UpdatedAt.IsZero() {
		r.UpdatedAt = now()
	}
	return r, nil
}

// NewSubscriptionState checks a subscription state for
// PutSubscriptionState: it needs a Source. A zero LastCheckedAt is now().
func NewSubscriptionState(s crmhook.SubscriptionState, now func() time.Time) (crmhook.SubscriptionState, error) {
	if s.Source == "" {
		return s, errors.New("subscription state: no source")
	}
	if s.LastCheckedAt.IsZero() {
		s.LastCheckedAt = now()
	}
	return s, nil
}

// NewGap checks a gap for RecordGap: it needs a Source and a From, and a
// To, when it has one, not before From. A zero RecordedAt is now().
func NewGap(g crmhook.Gap, now func() time.Time) (crmhook.Gap, error) {
	switch {
	case g.Source == "":
		return g, errors.New("gap: no source")
	case g.From.IsZero():
		return g, errors.New("gap: no From")
	case !g.To.IsZero() && g.To.Before(g.From):
		return g, fmt.Errorf("gap: To %v is before From %v", g.To, g.From)
	}
	if g.RecordedAt.IsZero() {
		g.RecordedAt = now()
	}
	return g, nil
}

// CheckLease checks ReleaseLease's arguments: a lease has a name and an
// owner.
func CheckLease(name, owner string) error {
	switch {
	case name == "":
		return errors.New("lease: no name")
	case owner == "":
		return errors.New("lease: no owner")
	}
	return nil
}

// CheckAcquire checks AcquireLease's arguments: CheckLease's, and a
// positive ttl.
func CheckAcquire(name, owner string, ttl time.Duration) error {
	if ttl <= 0 {
		return fmt.Errorf("lease: ttl must be positive, got %v", ttl)
	}
	return CheckLease(name, owner)
}

// RotationData is what a store keeps of a rotation's Data: its bytes,
// never nil, for a NOT NULL column. FromRotationData undoes it.
func RotationData(data []byte) []byte {
	if data == nil {
		return []byte{}
	}
	return data
}

// FromRotationData is the Data of a stored rotation: nil when empty.
func FromRotationData(data []byte) []byte {
	if len(data) == 0 {
		return nil
	}
	return data
}
