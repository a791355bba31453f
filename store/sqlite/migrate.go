package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"time"

	"github.com/crmhook/crmhook/store/internal/sqlstore"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// migrate applies the migrations the file has not seen, all in one
// immediate transaction, so two processes opening the same new file do not
// both apply them and a failed migration leaves the schema as it was.
func migrate(ctx context.Context, db *sql.DB) error {
	ms, err := sqlstore.LoadMigrations(migrationFiles, "migrations")
	if err != nil {
		return fmt.Errorf("sqlite: %w", err)
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: migrate: begin: %w", err)
	}
	defer tx.Rollback()

	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		name       TEXT NOT NULL,
		applied_at INTEGER NOT NULL
	) STRICT`); err != nil {
		return fmt.Errorf("sqlite: migrate: schema_migrations: %w", err)
	}
	var applied []int
	rows, err := tx.QueryContext(ctx, `SELECT version FROM schema_migrations`)
	if err != nil {
		return fmt.Errorf("sqlite: migrate: read versions: %w", err)
	}
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			rows.Close()
			return fmt.Errorf("sqlite: migrate: read versions: %w", err)
		}
		applied = append(applied, v)
	}
	if err := rows.Close(); err != nil {
		return fmt.Errorf("sqlite: migrate: read versions: %w", err)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("sqlite: migrate: read versions: %w", err)
	}

	pending, err := sqlstore.Pending(ms, applied)
	if err != nil {
		return fmt.Errorf("sqlite: migrate: the file %w", err)
	}
	for _, m := range pending {
		if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
			return fmt.Errorf("sqlite: migrate: %04d_%s: %w", m.Version, m.Name, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
			m.Version, m.Name, time.Now().UnixMicro()); err != nil {
			return fmt.Errorf("sqlite: migrate: record %04d_%s: %w", m.Version, m.Name, err)
		}
	}
	if len(pending) == 0 {
		return nil // the deferred rollback ends the read-only transaction
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: migrate: commit: %w", err)
	}
	return nil
}
