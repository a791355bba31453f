package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"testing/fstest"
	"time"
	"unicode/utf8"

	"github.com/crmhook/crmhook"
)

var errAboutRequest = errors.New("constraint failed")

func aboutRequest(err error) bool { return errors.Is(err, errAboutRequest) }

func TestClassify(t *testing.T) {
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	ioErr := errors.New("disk I/O error")
	tests := []struct {
		name    string
		ctx     context.Context
		err     error
		closed  bool
		want    []error // errors.Is targets the result must match
		notWant []error
		text    string
	}{
		{name: "about request", ctx: context.Background(), err: errAboutRequest,
			want: []error{errAboutRequest}, notWant: []error{crmhook.ErrUnavailable}, text: "db: op: constraint failed"},
		{name: "sorted", ctx: context.Background(), err: fmt.Errorf("x: %w", crmhook.ErrNotFound), closed: true,
			want: []error{crmhook.ErrNotFound}, notWant: []error{crmhook.ErrClosed, crmhook.ErrUnavailable}},
		{name: "already released", ctx: context.Background(), err: ErrAlreadyReleased,
			want: []error{ErrAlreadyReleased}, notWant: []error{crmhook.ErrUnavailable}},
		{name: "cancelled replaces driver words", ctx: cancelled, err: errors.New("interrupted"),
			want: []error{context.Canceled}, notWant: []error{crmhook.ErrUnavailable}, text: "db: op: context canceled"},
		{name: "closed", ctx: context.Background(), err: ioErr, closed: true,
			want: []error{crmhook.ErrClosed}, notWant: []error{crmhook.ErrUnavailable, ioErr}},
		{name: "unavailable", ctx: context.Background(), err: ioErr,
			want: []error{crmhook.ErrUnavailable, ioErr}, notWant: []error{crmhook.ErrClosed}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Classify(tt.ctx, "db: op", tt.err, tt.closed, aboutRequest)
			for _, w := range tt.want {
				if !errors.Is(got, w) {
					t.Errorf("Classify = %v, want it to match %v", got, w)
				}
			}
			for _, w := range tt.notWant {
				if errors.Is(got, w) {
					t.Errorf("Classify = %v, want it not to match %v", got, w)
				}
			}
			if !strings.HasPrefix(got.Error(), "db: op: ") {
				t.Errorf("Classify = %q, want the label first", got)
			}
			if tt.text != "" && got.Error() != tt.text {
				t.Errorf("Classify = %q, want %q", got, tt.text)
			}
		})
	}
	if err := Classify(context.Background(), "db: op", nil, true, aboutRequest); err != nil {
		t.Errorf("Classify(nil) = %v, want nil", err)
	}
}

func TestClassifyTx(t *testing.T) {
	// A BEGIN refused for a reason that would otherwise be about the
	// request is still the store's failure.
	got := ClassifyTx(context.Background(), "db: begin", errAboutRequest, false, aboutRequest)
	if !errors.Is(got, crmhook.ErrUnavailable) || !errors.Is(got, errAboutRequest) {
		t.Errorf("ClassifyTx = %v, want ErrUnavailable wrapping the cause", got)
	}
	got = ClassifyTx(context.Background(), "db: begin", errAboutRequest, true, aboutRequest)
	if !errors.Is(got, errAboutRequest) || errors.Is(got, crmhook.ErrUnavailable) {
		t.Errorf("ClassifyTx after close = %v, want Classify's answer", got)
	}
	got = ClassifyTx(context.Background(), "db: commit", errors.New("io"), true, aboutRequest)
	if !errors.Is(got, crmhook.ErrClosed) {
		t.Errorf("ClassifyTx after close = %v, want ErrClosed", got)
	}
	if !IsUnavailable(got) || IsUnavailable(errAboutRequest) {
		t.Error("IsUnavailable does not tell closed from about-request")
	}
}

func TestLoadMigrations(t *testing.T) {
	fsys := fstest.MapFS{
		"m/0002_second.sql": {Data: []byte("CREATE TABLE b;")},
		"m/0010_tenth.sql":  {Data: []byte("CREATE TABLE c;")},
		"m/0001_first.sql":  {Data: []byte("CREATE TABLE a;")},
		"other/0003_x.sql":  {Data: []byte("ignored")},
	}
	ms, err := LoadMigrations(fsys, "m")
	if err != nil {
		t.Fatal(err)
	}
	want := []Migration{{1, "first", "CREATE TABLE a;"}, {2, "second", "CREATE TABLE b;"}, {10, "tenth", "CREATE TABLE c;"}}
	if fmt.Sprint(ms) != fmt.Sprint(want) {
		t.Errorf("LoadMigrations = %v, want %v", ms, want)
	}

	for name, bad := range map[string]fstest.MapFS{
		"misnamed":  {"m/first.sql": {}},
		"version 0": {"m/0000_zero.sql": {}},
		"twice":     {"m/0001_a.sql": {}, "m/01_b.sql": {}},
		"no dir":    {"x/0001_a.sql": {}},
	} {
		if _, err := LoadMigrations(bad, "m"); err == nil || !strings.HasPrefix(err.Error(), "migrations: ") {
			t.Errorf("%s: LoadMigrations err = %v, want a migrations: error", name, err)
		}
	}
}

