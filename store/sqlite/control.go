package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/crmhook/crmhook"
	"github.com/crmhook/crmhook/store/internal/sqlstore"
)

var _ crmhook.ControlStore = (*Store)(nil)

// Every ControlStore write goes through the writer, like the Store's: one
// write path, one write connection. Secrets, rotations, subscription
// states and gaps are durable (the commit is fsynced before the call
// returns: Attio shows a webhook's secret once, so a secret that was
// acknowledged and then lost could never be asked for again). Leases are
// queue-state writes that skip the fsync (see commitGroup): only a power
// loss or an OS crash can undo one, and that ends every process of the
// host, the holder included, and the file serves one host only. Reads go
// to the read pool.

// PutSecret commits the secret through the writer with synchronous=FULL:
// it is on disk before the id comes back. sqlstore.NewSecret says what it
// checks and fills in. The secret is never logged, nor quoted in an error.
func (s *Store) PutSecret(ctx context.Context, sec crmhook.SourceSecret) (int64, error) {
	if err := s.checkOpen("put secret"); err != nil {
		return 0, err
	}
	sec, err := sqlstore.NewSecret(sec, s.now)
	if err != nil {
		return 0, fmt.Errorf("sqlite: put secret: %w", err)
	}
	_, id, err := s.exec(ctx, "put secret", true, `INSERT INTO secrets
		(source, secret, subscription_id, state, created_at, retire_at) VALUES (?, ?, ?, ?, ?, ?)`,
		sec.Source, sec.Secret, sec.SubscriptionID, string(sec.State), sec.CreatedAt.UnixMicro(), nullMicros(sec.RetireAt))
	if err != nil {
		return 0, err
	}
	return id, nil
}

// ListSecrets reads a source's secrets ("" for every source), oldest first
// (by CreatedAt, then id).
func (s *Store) ListSecrets(ctx context.Context, source string) ([]crmhook.SourceSecret, error) {
	if err := s.checkOpen("list secrets"); err != nil {
		return nil, err
	}
	where, args := "", []any{}
	if source != "" {
		where, args = ` WHERE source = ?`, append(args, source)
	}
	rows, err := s.readDB.QueryContext(ctx, `SELECT id, source, secret, subscription_id, state, created_at, retire_at
		FROM secrets`+where+` ORDER BY created_at, id`, args...)
	if err != nil {
		return nil, s.fail(ctx, "list secrets", err)
	}
	defer rows.Close()
	secs, err := sqlstore.Collect(rows, func(rows *sql.Rows) (crmhook.SourceSecret, error) {
		var (
			sec               crmhook.SourceSecret
			state             string
			created, retireAt sql.NullInt64
		)
		if err := rows.Scan(&sec.ID, &sec.Source, &sec.Secret, &sec.SubscriptionID, &state, &created, &retireAt); err != nil {
			return crmhook.SourceSecret{}, err
		}
		sec.State = crmhook.SecretState(state)
		sec.CreatedAt = fromMicros(created)
		sec.RetireAt = fromMicros(retireAt)
		return sec, nil
	})
	if err != nil {
		return nil, s.fail(ctx, "list secrets", err)
	}
	return secs, nil
}

// SetSecretState commits the change durably through the writer;
// sqlstore.SecretState says which RetireAt is kept.
func (s *Store) SetSecretState(ctx context.Context, id int64, state crmhook.SecretState, retireAt time.Time) error {
	if err := s.checkOpen("set secret state"); err != nil {
		return err
	}
	retireAt, err := sqlstore.SecretState(state, retireAt)
	if err != nil {
		return fmt.Errorf("sqlite: set secret state: %w", err)
	}
	n, _, err := s.exec(ctx, "set secret state", true, `UPDATE secrets SET state = ?, retire_at = ? WHERE id = ?`,
		string(state), nullMicros(retireAt), id)
	if err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("sqlite: set secret state: secret %d: %w", id, crmhook.ErrNotFound)
	}
	return nil
}

// PutRotation commits the rotation durably through the writer, one upsert
// on its source; sqlstore.NewRotation says what it fills in.
func (s *Store) PutRotation(ctx context.Context, r crmhook.Rotation) error {
	if err := s.checkOpen("put rotation"); err != nil {
		return err
	}
	r, err := sqlstore.NewRotation(r, s.now)
	if err != nil {
		return fmt.Errorf("sqlite: put rotation: %w", err)
	}
	_, _, err = s.exec(ctx, "put rotation", true, `INSERT INTO rotations
		(source, phase, new_secret_id, grace_ns, started_at, updated_at, data) VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (source) DO UPDATE SET phase = excluded.phase, new_secret_id = excluded.new_secret_id,
			grace_ns = excluded.grace_ns, started_at = excluded.started_at, updated_at = excluded.updated_at,
			data = excluded.data`,
		r.Source, r.Phase, r.NewSecretID, int64(r.Grace), r.StartedAt.UnixMicro(), r.UpdatedAt.UnixMicro(),
		sqlstore.RotationData(r.Data))
	return err
}

