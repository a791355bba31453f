package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"

	"github.com/crmhook/crmhook/store/internal/sqlstore"
	"github.com/jackc/pgx/v5"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

func loadMigrations() ([]sqlstore.Migration, error) {
	ms, err := sqlstore.LoadMigrations(migrationFiles, "migrations")
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	return ms, nil
}

// migrate applies the migrations the schema has not seen, in one
// transaction that first takes a transaction-scoped advisory lock keyed by
// the schema: replicas starting at once queue on the lock, and the ones
// after the first find nothing left to do. A failed migration leaves the
// schema as it was (Postgres DDL is transactional).
func (s *Store) migrate(ctx context.Context) error {
	ms, err := loadMigrations()
	if err != nil {
		return err
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return s.failTx(ctx, "migrate: begin", err)
	}
	defer tx.Rollback(context.Background())

	var schema *string
	if err := tx.QueryRow(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
		return s.fail(ctx, "migrate: current schema", err)
	}
	if schema == nil {
		return errors.New("postgres: migrate: no schema of the search path exists: create it first (CREATE SCHEMA …)")
	}
	s.schema = *schema
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('crmhook.migrate.' || current_schema(), 0))`); err != nil {
		return s.fail(ctx, "migrate: lock", err)
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    integer PRIMARY KEY,
		name       text NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now()
	)`); err != nil {
		return s.fail(ctx, "migrate: schema_migrations", err)
	}
	rows, err := tx.Query(ctx, `SELECT version FROM schema_migrations`)
	if err != nil {
		return s.fail(ctx, "migrate: read versions", err)
	}
	versions, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		return s.fail(ctx, "migrate: read versions", err)
	}
	pending, err := sqlstore.Pending(ms, versions)
	if err != nil {
		return fmt.Errorf("postgres: migrate: schema %q %w", s.schema, err)
	}
	for _, m := range pending {
		if _, err := tx.Exec(ctx, m.SQL); err != nil {
			return fmt.Errorf("postgres: migrate: %04d_%s: %w", m.Version, m.Name, err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name) VALUES ($1, $2)`, m.Version, m.Name); err != nil {
			return fmt.Errorf("postgres: migrate: record %04d_%s: %w", m.Version, m.Name, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return s.failTx(ctx, "migrate: commit", err)
	}
	return nil
}
