package admin_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"flag"
	"fmt"
	mrand "math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/crmhook/crmhook"
	"github.com/crmhook/crmhook/internal/admin"
	"github.com/crmhook/crmhook/store/console"
	"github.com/crmhook/crmhook/store/sqlite"
)

// BenchmarkConsole times every page of the console, as its handler serves
// it (server time: the handler from request to last byte, in process), on a
// SQLite store filled with -console.events events (1,000,000 by default).
// The fill writes the rows directly in large transactions (a minute or two
// for a million); -console.db keeps the filled file to run again without
// it. Being a benchmark, it never runs with go test's tests (nor in CI):
//
//	go test -run '^$' -bench BenchmarkConsole -benchtime 50x -timeout 30m ./internal/admin/
//	go test -run '^$' -bench BenchmarkConsole -benchtime 50x ./internal/admin/ -console.db /tmp/console-1m.db
//
// Each sub-benchmark reports ns/op (the mean) and p50, p95 and max in
// milliseconds.
func BenchmarkConsole(b *testing.B) {
	env := consoleBenchEnv(b)
	for _, p := range env.pages {
		b.Run(p.name, func(b *testing.B) {
			env.serve(b, p) // warm: the first read of a page's pages of the file
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for range b.N {
				start := time.Now()
				env.serve(b, p)
				lat = append(lat, time.Since(start))
			}
			b.StopTimer()
			slices.Sort(lat)
			ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
			b.ReportMetric(ms(lat[len(lat)/2]), "p50-ms")
			b.ReportMetric(ms(lat[(len(lat)*95+99)/100-1]), "p95-ms")
			b.ReportMetric(ms(lat[len(lat)-1]), "max-ms")
		})
	}
}

var (
	benchEvents = flag.Int("console.events", 1_000_000, "BenchmarkConsole: events to fill the SQLite store with")
	benchDB     = flag.String("console.db", "", "BenchmarkConsole: keep the filled store in this file (reused when it exists)")
)

type benchPage struct {
	name, path string
	status     int
}

type benchEnv struct {
	h      http.Handler
	cookie *http.Cookie
	pages  []benchPage
}

var (
	benchOnce sync.Once
	benchEnvV *benchEnv
	benchErr  error
)

func consoleBenchEnv(b *testing.B) *benchEnv {
	benchOnce.Do(func() { benchEnvV, benchErr = newBenchEnv() })
	if benchErr != nil {
		b.Fatal(benchErr)
	}
	return benchEnvV
}

func (e *benchEnv) serve(b *testing.B, p benchPage) {
	req := httptest.NewRequest("GET", p.path, nil)
	req.AddCookie(e.cookie)
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, req)
	if rec.Code != p.status {
		b.Fatalf("%s: HTTP %d, want %d: %.300s", p.path, rec.Code, p.status, rec.Body.String())
	}
}

// The shape of the filled store: a week of events (the default retention),
// newest last, evenly spread (some 6,000 an hour); three sources; every
// event to the sink svc and one in three to audit too; 1 % of svc's
// deliveries dead (a week of dead letters), the newest 2,000 pending and
// 500 of the last hour retrying; 1,000 rejections of which 100 wait.
const (
	benchSpan     = 7 * 24 * time.Hour
	benchPending  = 2000
	benchRetrying = 500
)

var benchTypes = []string{
	"person.created", "person.updated", "person.deleted", "organization.created", "organization.updated",
	"organization.deleted", "opportunity.created", "opportunity.updated", "list_entry.created", "list_entry.deleted",
	"note.created", "note.updated", "field_value.created", "field_value.updated", "record.created", "record.updated",
	"record.deleted", "list-entry.created", "list-entry.updated", "comment.created", "task.created", "task.updated",
	"invoice.paid", "invoice.failed",
}