// GetRotation reads the source's rotation; crmhook.ErrNotFound when there
// is none.
func (s *Store) GetRotation(ctx context.Context, source string) (crmhook.Rotation, error) {
	if err := s.checkOpen("get rotation"); err != nil {
		return crmhook.Rotation{}, err
	}
	var (
		r                crmhook.Rotation
		grace            int64
		started, updated sql.NullInt64
		data             []byte
	)
	err := s.readDB.QueryRowContext(ctx, `SELECT source, phase, new_secret_id, grace_ns, started_at, updated_at, data
		FROM rotations WHERE source = ?`, source).
		Scan(&r.Source, &r.Phase, &r.NewSecretID, &grace, &started, &updated, &data)
	if errors.Is(err, sql.ErrNoRows) {
		return crmhook.Rotation{}, fmt.Errorf("sqlite: get rotation of %q: %w", source, crmhook.ErrNotFound)
	}
	if err != nil {
		return crmhook.Rotation{}, s.fail(ctx, "get rotation", err)
	}
	r.Grace = time.Duration(grace)
	r.StartedAt = fromMicros(started)
	r.UpdatedAt = fromMicros(updated)
	r.Data = sqlstore.FromRotationData(data)
	return r, nil
}

// DeleteRotation commits the deletion durably through the writer.
func (s *Store) DeleteRotation(ctx context.Context, source string) error {
	if err := s.checkOpen("delete rotation"); err != nil {
		return err
	}
	_, _, err := s.exec(ctx, "delete rotation", true, `DELETE FROM rotations WHERE source = ?`, source)
	return err
}

// PutSubscriptionState commits the state durably through the writer, one
// upsert; sqlstore.NewSubscriptionState says what it fills in.
func (s *Store) PutSubscriptionState(ctx context.Context, st crmhook.SubscriptionState) error {
	if err := s.checkOpen("put subscription state"); err != nil {
		return err
	}
	st, err := sqlstore.NewSubscriptionState(st, s.now)
	if err != nil {
		return fmt.Errorf("sqlite: put subscription state: %w", err)
	}
	_, _, err = s.exec(ctx, "put subscription state", true, `INSERT INTO subscription_states
		(source, subscription_id, status, last_checked_at, last_healthy_at) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (source, subscription_id) DO UPDATE SET status = excluded.status,
			last_checked_at = excluded.last_checked_at, last_healthy_at = excluded.last_healthy_at`,
		st.Source, st.SubscriptionID, st.Status, nullMicros(st.LastCheckedAt), nullMicros(st.LastHealthyAt))
	return err
}

// DeleteSubscriptionState forgets one state, durably through the writer.
func (s *Store) DeleteSubscriptionState(ctx context.Context, source, subscriptionID string) error {
	if err := s.checkOpen("delete subscription state"); err != nil {
		return err
	}
	_, _, err := s.exec(ctx, "delete subscription state", true,
		`DELETE FROM subscription_states WHERE source = ? AND subscription_id = ?`, source, subscriptionID)
	return err
}

// ListSubscriptionStates reads every state, in byte order of source, then
// subscription id (SQLite's BINARY collation).
func (s *Store) ListSubscriptionStates(ctx context.Context) ([]crmhook.SubscriptionState, error) {
	if err := s.checkOpen("list subscription states"); err != nil {
		return nil, err
	}
	rows, err := s.readDB.QueryContext(ctx, `SELECT source, subscription_id, status, last_checked_at, last_healthy_at
		FROM subscription_states ORDER BY source, subscription_id`)
	if err != nil {
		return nil, s.fail(ctx, "list subscription states", err)
	}
	defer rows.Close()
	sts, err := sqlstore.Collect(rows, func(rows *sql.Rows) (crmhook.SubscriptionState, error) {
		var (
			st               crmhook.SubscriptionState
			checked, healthy sql.NullInt64
		)
		if err := rows.Scan(&st.Source, &st.SubscriptionID, &st.Status, &checked, &healthy); err != nil {
			return crmhook.SubscriptionState{}, err
		}
		st.LastCheckedAt = fromMicros(checked)
		st.LastHealthyAt = fromMicros(healthy)
		return st, nil
	})
	if err != nil {
		return nil, s.fail(ctx, "list subscription states", err)
	}
	return sts, nil
}

