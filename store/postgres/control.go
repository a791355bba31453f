package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/crmhook/crmhook"
	"github.com/crmhook/crmhook/store/internal/sqlstore"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

var _ crmhook.ControlStore = (*Store)(nil)

// Every ControlStore write goes through the pool whose commits wait for
// the disk (never the queue pool's synchronous_commit=off): a secret Attio
// showed once must survive a Postgres crash, and so must a lease, whose
// holder runs on another machine than Postgres and would go on believing
// it holds a lease the server forgot.

// PutSecret inserts the secret on the pool whose commits wait for the
// disk; sqlstore.NewSecret says what it checks and fills in. An error
// keeps nothing of the row Postgres failed on (see withoutRow).
func (s *Store) PutSecret(ctx context.Context, sec crmhook.SourceSecret) (int64, error) {
	if err := s.checkOpen("put secret"); err != nil {
		return 0, err
	}
	sec, err := sqlstore.NewSecret(sec, s.now)
	if err != nil {
		return 0, fmt.Errorf("postgres: put secret: %w", err)
	}
	var id int64
	err = s.pool.QueryRow(ctx, `INSERT INTO secrets
		(source, secret, subscription_id, state, created_at, retire_at) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id`,
		sec.Source, sec.Secret, sec.SubscriptionID, string(sec.State), sec.CreatedAt, nullTime(sec.RetireAt)).Scan(&id)
	if err != nil {
		return 0, s.fail(ctx, "put secret", withoutRow(err))
	}
	return id, nil
}

// withoutRow keeps of a Postgres error about the secrets table only what
// cannot quote a row: a constraint's error details the failing row, the
// secret among its columns. The code stays, so the error sorts as before.
func withoutRow(err error) error {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return err
	}
	return &pgconn.PgError{Severity: pe.Severity, Code: pe.Code, Message: pe.Message,
		TableName: pe.TableName, ColumnName: pe.ColumnName, ConstraintName: pe.ConstraintName}
}

// ListSecrets selects a source's secrets ("" for every source), oldest
// first (by CreatedAt, then id).
func (s *Store) ListSecrets(ctx context.Context, source string) ([]crmhook.SourceSecret, error) {
	if err := s.checkOpen("list secrets"); err != nil {
		return nil, err
	}
	w := &where{}
	if source != "" {
		w.add("source = " + w.arg(source))
	}
	rows, err := s.pool.Query(ctx, `SELECT id, source, secret, subscription_id, state, created_at, retire_at
		FROM secrets WHERE `+w.String()+` ORDER BY created_at, id`, w.args...)
	if err != nil {
		return nil, s.fail(ctx, "list secrets", err)
	}
	defer rows.Close()
	secs, err := sqlstore.Collect(rows, func(rows pgx.Rows) (crmhook.SourceSecret, error) {
		var (
			sec      crmhook.SourceSecret
			state    string
			retireAt *time.Time
		)
		if err := rows.Scan(&sec.ID, &sec.Source, &sec.Secret, &sec.SubscriptionID, &state, &sec.CreatedAt, &retireAt); err != nil {
			return crmhook.SourceSecret{}, err
		}
		sec.State = crmhook.SecretState(state)
		sec.CreatedAt = sec.CreatedAt.UTC()
		sec.RetireAt = fromNull(retireAt)
		return sec, nil
	})
	if err != nil {
		return nil, s.fail(ctx, "list secrets", err)
	}
	return secs, nil
}

// SetSecretState updates the secret in one statement; sqlstore.SecretState
// says which RetireAt is kept.
func (s *Store) SetSecretState(ctx context.Context, id int64, state crmhook.SecretState, retireAt time.Time) error {
	if err := s.checkOpen("set secret state"); err != nil {
		return err
	}
	retireAt, err := sqlstore.SecretState(state, retireAt)
	if err != nil {
		return fmt.Errorf("postgres: set secret state: %w", err)
	}
	tag, err := s.pool.Exec(ctx, `UPDATE secrets SET state = $1, retire_at = $2 WHERE id = $3`,
		string(state), nullTime(retireAt), id)
	if err != nil {
		return s.fail(ctx, "set secret state", withoutRow(err))
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("postgres: set secret state: secret %d: %w", id, crmhook.ErrNotFound)
	}
	return nil
}

// PutRotation upserts the rotation on its source, in one statement;
// sqlstore.NewRotation says what it fills in.
func (s *Store) PutRotation(ctx context.Context, r crmhook.Rotation) error {
	if err := s.checkOpen("put rotation"); err != nil {
		return err
	}
	r, err := sqlstore.NewRotation(r, s.now)
	if err != nil {
		return fmt.Errorf("postgres: put rotation: %w", err)
	}
	_, err = s.pool.Exec(ctx, `INSERT INTO rotations
		(source, phase, new_secret_id, grace_ns, started_at, updated_at, data) VALUES ($1, $2, $3, $4, $5, $6, $7)
		ON CONFLICT (source) DO UPDATE SET phase = excluded.phase, new_secret_id = excluded.new_secret_id,
			grace_ns = excluded.grace_ns, started_at = excluded.started_at, updated_at = excluded.updated_at,
			data = excluded.data`,
		r.Source, r.Phase, r.NewSecretID, int64(r.Grace), r.StartedAt, r.UpdatedAt, sqlstore.RotationData(r.Data))
	if err != nil {
		return s.fail(ctx, "put rotation", err)
	}
	return nil
}