func newBenchEnv() (*benchEnv, error) {
	ctx := context.Background()
	path := *benchDB
	if path == "" {
		dir, err := os.MkdirTemp("", "crmhook-console-bench-")
		if err != nil {
			return nil, err
		}
		path = filepath.Join(dir, "crmhook.db")
	}
	now := time.Now()
	if _, err := os.Stat(path); err != nil {
		// Open once for the schema, then fill behind the store's back.
		st, err := sqlite.Open(ctx, sqlite.Config{Path: path})
		if err != nil {
			return nil, err
		}
		st.Close()
		start := time.Now()
		if err := fillBenchStore(ctx, path, *benchEvents, now); err != nil {
			return nil, err
		}
		fi, _ := os.Stat(path)
		fmt.Fprintf(os.Stderr, "console bench: filled %s with %d events in %s (%d MB)\n", path, *benchEvents, time.Since(start).Round(time.Second), fi.Size()>>20)
	}
	st, err := sqlite.Open(ctx, sqlite.Config{Path: path})
	if err != nil {
		return nil, err
	}
	// The store's newest event is the benchmark's now: a kept file stays
	// "an hour old" at its end.
	newest, err := st.ListEvents(ctx, crmhook.EventFilter{Limit: 1})
	if err != nil || len(newest) == 0 {
		return nil, fmt.Errorf("console bench: the store is empty (%v)", err)
	}
	clock := newest[0].ReceivedAt.Add(time.Second)
	m := &admin.Server{
		Store: st, Releaser: storeReleaser{st}, Sinks: []string{"svc", "audit"}, Token: consoleToken,
		Now: func() time.Time { return clock }, Control: st,
	}
	h := m.Handler()

	// Sign in as a browser does.
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("POST", "/ui/login", strings.NewReader(url.Values{"token": {consoleToken}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	h.ServeHTTP(rec, req)
	var cookie *http.Cookie
	for _, c := range rec.Result().Cookies() {
		if c.Name == "crmhook_console" {
			cookie = c
		}
	}
	if cookie == nil {
		return nil, fmt.Errorf("console bench: sign-in failed: %d", rec.Code)
	}

	// What the pages look up: an event in the middle of the week, its
	// dedupe key, a dead letter's cursor half-way down the dead letters.
	mid, err := st.ListEvents(ctx, crmhook.EventFilter{Until: clock.Add(-benchSpan / 2), Limit: 1})
	if err != nil || len(mid) == 0 {
		return nil, fmt.Errorf("console bench: no event in the middle: %v", err)
	}
	deadMid, err := st.DeadLetters(ctx, "svc", console.CursorOf(mid[0]), 1)
	if err != nil || len(deadMid) == 0 {
		return nil, fmt.Errorf("console bench: no dead letter in the middle: %v", err)
	}
	before := fmt.Sprintf("%d.%s", mid[0].ReceivedAt.UnixMicro(), mid[0].ID)
	after := fmt.Sprintf("%d.%s", deadMid[0].Event.ReceivedAt.UnixMicro(), deadMid[0].Event.ID)
	q := url.QueryEscape
	return &benchEnv{h: h, cookie: cookie, pages: []benchPage{
		{"overview", "/ui/", 200},
		{"events", "/ui/events", 200},
		{"events_older_mid_week", "/ui/events?before=" + q(before), 200},
		{"events_source", "/ui/events?source=attio", 200},
		{"events_type_glob", "/ui/events?type=" + q("person.*"), 200},
		{"events_type_absent", "/ui/events?type=" + q("no.such.type"), 200},
		{"events_dead", "/ui/events?state=dead", 200},
		{"events_dead_source_older", "/ui/events?state=dead&source=billing&before=" + q(before), 200},
		{"events_pending", "/ui/events?state=pending", 200},
		{"events_delivered_source", "/ui/events?state=delivered&source=billing", 200},
		{"events_time_range", "/ui/events?since=72h&until=48h", 200},
		{"search_id", "/ui/events?q=" + q(mid[0].ID), http.StatusSeeOther},
		{"search_dedupe_key", "/ui/events?q=" + q(mid[0].DedupeKey), http.StatusSeeOther},
		{"event", "/ui/events/" + mid[0].ID, 200},
		{"dead_letters", "/ui/dead?sink=svc", 200},
		{"dead_letters_older", "/ui/dead?sink=svc&after=" + q(after), 200},
		{"rejections", "/ui/rejections", 200},
		{"subscriptions", "/ui/subscriptions", 200},
	}}, nil
}

// uuidV7 is a version 7 UUID of time t, as crmhook.NewEventID makes them.
func uuidV7(t time.Time, rnd *mrand.Rand) string {
	var u [16]byte
	ms := uint64(t.UnixMilli())
	for i := range 6 {
		u[i] = byte(ms >> (40 - 8*i))
	}
	for i := 6; i < 16; i++ {
		u[i] = byte(rnd.Uint32())
	}
	u[6] = u[6]&0x0f | 0x70
	u[8] = u[8]&0x3f | 0x80
	h := hex.EncodeToString(u[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// fillBenchStore writes n events, their deliveries and dedupe keys, and
// the rejections, subscription states and gaps, straight into the file.
func fillBenchStore(ctx context.Context, path string, n int, now time.Time) error {
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)&_pragma=synchronous(OFF)&_pragma=cache_size(-262144)&_pragma=foreign_keys(OFF)")
	if err != nil {
		return err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	var seed [16]byte
	_, _ = rand.Read(seed[:])
	rnd := mrand.New(mrand.NewPCG(uint64(seed[0])<<8|uint64(seed[1]), 7))
	sources := []struct{ name, provider string }{{"affinity", "affinity"}, {"attio", "attio"}, {"billing", "standard-webhooks"}}
	step := benchSpan / time.Duration(n)
	first := now.Add(-benchSpan)
	const batch = 20_000
	for lo := 0; lo < n; lo += batch {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		evStmt, _ := tx.PrepareContext(ctx, `INSERT INTO events (id, source, provider, type, dedupe_key, occurred_at, received_at, payload, dedupe_until) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`)
		dlStmt, _ := tx.PrepareContext(ctx, `INSERT INTO deliveries (event_id, sink, state, attempts, next_attempt_at, last_error, created_at, updated_at, delivered_at, event_received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
		for i := lo; i < min(lo+batch, n); i++ {
			at := first.Add(time.Duration(i) * step)
			src := sources[0]
			switch r := i % 10; {
			case r >= 5 && r < 9:
				src = sources[1]
			case r == 9:
				src = sources[2]
			}
			typ := benchTypes[(i*7+i/13)%len(benchTypes)]
			id := uuidV7(at, rnd)
			key := fmt.Sprintf("%s:%s:%d:%016x", src.name, typ, at.Unix(), rnd.Uint64())
			payload := fmt.Sprintf(`{"type":%q,"body":{"id":%d,"first_name":"Ada","last_name":"Lovelace","primary_email":"ada%d@example.com","organization_ids":[%d,%d],"notes":"%s"},"sent_at":%d}`,
				typ, i, i, i%977, i%1013, strings.Repeat("x", 120), at.Unix())
			us := at.UnixMicro()
			if _, err := evStmt.ExecContext(ctx, id, src.name, src.provider, typ, key, us-1_000_000, us, []byte(payload), us+benchSpan.Microseconds()); err != nil {
				return fmt.Errorf("fill event %d: %w", i, err)
			}
			sinks := []string{"svc"}
			if i%3 == 0 {
				sinks = append(sinks, "audit")
			}
			for _, sink := range sinks {
				state, attempts, lastErr := "delivered", 1, ""
				next, updated, delivered := us, us+200_000, any(us+200_000)
				switch {
				case sink == "svc" && i >= n-benchPending:
					state, attempts, updated, delivered = "pending", 0, us, nil
				case sink == "svc" && i >= n-benchPending-6000 && i%12 == 0 && i < n-benchPending:
					// The last hour's retrying deliveries.
					state, attempts, lastErr, delivered = "pending", 3, "HTTP 503 Service Unavailable", nil
					next, updated = now.Add(10*time.Minute).UnixMicro(), us+60_000_000
				case sink == "svc" && i%100 == 0, sink == "audit" && i%999 == 0:
					state, attempts, lastErr, delivered = "dead", 12, "HTTP 500 Internal Server Error: gave up after 12 attempts", nil
					updated = us + time.Hour.Microseconds()
				}
				if _, err := dlStmt.ExecContext(ctx, id, sink, state, attempts, next, lastErr, us, updated, delivered, us); err != nil {
					return fmt.Errorf("fill delivery %d: %w", i, err)
				}
			}
		}
		evStmt.Close()
		dlStmt.Close()
		if err := tx.Commit(); err != nil {
			return err
		}
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	for i := range 1000 {
		at := first.Add(time.Duration(i) * benchSpan / 1000)
		var released any
		if i < 900 {
			released = at.Add(time.Hour).UnixMicro()
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO rejections (event_id, source, provider, type, dedupe_key, occurred_at, received_at, payload, reason, rejected_at, released_at)
			VALUES (?, 'affinity', 'affinity', 'person.updated', ?, ?, ?, ?, 'outside the replay window: the timestamp is 13h0m0s old, the source accepts at most 12h0m0s', ?, ?)`,
			uuidV7(at, rnd), fmt.Sprintf("affinity:rejected:%d", i), at.Add(-13*time.Hour).UnixMicro(), at.UnixMicro(), []byte(`{"type":"person.updated","body":{"id":1}}`), at.UnixMicro(), released); err != nil {
			return err
		}
	}
	for _, s := range []struct{ source, id, status string }{{"affinity", "1001", "active"}, {"attio", "6c1e2f0a", "degraded"}, {"billing", "ep_1", "active"}} {
		if _, err := tx.ExecContext(ctx, `INSERT INTO subscription_states (source, subscription_id, status, last_checked_at, last_healthy_at) VALUES (?, ?, ?, ?, ?)`,
			s.source, s.id, s.status, now.UnixMicro(), now.UnixMicro()); err != nil {
			return err
		}
	}
	for i := range 20 {
		from := first.Add(time.Duration(i) * 8 * time.Hour)
		if _, err := tx.ExecContext(ctx, `INSERT INTO gaps (source, subscription_id, from_at, to_at, recorded_at) VALUES ('affinity', '1001', ?, ?, ?)`,
			from.UnixMicro(), from.Add(time.Hour).UnixMicro(), from.Add(time.Hour).UnixMicro()); err != nil {
			return err
		}
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	_, err = db.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`)
	return err
}