// RecordGap commits the gap durably through the writer; sqlstore.NewGap
// says what it checks and fills in.
func (s *Store) RecordGap(ctx context.Context, g crmhook.Gap) (int64, error) {
	if err := s.checkOpen("record gap"); err != nil {
		return 0, err
	}
	g, err := sqlstore.NewGap(g, s.now)
	if err != nil {
		return 0, fmt.Errorf("sqlite: record gap: %w", err)
	}
	_, id, err := s.exec(ctx, "record gap", true, `INSERT INTO gaps
		(source, subscription_id, from_at, to_at, recorded_at) VALUES (?, ?, ?, ?, ?)`,
		g.Source, g.SubscriptionID, g.From.UnixMicro(), nullMicros(g.To), g.RecordedAt.UnixMicro())
	if err != nil {
		return 0, err
	}
	return id, nil
}

// ListGaps reads a source's gaps ("" for all), newest first (by
// RecordedAt, then id), at most limit (0: sqlstore.DefaultListLimit).
func (s *Store) ListGaps(ctx context.Context, source string, limit int) ([]crmhook.Gap, error) {
	if err := s.checkOpen("list gaps"); err != nil {
		return nil, err
	}
	where, args := []string{"1 = 1"}, []any{}
	if source != "" {
		where, args = append(where, "source = ?"), append(args, source)
	}
	args = append(args, sqlstore.ListLimit(limit))
	rows, err := s.readDB.QueryContext(ctx, `SELECT id, source, subscription_id, from_at, to_at, recorded_at
		FROM gaps WHERE `+strings.Join(where, " AND ")+` ORDER BY recorded_at DESC, id DESC LIMIT ?`, args...)
	if err != nil {
		return nil, s.fail(ctx, "list gaps", err)
	}
	defer rows.Close()
	gaps, err := sqlstore.Collect(rows, func(rows *sql.Rows) (crmhook.Gap, error) {
		var (
			g                  crmhook.Gap
			from, to, recorded sql.NullInt64
		)
		if err := rows.Scan(&g.ID, &g.Source, &g.SubscriptionID, &from, &to, &recorded); err != nil {
			return crmhook.Gap{}, err
		}
		g.From = fromMicros(from)
		g.To = fromMicros(to)
		g.RecordedAt = fromMicros(recorded)
		return g, nil
	})
	if err != nil {
		return nil, s.fail(ctx, "list gaps", err)
	}
	return gaps, nil
}

// lastEventAtSQL is one search of the (source, received_at) index: SQLite
// answers max() of an index's column by reading the index's end (see
// TestLastEventAtUsesTheIndex), never by scanning events.
const lastEventAtSQL = `SELECT max(received_at) FROM events WHERE source = ?`

// LastEventAt reads when the newest event of source was received off the
// end of the (source, received_at) index; zero when there is none.
func (s *Store) LastEventAt(ctx context.Context, source string) (time.Time, error) {
	if err := s.checkOpen("last event at"); err != nil {
		return time.Time{}, err
	}
	var last sql.NullInt64
	if err := s.readDB.QueryRowContext(ctx, lastEventAtSQL, source).Scan(&last); err != nil {
		return time.Time{}, s.fail(ctx, "last event at", err)
	}
	return fromMicros(last), nil
}

// AcquireLease takes or renews the lease called name for owner until the
// writer's now (Config.Now, read when the write's group begins) plus ttl,
// and reports whether owner holds it. One upsert decides: a new name is
// inserted, and an existing lease is taken over only if it has expired or
// is owner's already. The writer runs one write at a time, so two owners
// never both succeed.
func (s *Store) AcquireLease(ctx context.Context, name, owner string, ttl time.Duration) (bool, error) {
	if err := s.checkOpen("acquire lease"); err != nil {
		return false, err
	}
	if err := sqlstore.CheckAcquire(name, owner, ttl); err != nil {
		return false, fmt.Errorf("sqlite: acquire lease: %w", err)
	}
	var held bool
	err := s.do(ctx, &writeOp{name: "acquire lease",
		run: func(ctx context.Context, tx *groupTx, now time.Time) error {
			res, err := tx.ExecContext(ctx, `INSERT INTO leases (name, owner, expires_at) VALUES (?1, ?2, ?3)
				ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at
				WHERE leases.expires_at <= ?4 OR leases.owner = excluded.owner`,
				name, owner, now.Add(ttl).UnixMicro(), now.UnixMicro())
			if err != nil {
				return err
			}
			n, err := res.RowsAffected()
			held = n == 1
			return err
		}})
	if err != nil {
		return false, err
	}
	return held, nil
}

// ReleaseLease deletes the lease if owner holds it, through the writer
// and, like AcquireLease, without the fsync.
func (s *Store) ReleaseLease(ctx context.Context, name, owner string) error {
	if err := s.checkOpen("release lease"); err != nil {
		return err
	}
	if err := sqlstore.CheckLease(name, owner); err != nil {
		return fmt.Errorf("sqlite: release lease: %w", err)
	}
	_, _, err := s.exec(ctx, "release lease", false, `DELETE FROM leases WHERE name = ? AND owner = ?`, name, owner)
	return err
}