// GetRotation selects the source's rotation; crmhook.ErrNotFound when
// there is none.
func (s *Store) GetRotation(ctx context.Context, source string) (crmhook.Rotation, error) {
	if err := s.checkOpen("get rotation"); err != nil {
		return crmhook.Rotation{}, err
	}
	var (
		r     crmhook.Rotation
		grace int64
		data  []byte
	)
	err := s.pool.QueryRow(ctx, `SELECT source, phase, new_secret_id, grace_ns, started_at, updated_at, data
		FROM rotations WHERE source = $1`, source).
		Scan(&r.Source, &r.Phase, &r.NewSecretID, &grace, &r.StartedAt, &r.UpdatedAt, &data)
	if errors.Is(err, pgx.ErrNoRows) {
		return crmhook.Rotation{}, fmt.Errorf("postgres: get rotation of %q: %w", source, crmhook.ErrNotFound)
	}
	if err != nil {
		return crmhook.Rotation{}, s.fail(ctx, "get rotation", err)
	}
	r.Grace = time.Duration(grace)
	r.StartedAt = r.StartedAt.UTC()
	r.UpdatedAt = r.UpdatedAt.UTC()
	r.Data = sqlstore.FromRotationData(data)
	return r, nil
}

// DeleteRotation deletes the source's rotation, if any.
func (s *Store) DeleteRotation(ctx context.Context, source string) error {
	if err := s.checkOpen("delete rotation"); err != nil {
		return err
	}
	if _, err := s.pool.Exec(ctx, `DELETE FROM rotations WHERE source = $1`, source); err != nil {
		return s.fail(ctx, "delete rotation", err)
	}
	return nil
}

// PutSubscriptionState upserts the state on (Source, SubscriptionID);
// sqlstore.NewSubscriptionState says what it fills in.
func (s *Store) PutSubscriptionState(ctx context.Context, st crmhook.SubscriptionState) error {
	if err := s.checkOpen("put subscription state"); err != nil {
		return err
	}
	st, err := sqlstore.NewSubscriptionState(st, s.now)
	if err != nil {
		return fmt.Errorf("postgres: put subscription state: %w", err)
	}
	_, err = s.pool.Exec(ctx, `INSERT INTO subscription_states
		(source, subscription_id, status, last_checked_at, last_healthy_at) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (source, subscription_id) DO UPDATE SET status = excluded.status,
			last_checked_at = excluded.last_checked_at, last_healthy_at = excluded.last_healthy_at`,
		st.Source, st.SubscriptionID, st.Status, nullTime(st.LastCheckedAt), nullTime(st.LastHealthyAt))
	if err != nil {
		return s.fail(ctx, "put subscription state", err)
	}
	return nil
}

// DeleteSubscriptionState forgets one state.
func (s *Store) DeleteSubscriptionState(ctx context.Context, source, subscriptionID string) error {
	if err := s.checkOpen("delete subscription state"); err != nil {
		return err
	}
	if _, err := s.pool.Exec(ctx, `DELETE FROM subscription_states WHERE source = $1 AND subscription_id = $2`, source, subscriptionID); err != nil {
		return s.fail(ctx, "delete subscription state", err)
	}
	return nil
}

// ListSubscriptionStates selects every state, in byte order of source,
// then subscription id (COLLATE "C", as SQLite orders them, whatever the
// database's collation).
func (s *Store) ListSubscriptionStates(ctx context.Context) ([]crmhook.SubscriptionState, error) {
	if err := s.checkOpen("list subscription states"); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `SELECT source, subscription_id, status, last_checked_at, last_healthy_at
		FROM subscription_states ORDER BY source COLLATE "C", subscription_id COLLATE "C"`)
	if err != nil {
		return nil, s.fail(ctx, "list subscription states", err)
	}
	defer rows.Close()
	sts, err := sqlstore.Collect(rows, func(rows pgx.Rows) (crmhook.SubscriptionState, error) {
		var (
			st               crmhook.SubscriptionState
			checked, healthy *time.Time
		)
		if err := rows.Scan(&st.Source, &st.SubscriptionID, &st.Status, &checked, &healthy); err != nil {
			return crmhook.SubscriptionState{}, err
		}
		st.LastCheckedAt = fromNull(checked)
		st.LastHealthyAt = fromNull(healthy)
		return st, nil
	})
	if err != nil {
		return nil, s.fail(ctx, "list subscription states", err)
	}
	return sts, nil
}

