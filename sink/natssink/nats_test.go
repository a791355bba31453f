package natssink

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/crmhook/crmhook"
	"github.com/crmhook/crmhook/sink"
)

// natsURL returns the test server's URL, after checking it answers. With
// CI=true an unreachable server fails the test; elsewhere it is skipped.
func natsURL(t *testing.T) string {
	t.Helper()
	u := os.Getenv("TEST_NATS_URL")
	if u == "" {
		u = DefaultURL
	}
	nc, err := nats.Connect(u, nats.Timeout(2*time.Second))
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("NATS JetStream at TEST_NATS_URL (%s) is unreachable: %v", u, err)
		}
		t.Skipf("NATS JetStream at TEST_NATS_URL (%s) is unreachable (%v); start one (nats-server -js) or set TEST_NATS_URL", u, err)
	}
	nc.Close()
	return u
}

// testJS is a JetStream client for the test's own checks and cleanup.
func testJS(t *testing.T, url string) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// unique returns a random token, so tests share nothing on the server.
func unique(t *testing.T) string {
	t.Helper()
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// deleteStreamOnCleanup removes the stream at the end of the test, whoever created it.
func deleteStreamOnCleanup(t *testing.T, js jetstream.JetStream, name string) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := js.DeleteStream(ctx, name); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
			t.Errorf("delete stream %s: %v", name, err)
		}
	})
}

func newSink(t *testing.T, cfg Config) *Sink {
	t.Helper()
	if cfg.Name == "" {
		cfg.Name = "bus"
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func event(id, typ string) *crmhook.Event {
	return &crmhook.Event{
		ID:         id,
		Source:     "attio-prod",
		Provider:   crmhook.ProviderAttio,
		Type:       typ,
		DedupeKey:  "key-" + id,
		ReceivedAt: time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC),
		Payload:    json.RawMessage(`{"event_type":"` + typ + `","id":{"record_id":"` + id + `"}}`),
	}
}

func streamMsgs(t *testing.T, js jetstream.JetStream, stream string) []*jetstream.RawStreamMsg {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var msgs []*jetstream.RawStreamMsg
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("get message %d: %v", seq, err)
		}
		msgs = append(msgs, m)
	}
	return msgs
}

