package postgres_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/crmhook/crmhook"
	"github.com/crmhook/crmhook/store/console"
	"github.com/crmhook/crmhook/store/postgres/pgtest"
	"github.com/jackc/pgx/v5"
)

// TestMigration3FillsEventReceivedAt: a schema written before migration
// 0003 (deliveries without their event's received_at) is upgraded on Open,
// its waiting deliveries listed in their events' order.
func TestMigration3FillsEventReceivedAt(t *testing.T) {
	url := pgtest.Schema(t)
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := conn.Exec(t.Context(), q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	exec(`CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`)
	for v, name := range map[int]string{1: "0001_init.sql", 2: "0002_control.sql"} {
		sqlText, err := os.ReadFile(filepath.Join("migrations", name))
		if err != nil {
			t.Fatal(err)
		}
		exec(string(sqlText))
		exec(`INSERT INTO schema_migrations (version, name) VALUES ($1, $2)`, v, name[5:len(name)-4])
	}
	base := time.Now().Add(-time.Hour).Truncate(time.Second)
	ids := []string{crmhook.NewEventID(), crmhook.NewEventID(), crmhook.NewEventID()}
	for i, id := range ids {
		at := base.Add(time.Duration(i) * time.Minute)
		exec(`INSERT INTO events VALUES ($1, 'aff', 'affinity', 'person.created', $2, NULL, $3, '\x7b7d')`, id, "k"+id, at)
		exec(`INSERT INTO deliveries (event_id, sink, state, attempts, next_attempt_at, created_at, updated_at, last_error)
			VALUES ($1, 'svc', 'dead', 1, $2, $3, $4, 'gone')`, id, at, at.Add(5*time.Millisecond), at.Add(9*time.Millisecond))
	}

	s := open(t, url)
	dls, err := s.DeadLetters(t.Context(), "svc", console.Cursor{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(dls) != 3 || dls[0].Event.ID != ids[2] || dls[2].Event.ID != ids[0] {
		t.Fatalf("dead letters after the upgrade: %+v", dls)
	}
	var off int
	if err := conn.QueryRow(t.Context(), `SELECT count(*) FROM deliveries d JOIN events e ON e.id = d.event_id
		WHERE d.event_received_at IS DISTINCT FROM e.received_at`).Scan(&off); err != nil || off != 0 {
		t.Errorf("%d deliveries without their event's received_at after the upgrade (%v)", off, err)
	}
	page, err := s.EventPage(t.Context(), crmhook.EventFilter{State: crmhook.StateDead, Limit: 2}, 0)
	if err != nil || len(page.Rows) != 2 || page.Rows[0].Event.ID != ids[2] || !page.More {
		t.Errorf("EventPage(dead) after the upgrade: %+v, %v", page, err)
	}
}
