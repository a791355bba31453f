package sqlite

import (
	"database/sql"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/crmhook/crmhook"
	"github.com/crmhook/crmhook/store/console"
	"github.com/crmhook/crmhook/store/internal/sqlstore"
)

// queryPlan is EXPLAIN QUERY PLAN's steps for q.
func queryPlan(t *testing.T, s *Store, q string, args ...any) []string {
	t.Helper()
	rows, err := s.readDB.QueryContext(t.Context(), `EXPLAIN QUERY PLAN `+q, args...)
	if err != nil {
		t.Fatalf("EXPLAIN QUERY PLAN %s: %v", q, err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return plan
}

// fullScan matches a step that reads a table of crmhook's without an
// index (SQLite says "SCAN events", "SCAN d"), and a sort of every row a
// query selects ("USE TEMP B-TREE FOR ORDER BY", GROUP BY, DISTINCT). An
// ordered walk of an index under a LIMIT ("SCAN e USING INDEX …"), a scan
// of a partial covering index (as large as what waits) and a sort of only
// the rows of one instant ("RIGHT PART OF ORDER BY") are what the console
// allows itself.
var fullScan = regexp.MustCompile(`^SCAN (events|deliveries|rejections|dedupe_keys|e|d)$|^SCAN \w+ USING (COVERING )?INDEX sqlite_autoindex|USE TEMP B-TREE FOR (ORDER BY|GROUP BY|DISTINCT)`)

// checkPlan fails when q's plan scans a table or sorts every row, or does
// not use each of the indexes in want (a part of a step as SQLite writes
// it, e.g. "deliveries_waiting (state=?"). sortsFew, when not empty, says
// why a sort is of a few rows only (the events of one dedupe key, the
// waiting deliveries), and allows it.
func checkPlan(t *testing.T, s *Store, name, sortsFew, q string, args []any, want ...string) {
	t.Helper()
	plan := queryPlan(t, s, q, args...)
	joined := strings.Join(plan, " | ")
	for _, step := range plan {
		if sortsFew != "" && (step == "USE TEMP B-TREE FOR ORDER BY" || step == "USE TEMP B-TREE FOR GROUP BY") {
			continue
		}
		if fullScan.MatchString(step) {
			t.Errorf("%s: step %q reads every row (plan %s)", name, step, joined)
		}
	}
	for _, w := range want {
		if !strings.Contains(joined, w) {
			t.Errorf("%s: plan %s does not use %s", name, joined, w)
		}
	}
	if testing.Verbose() {
		t.Logf("%s: %s", name, joined)
	}
}

// TestConsoleQueriesUseIndexes holds every query of the console to its
// plan: the walk of each kind of event page, the deliveries of a page, a
// sink's dead letters, the queues, the activity, and the listings and
// writes the console's actions run (a search by dedupe key, waiting
// rejections, a replay of selected dead letters).
func TestConsoleQueriesUseIndexes(t *testing.T) {
	s := openTest(t, Config{})
	if _, err := s.Insert(t.Context(), testEvent("sink-a")); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	cursor := crmhook.EventFilter{BeforeReceivedAt: now, BeforeID: "0190"}
	withCursor := func(f crmhook.EventFilter) crmhook.EventFilter {
		f.BeforeReceivedAt, f.BeforeID = cursor.BeforeReceivedAt, cursor.BeforeID
		return f
	}
	const byEventID = "x EXISTS USING INDEX sqlite_autoindex_deliveries_1 (event_id=?)"
	const oneKey = "the events of one dedupe key"
	pages := []struct {
		name, sortsFew string
		f              crmhook.EventFilter
		boundary, page []string // the steps each query must have
	}{
		{"newest", "", crmhook.EventFilter{},
			[]string{"SCAN e USING COVERING INDEX events_received_at"},
			[]string{"SEARCH e USING INDEX events_received_at (received_at>?)"}},
		{"after a cursor", "", cursor,
			[]string{"SEARCH e USING COVERING INDEX events_received_at (received_at<?)"},
			[]string{"SEARCH e USING INDEX events_received_at (received_at>? AND received_at<?)"}},
		{"a time range", "", crmhook.EventFilter{Since: now.Add(-time.Hour), Until: now},
			[]string{"SEARCH e USING COVERING INDEX events_received_at (received_at>? AND received_at<?)"},
			[]string{"SEARCH e USING INDEX events_received_at (received_at>? AND received_at<?)"}},
		{"a type", "", crmhook.EventFilter{Type: "person.*"},
			[]string{"SCAN e USING COVERING INDEX events_received_at"},
			[]string{"SEARCH e USING INDEX events_received_at (received_at>?)"}},
		{"a source", "", withCursor(crmhook.EventFilter{Source: "affinity", Type: "person.*"}),
			[]string{"SEARCH e USING INDEX events_source_received_at (source=? AND received_at<?)"},
			[]string{"SEARCH e USING INDEX events_source_received_at (source=? AND received_at>? AND received_at<?)"}},
		{"dead", "", withCursor(crmhook.EventFilter{State: crmhook.StateDead, Source: "affinity"}),
			[]string{"SEARCH d USING COVERING INDEX deliveries_waiting (state=? AND event_received_at<?)"},
			[]string{"SEARCH d USING COVERING INDEX deliveries_waiting (state=? AND event_received_at>? AND event_received_at<?)",
				"SEARCH e USING INDEX sqlite_autoindex_events_1 (id=?)"}},
		{"pending", "", crmhook.EventFilter{State: crmhook.StatePending},
			[]string{"SEARCH d USING COVERING INDEX deliveries_waiting (state=?)"},
			[]string{"SEARCH d USING COVERING INDEX deliveries_waiting (state=? AND event_received_at>?)"}},
		{"delivered", "", withCursor(crmhook.EventFilter{State: crmhook.StateDelivered}),
			[]string{"SEARCH e USING COVERING INDEX events_received_at (received_at<?)"},
			[]string{"SEARCH e USING INDEX events_received_at (received_at>? AND received_at<?)", byEventID}},
		{"a dedupe key", oneKey, crmhook.EventFilter{DedupeKey: "aff:k", State: crmhook.StateDead},
			nil,
			[]string{"SEARCH e USING INDEX events_dedupe_key (dedupe_key=?)", byEventID}},
	}
	for _, p := range pages {
		if p.boundary != nil {
			q, args := boundaryQuery(p.f, 5000)
			checkPlan(t, s, "EventPage boundary: "+p.name, "", q, args, p.boundary...)
		}
		q, args := eventPageQuery(p.f, now.Add(-time.Hour), 51)
		checkPlan(t, s, "EventPage: "+p.name, p.sortsFew, q, args, p.page...)
	}
	checkPlan(t, s, "EventPage: deliveries", "", eventDeliveriesSQL, []any{`["a","b"]`},
		"SEARCH deliveries USING INDEX sqlite_autoindex_deliveries_1 (event_id=?)")

	q, args := deadLettersQuery("sink-a", console.Cursor{}, 50)
	checkPlan(t, s, "DeadLetters", "", q, args, "SEARCH d USING INDEX deliveries_waiting (state=?)")
	q, args = deadLettersQuery("sink-a", console.Cursor{ReceivedAt: now, ID: "0190"}, 50)
	checkPlan(t, s, "DeadLetters after a cursor", "", q, args,
		"SEARCH d USING INDEX deliveries_waiting (state=? AND event_received_at<?)")

	checkPlan(t, s, "Queues", "the waiting deliveries", queuesSQL, nil, "SCAN deliveries USING COVERING INDEX deliveries_waiting")
	checkPlan(t, s, "Activity", "", activitySQL, []any{now.UnixMicro(), 60},
		"SEARCH events USING COVERING INDEX events_received_at (received_at>? AND received_at<?)",
		"SEARCH deliveries USING COVERING INDEX deliveries_delivered_at (delivered_at>? AND delivered_at<?)",
		"SEARCH deliveries USING COVERING INDEX deliveries_failed_at (updated_at>? AND updated_at<?)")

	q, args = listEventsQuery(crmhook.EventFilter{DedupeKey: "aff:k"})
	checkPlan(t, s, "ListEvents by dedupe key", oneKey, q, args, "SEARCH events USING INDEX events_dedupe_key (dedupe_key=?)")
	q, args = listEventsQuery(crmhook.EventFilter{BeforeReceivedAt: now, BeforeID: "0190", State: crmhook.StateDead, Limit: 50})
	checkPlan(t, s, "ListEvents after a cursor", "", q, args, "SEARCH events USING INDEX events_received_at (received_at<?)",
		"sqlite_autoindex_deliveries_1 (event_id=?)")
	no := false
	q, args = listRejectionsQuery(crmhook.RejectionFilter{Released: &no})
	checkPlan(t, s, "ListRejections waiting", "", q, args, "SCAN rejections USING INDEX rejections_waiting")
	checkPlan(t, s, "Stats", "", statsSQL, nil, "SCAN rejections USING INDEX rejections_waiting")

	where, wargs := deliveryWhere(crmhook.DeliveryFilter{State: crmhook.StateDead, IDs: []int64{1, 2, 3}})
	checkPlan(t, s, "Replay of selected dead letters", "", `SELECT id FROM deliveries WHERE `+strings.Join(where, " AND ")+` ORDER BY id`,
		wargs, "SEARCH deliveries USING INTEGER PRIMARY KEY (rowid=?)")
	where, wargs = deliveryWhere(crmhook.DeliveryFilter{State: crmhook.StateDead, Sink: "sink-a"})
	checkPlan(t, s, "Replay of a sink's dead letters", "", `SELECT id FROM deliveries WHERE `+strings.Join(where, " AND "),
		wargs, "SEARCH deliveries USING COVERING INDEX deliveries_waiting (state=?)")
	where, wargs = deliveryWhere(crmhook.DeliveryFilter{EventID: "0190", Sink: "sink-a"})
	checkPlan(t, s, "Replay of an event to a sink", "", `SELECT id FROM deliveries WHERE `+strings.Join(where, " AND ")+` ORDER BY id`,
		wargs, "sqlite_autoindex_deliveries_1 (event_id=? AND sink=?)")
}

// TestMigration3FillsEventReceivedAt: a file written before migration 0003
// (deliveries without their event's received_at) is upgraded on Open, its
// waiting deliveries listed in their events' order.
func TestMigration3FillsEventReceivedAt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "old.db")
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	ms, err := sqlstore.LoadMigrations(migrationFiles, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := db.Exec(q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	exec(`CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL) STRICT`)
	for _, m := range ms[:2] {
		exec(m.SQL)
		exec(`INSERT INTO schema_migrations VALUES (?, ?, 0)`, m.Version, m.Name)
	}
	base := time.Now().Add(-time.Hour).Truncate(time.Second)
	ids := []string{crmhook.NewEventID(), crmhook.NewEventID(), crmhook.NewEventID()}
	for i, id := range ids {
		at := base.Add(time.Duration(i) * time.Minute).UnixMicro()
		exec(`INSERT INTO events VALUES (?, 'aff', 'affinity', 'person.created', ?, NULL, ?, X'7B7D')`, id, "k"+id, at)
		// Created later than received (as the writer's clock says), dead.
		exec(`INSERT INTO deliveries (event_id, sink, state, attempts, next_attempt_at, created_at, updated_at, last_error)
			VALUES (?, 'svc', 'dead', 1, ?, ?, ?, 'gone')`, id, at, at+5000, at+9000)
	}
	db.Close()

	s := openTest(t, Config{Path: path})
	dls, err := s.DeadLetters(t.Context(), "svc", console.Cursor{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(dls) != 3 || dls[0].Event.ID != ids[2] || dls[2].Event.ID != ids[0] {
		t.Fatalf("dead letters after the upgrade: %+v", dls)
	}
	var zero int
	if err := s.readDB.QueryRow(`SELECT count(*) FROM deliveries d JOIN events e ON e.id = d.event_id WHERE d.event_received_at <> e.received_at`).Scan(&zero); err != nil || zero != 0 {
		t.Errorf("%d deliveries without their event's received_at after the upgrade (%v)", zero, err)
	}
	page, err := s.EventPage(t.Context(), crmhook.EventFilter{State: crmhook.StateDead, Limit: 2}, 0)
	if err != nil || len(page.Rows) != 2 || page.Rows[0].Event.ID != ids[2] || !page.More {
		t.Errorf("EventPage(dead) after the upgrade: %+v, %v", page, err)
	}
}
