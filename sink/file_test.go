package sink

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/crmhook/crmhook"
)

func newFileSink(t *testing.T, cfg FileConfig) *File {
	t.Helper()
	if cfg.Name == "" {
		cfg.Name = "archive"
	}
	s, err := NewFile(cfg)
	if err != nil {
		t.Fatalf("NewFile: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// readLines decodes every line of a JSON-lines file.
func readLines(t *testing.T, b []byte) []ceDoc {
	t.Helper()
	var docs []ceDoc
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		docs = append(docs, decodeCE(t, sc.Bytes()))
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return docs
}

func TestFileAppendsLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.jsonl")
	if err := os.WriteFile(path, nil, 0o644); err != nil { // an existing file is appended to
		t.Fatal(err)
	}
	s := newFileSink(t, FileConfig{Path: path})
	first := testEvent()
	second := testEvent()
	second.ID, second.Type = "second", "person.updated"
	// A pretty-printed payload must still give one line.
	second.Payload = json.RawMessage("{\n  \"type\": \"person.updated\",\n  \"body\": {\"id\": 42}\n}")
	for _, ev := range []*crmhook.Event{first, second} {
		if err := s.Deliver(context.Background(), ev, 1); err != nil {
			t.Fatalf("Deliver: %v", err)
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	docs := readLines(t, b)
	if len(docs) != 2 || bytes.Count(b, []byte("\n")) != 2 {
		t.Fatalf("got %d lines:\n%s", len(docs), b)
	}
	if docs[0].ID != first.ID || docs[1].ID != "second" || docs[1].Type != "affinity.person.updated" {
		t.Errorf("lines = %+v", docs)
	}
	var data map[string]any
	if err := json.Unmarshal(docs[1].Data, &data); err != nil || data["type"] != "person.updated" {
		t.Errorf("data = %s (%v)", docs[1].Data, err)
	}
}

func TestFileCreatesPrivateFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "new.jsonl")
	s := newFileSink(t, FileConfig{Path: path})
	if err := s.Deliver(context.Background(), testEvent(), 1); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		t.Errorf("mode = %v, want no group or other access", perm)
	}
}

func TestFileConcurrentWritersDoNotInterleave(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.jsonl")
	s := newFileSink(t, FileConfig{Path: path})
	const writers, each = 8, 25
	big := `{"blob":"` + strings.Repeat("z", 16<<10) + `"}` // larger than a pipe or page
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				ev := testEvent()
				ev.ID = strconv.Itoa(w) + "-" + strconv.Itoa(i)
				ev.Payload = json.RawMessage(big)
				if err := s.Deliver(context.Background(), ev, 1); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	docs := readLines(t, b)
	if len(docs) != writers*each {
		t.Fatalf("got %d lines, want %d", len(docs), writers*each)
	}
	ids := map[string]bool{}
	for _, d := range docs {
		if string(d.Data) != big {
			t.Fatalf("line %s has mangled data", d.ID)
		}
		ids[d.ID] = true
	}
	if len(ids) != writers*each {
		t.Errorf("got %d distinct ids, want %d", len(ids), writers*each)
	}
}

func TestFileStdout(t *testing.T) {
	var buf bytes.Buffer
	s := newFileSink(t, FileConfig{Path: "-", Stdout: &buf})
	if err := s.Deliver(context.Background(), testEvent(), 1); err != nil {
		t.Fatal(err)
	}
	docs := readLines(t, buf.Bytes())
	if len(docs) != 1 || docs[0].ID != testEvent().ID {
		t.Fatalf("stdout got %q", buf.String())
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestFileClosed(t *testing.T) {
	s := newFileSink(t, FileConfig{Path: filepath.Join(t.TempDir(), "x.jsonl")})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close = %v", err)
	}
	err := s.Deliver(context.Background(), testEvent(), 1)
	var de *crmhook.DeliveryError
	if !errors.As(err, &de) || de.Permanent || !errors.Is(err, ErrClosed) {
		t.Fatalf("Deliver after Close = %v, want a retryable ErrClosed", err)
	}
}

// failingWriter fails after accepting part of a write.
type failingWriter struct{ buf bytes.Buffer }

func (w *failingWriter) Write(p []byte) (int, error) {
	if len(p) > 1 {
		w.buf.Write(p[:len(p)/2])
		return len(p) / 2, errors.New("disk full")
	}
	return w.buf.Write(p)
}

func TestFileTornWriteEndsTheLine(t *testing.T) {
	w := &failingWriter{}
	s := newFileSink(t, FileConfig{Path: "-", Stdout: w})
	err := s.Deliver(context.Background(), testEvent(), 1)
	var de *crmhook.DeliveryError
	if !errors.As(err, &de) || de.Permanent {
		t.Fatalf("Deliver = %v, want a retryable *DeliveryError", err)
	}
	if !bytes.HasSuffix(w.buf.Bytes(), []byte("\n")) {
		t.Error("a torn line was left without a newline")
	}
}

func TestNewFileValidation(t *testing.T) {
	for _, cfg := range []FileConfig{
		{Path: "-"},
		{Name: "a"},
		{Name: "a", Path: filepath.Join(t.TempDir(), "missing-dir", "x.jsonl")},
	} {
		if _, err := NewFile(cfg); err == nil {
			t.Errorf("NewFile(%+v) = nil error", cfg)
		}
	}
}