// RecordGap inserts the gap; sqlstore.NewGap says what it checks and
// fills in.
func (s *Store) RecordGap(ctx context.Context, g crmhook.Gap) (int64, error) {
	if err := s.checkOpen("record gap"); err != nil {
		return 0, err
	}
	g, err := sqlstore.NewGap(g, s.now)
	if err != nil {
		return 0, fmt.Errorf("postgres: record gap: %w", err)
	}
	var id int64
	err = s.pool.QueryRow(ctx, `INSERT INTO gaps (source, subscription_id, from_at, to_at, recorded_at)
		VALUES ($1, $2, $3, $4, $5) RETURNING id`,
		g.Source, g.SubscriptionID, g.From, nullTime(g.To), g.RecordedAt).Scan(&id)
	if err != nil {
		return 0, s.fail(ctx, "record gap", err)
	}
	return id, nil
}

// ListGaps selects a source's gaps ("" for all), newest first (by
// RecordedAt, then id), at most limit (0: sqlstore.DefaultListLimit).
func (s *Store) ListGaps(ctx context.Context, source string, limit int) ([]crmhook.Gap, error) {
	if err := s.checkOpen("list gaps"); err != nil {
		return nil, err
	}
	w := &where{}
	if source != "" {
		w.add("source = " + w.arg(source))
	}
	rows, err := s.pool.Query(ctx, `SELECT id, source, subscription_id, from_at, to_at, recorded_at
		FROM gaps WHERE `+w.String()+` ORDER BY recorded_at DESC, id DESC LIMIT `+w.arg(sqlstore.ListLimit(limit)),
		w.args...)
	if err != nil {
		return nil, s.fail(ctx, "list gaps", err)
	}
	defer rows.Close()
	gaps, err := sqlstore.Collect(rows, func(rows pgx.Rows) (crmhook.Gap, error) {
		var (
			g  crmhook.Gap
			to *time.Time
		)
		if err := rows.Scan(&g.ID, &g.Source, &g.SubscriptionID, &g.From, &to, &g.RecordedAt); err != nil {
			return crmhook.Gap{}, err
		}
		g.From = g.From.UTC()
		g.To = fromNull(to)
		g.RecordedAt = g.RecordedAt.UTC()
		return g, nil
	})
	if err != nil {
		return nil, s.fail(ctx, "list gaps", err)
	}
	return gaps, nil
}

// lastEventAtSQL can be served by the (source, received_at) index:
// Postgres plans max() of an index's column as a backward index scan that
// stops at its first row (see TestLastEventAtUsesTheIndex).
const lastEventAtSQL = `SELECT max(received_at) FROM events WHERE source = $1`

// LastEventAt reads when the newest event of source was received off the
// end of the (source, received_at) index; zero when there is none.
func (s *Store) LastEventAt(ctx context.Context, source string) (time.Time, error) {
	if err := s.checkOpen("last event at"); err != nil {
		return time.Time{}, err
	}
	var last *time.Time
	if err := s.pool.QueryRow(ctx, lastEventAtSQL, source).Scan(&last); err != nil {
		return time.Time{}, s.fail(ctx, "last event at", err)
	}
	return fromNull(last), nil
}

// AcquireLease takes or renews the lease called name for owner until the
// store's now plus ttl, and reports whether owner holds it. One upsert
// decides, whichever replica races for the lease: a new name is inserted;
// an existing lease is taken over only if it has expired (by the store's
// clock, which replicas must agree on to well within a ttl) or is owner's
// already, Postgres deciding on the row's latest committed version after
// waiting for any transaction holding it. No row back: another owner holds it.
func (s *Store) AcquireLease(ctx context.Context, name, owner string, ttl time.Duration) (bool, error) {
	if err := s.checkOpen("acquire lease"); err != nil {
		return false, err
	}
	if err := sqlstore.CheckAcquire(name, owner, ttl); err != nil {
		return false, fmt.Errorf("postgres: acquire lease: %w", err)
	}
	now := s.now()
	var holder string
	err := s.pool.QueryRow(ctx, `INSERT INTO leases (name, owner, expires_at) VALUES ($1, $2, $3)
		ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at
			WHERE leases.expires_at <= $4 OR leases.owner = excluded.owner
		RETURNING owner`, name, owner, now.Add(ttl), now).Scan(&holder)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, s.fail(ctx, "acquire lease", err)
	}
	return holder == owner, nil
}

// ReleaseLease deletes the lease if owner holds it; another owner's lease
// is left alone.
func (s *Store) ReleaseLease(ctx context.Context, name, owner string) error {
	if err := s.checkOpen("release lease"); err != nil {
		return err
	}
	if err := sqlstore.CheckLease(name, owner); err != nil {
		return fmt.Errorf("postgres: release lease: %w", err)
	}
	if _, err := s.pool.Exec(ctx, `DELETE FROM leases WHERE name = $1 AND owner = $2`, name, owner); err != nil {
		return s.fail(ctx, "release lease", err)
	}
	return nil
}