func TestPublishEvents(t *testing.T) {
	url := natsURL(t)
	js := testJS(t, url)
	id := unique(t)
	stream := "CRMHOOKTEST_" + id
	prefix := "crmhooktest" + id
	deleteStreamOnCleanup(t, js, stream)
	s := newSink(t, Config{URL: url, Subject: prefix + ".{source}.{type}", Stream: stream})

	events := []*crmhook.Event{
		event(id+"-1", "record.created"),
		event(id+"-2", "list-entry.updated"),
		event(id+"-3", "odd type*"),
	}
	for _, ev := range events {
		if err := s.Deliver(context.Background(), ev, 1); err != nil {
			t.Fatalf("Deliver %s: %v", ev.ID, err)
		}
	}
	msgs := streamMsgs(t, js, stream)
	if len(msgs) != len(events) {
		t.Fatalf("stream holds %d messages, want %d", len(msgs), len(events))
	}
	wantSubjects := []string{
		prefix + ".attio-prod.record.created",
		prefix + ".attio-prod.list-entry.updated",
		prefix + ".attio-prod.odd_type_",
	}
	for i, m := range msgs {
		ev := events[i]
		if m.Subject != wantSubjects[i] {
			t.Errorf("message %d subject = %q, want %q", i, m.Subject, wantSubjects[i])
		}
		if got := m.Header.Get(jetstream.MsgIDHeader); got != ev.ID {
			t.Errorf("message %d Nats-Msg-Id = %q, want %q", i, got, ev.ID)
		}
		if got := m.Header.Get("Content-Type"); got != sink.ContentTypeCloudEvents {
			t.Errorf("message %d Content-Type = %q", i, got)
		}
		want, err := sink.CloudEvent(ev)
		if err != nil {
			t.Fatal(err)
		}
		if string(m.Data) != string(want) {
			t.Errorf("message %d data = %s, want the CloudEvent %s", i, m.Data, want)
		}
		var ce struct {
			ID   string          `json:"id"`
			Type string          `json:"type"`
			Data json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal(m.Data, &ce); err != nil || ce.ID != ev.ID || ce.Type != "attio."+ev.Type || string(ce.Data) != string(ev.Payload) {
			t.Errorf("message %d CloudEvent = %+v (%v)", i, ce, err)
		}
	}
}

func TestDuplicateEventStoredOnce(t *testing.T) {
	url := natsURL(t)
	js := testJS(t, url)
	id := unique(t)
	stream := "CRMHOOKTEST_" + id
	deleteStreamOnCleanup(t, js, stream)
	s := newSink(t, Config{URL: url, Subject: "crmhooktest" + id + ".{type}", Stream: stream, Duplicates: time.Minute})

	ev := event(id, "record.updated")
	for attempt := 1; attempt <= 2; attempt++ {
		if err := s.Deliver(context.Background(), ev, attempt); err != nil {
			t.Fatalf("Deliver attempt %d: %v", attempt, err)
		}
	}
	if n := len(streamMsgs(t, js, stream)); n != 1 {
		t.Fatalf("stream holds %d messages, want 1 (deduped by Nats-Msg-Id)", n)
	}
	// A different event on the same subject is not a duplicate.
	if err := s.Deliver(context.Background(), event(id+"-other", "record.updated"), 1); err != nil {
		t.Fatal(err)
	}
	if n := len(streamMsgs(t, js, stream)); n != 2 {
		t.Fatalf("stream holds %d messages, want 2", n)
	}
}

func TestNoStreamIsRetryable(t *testing.T) {
	url := natsURL(t)
	s := newSink(t, Config{URL: url, Subject: "crmhooktest" + unique(t) + ".nostream.{type}"})
	err := s.Deliver(context.Background(), event(unique(t), "record.created"), 1)
	var de *crmhook.DeliveryError
	if !errors.As(err, &de) || de.Permanent {
		t.Fatalf("Deliver = %v, want a retryable *DeliveryError", err)
	}
	if !strings.Contains(err.Error(), "no stream") {
		t.Errorf("error %q does not say that no stream captures the subject", err)
	}
}

func TestExistingStreamGetsSubject(t *testing.T) {
	url := natsURL(t)
	js := testJS(t, url)
	id := unique(t)
	stream := "CRMHOOKTEST_" + id
	deleteStreamOnCleanup(t, js, stream)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	other := "crmhooktestother" + id + ".>"
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: stream, Subjects: []string{other}, Storage: jetstream.MemoryStorage}); err != nil {
		t.Fatal(err)
	}
	prefix := "crmhooktest" + id
	s := newSink(t, Config{URL: url, Subject: prefix + ".{source}.{type}", Stream: stream})
	st, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	subjects := st.CachedInfo().Config.Subjects
	if len(subjects) != 2 || subjects[0] != other || subjects[1] != prefix+".>" {
		t.Errorf("stream subjects = %q, want the existing one and %q", subjects, prefix+".>")
	}
	if err := s.Deliver(ctx, event(id, "record.created"), 1); err != nil {
		t.Fatalf("Deliver: %v", err)
	}

	// A second sink on the same stream finds the subject covered and changes nothing.
	newSink(t, Config{Name: "bus2", URL: url, Subject: prefix + ".{type}", Stream: stream})
	st, err = js.Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	if got := st.CachedInfo().Config.Subjects; len(got) != 2 {
		t.Errorf("stream subjects = %q after a second sink, want them unchanged", got)
	}
}

func TestSharedConnStaysOpen(t *testing.T) {
	url := natsURL(t)
	js := testJS(t, url)
	nc := js.Conn()
	s, err := New(Config{Name: "shared", Conn: nc, Subject: "crmhooktest" + unique(t) + ".{type}"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if nc.IsClosed() || nc.IsDraining() {
		t.Error("Close closed a connection the sink did not own")
	}
}

func TestCloseDrainsOwnConnection(t *testing.T) {
	url := natsURL(t)
	s, err := New(Config{Name: "own", URL: url})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if !s.conn.IsClosed() {
		t.Error("own connection still open after Close")
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
	err = s.Deliver(context.Background(), event(unique(t), "record.created"), 1)
	var de *crmhook.DeliveryError
	if !errors.As(err, &de) || de.Permanent {
		t.Fatalf("Deliver after Close = %v, want a retryable *DeliveryError", err)
	}
}

func TestConnectErrorHidesCredentials(t *testing.T) {
	// Port 1 on loopback: nothing listens, the dial is refused at once.
	_, err := New(Config{Name: "down", URL: "nats://crmuser:hunter2secret@127.0.0.1:1", Timeout: time.Second})
	if err == nil {
		t.Fatal("New = nil error with no server")
	}
	if strings.Contains(err.Error(), "hunter2secret") {
		t.Errorf("error %q leaks the password", err)
	}
}

func TestNewValidation(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"no name", Config{}, "name is required"},
		{"bad template", Config{Name: "a", Subject: "x.{nope}"}, "unknown placeholder"},
		{"stream with leading placeholder", Config{Name: "a", Subject: "{source}.{type}", Stream: "S"}, "literal token"},
		{"bad stream name", Config{Name: "a", Stream: "a.b"}, "stream name"},
		{"negative timeout", Config{Name: "a", Timeout: -time.Second}, "negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}