func TestPending(t *testing.T) {
	ms := []Migration{{Version: 1, Name: "a"}, {Version: 2, Name: "b"}, {Version: 3, Name: "c"}}
	got, err := Pending(ms, []int{2})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Version != 1 || got[1].Version != 3 {
		t.Errorf("Pending = %v, want versions 1 and 3 in order", got)
	}
	if got, err := Pending(ms, []int{1, 2, 3}); err != nil || len(got) != 0 {
		t.Errorf("Pending(all applied) = %v, %v, want none", got, err)
	}
	if _, err := Pending(ms, []int{1, 4}); err == nil || !strings.Contains(err.Error(), "migration 4, unknown") {
		t.Errorf("Pending(unknown 4) err = %v, want it named", err)
	}
}

func TestListLimitAndIsGlob(t *testing.T) {
	if ListLimit(0) != DefaultListLimit || ListLimit(-1) != DefaultListLimit || ListLimit(7) != 7 {
		t.Error("ListLimit does not default non-positive limits only")
	}
	for pattern, want := range map[string]bool{
		"person.created": false, "person.*": true, "list.?": true, "[ab]x": true, `a\.b`: true,
	} {
		if got := IsGlob(pattern); got != want {
			t.Errorf("IsGlob(%q) = %v, want %v", pattern, got, want)
		}
	}
}

type fakeRows struct {
	vals []int
	i    int
	err  error
}

func (r *fakeRows) Next() bool { r.i++; return r.i <= len(r.vals) }
func (r *fakeRows) Err() error { return r.err }

func TestCollect(t *testing.T) {
	scan := func(r *fakeRows) (int, error) {
		if v := r.vals[r.i-1]; v >= 0 {
			return v, nil
		}
		return 0, errors.New("bad row")
	}
	got, err := Collect(&fakeRows{vals: []int{3, 1, 2}}, scan)
	if err != nil || fmt.Sprint(got) != "[3 1 2]" {
		t.Errorf("Collect = %v, %v, want [3 1 2]", got, err)
	}
	if got, err := Collect(&fakeRows{}, scan); err != nil || got != nil {
		t.Errorf("Collect(no rows) = %#v, %v, want nil, nil", got, err)
	}
	if _, err := Collect(&fakeRows{vals: []int{1, -1, 2}}, scan); err == nil || err.Error() != "bad row" {
		t.Errorf("Collect(bad row) err = %v, want the scan error", err)
	}
	iterErr := errors.New("connection reset")
	if _, err := Collect(&fakeRows{vals: []int{1}, err: iterErr}, scan); !errors.Is(err, iterErr) {
		t.Errorf("Collect err = %v, want rows.Err()", err)
	}
}

func TestNewRejection(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	calls := 0
	now := func() time.Time { calls++; return at }

	r, payload := NewRejection(crmhook.Rejection{Reason: "bad"}, now)
	if r.Event.ID == "" || !r.RejectedAt.Equal(at) || !r.Event.ReceivedAt.Equal(at) {
		t.Errorf("NewRejection = %+v, want an id and both times set to now", r)
	}
	if payload == nil || len(payload) != 0 {
		t.Errorf("payload = %#v, want empty and non-nil", payload)
	}

	given := crmhook.Rejection{
		Event:      crmhook.Event{ID: "ev1", ReceivedAt: at.Add(-time.Hour), Payload: []byte(`{"x":1}`)},
		RejectedAt: at.Add(time.Minute),
	}
	calls = 0
	r, payload = NewRejection(given, now)
	if calls != 0 {
		t.Error("NewRejection called now with RejectedAt given")
	}
	if r.Event.ID != "ev1" || !r.RejectedAt.Equal(given.RejectedAt) || !r.Event.ReceivedAt.Equal(given.Event.ReceivedAt) ||
		string(payload) != `{"x":1}` {
		t.Errorf("NewRejection changed given fields: %+v %s", r, payload)
	}
}

func TestTruncateLastError(t *testing.T) {
	if got := TruncateLastError("short"); got != "short" {
		t.Errorf("TruncateLastError(short) = %q", got)
	}
	// "é" is two bytes; placing one across the limit must drop it whole.
	s := strings.Repeat("a", MaxLastError-1) + "é" + "tail"
	got := TruncateLastError(s)
	if len(got) != MaxLastError-1 || !utf8.ValidString(got) {
		t.Errorf("TruncateLastError = %d bytes (valid %v), want %d valid bytes", len(got), utf8.ValidString(got), MaxLastError-1)
	}
	exact := strings.Repeat("b", MaxLastError+10)
	if got := TruncateLastError(exact); len(got) != MaxLastError {
		t.Errorf("TruncateLastError(ASCII) = %d bytes, want %d", len(got), MaxLastError)
	}
}
