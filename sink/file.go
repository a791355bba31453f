package sink

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/crmhook/crmhook"
)

// ErrClosed is returned by a sink used after Close.
var ErrClosed = errors.New("sink: closed")

// FileConfig configures a file sink.
type FileConfig struct {
	Name string // the sink's configured name; required
	// Path is the file events are appended to, created with mode 0600 if
	// missing; "-" means standard output.
	Path string
	// Stdout replaces os.Stdout when Path is "-" (tests).
	Stdout io.Writer
}

func (c *FileConfig) validate() error {
	if c.Name == "" {
		return errors.New("name is required")
	}
	if c.Path == "" {
		return errors.New(`path is required ("-" for standard output)`)
	}
	return nil
}

// File appends one CloudEvent JSON document per line to a file or to
// standard output. Lines from concurrent deliveries never interleave. For a
// file, a delivery is done once its line is fsynced to disk.
type File struct {
	name string

	mu     sync.Mutex // serialises writes so lines stay whole
	w      io.Writer
	file   *os.File // non-nil when the sink opened a file it must sync and close
	closed bool
}

// NewFile returns a file sink, opening (or creating) its file for appending.
func NewFile(cfg FileConfig) (*File, error) {
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("file sink %q: %w", cfg.Name, err)
	}
	s := &File{name: cfg.Name}
	if cfg.Path == "-" {
		s.w = cfg.Stdout
		if s.w == nil {
			s.w = os.Stdout
		}
		return s, nil
	}
	f, err := os.OpenFile(cfg.Path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("file sink %q: open: %w", cfg.Name, err)
	}
	s.w, s.file = f, f
	return s, nil
}

// Name is the sink's configured name.
func (s *File) Name() string { return s.name }

// Deliver appends ev as one line.
func (s *File) Deliver(ctx context.Context, ev *crmhook.Event, attempt int) error {
	doc, err := CloudEvent(ev)
	if err != nil {
		return &crmhook.DeliveryError{Err: fmt.Errorf("file sink %q: %w", s.name, err), Permanent: true}
	}
	// The payload is kept verbatim elsewhere, but a line must not hold a
	// newline: compact it (whitespace only; the values are unchanged).
	var line bytes.Buffer
	line.Grow(len(doc) + 1)
	if err := json.Compact(&line, doc); err != nil {
		return &crmhook.DeliveryError{Err: fmt.Errorf("file sink %q: compact: %w", s.name, err), Permanent: true}
	}
	line.WriteByte('\n')

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return &crmhook.DeliveryError{Err: fmt.Errorf("file sink %q: %w", s.name, ErrClosed)}
	}
	if err := ctx.Err(); err != nil {
		return &crmhook.DeliveryError{Err: fmt.Errorf("file sink %q: %w", s.name, err)}
	}
	// One Write per line: with O_APPEND the line lands in one piece even if
	// another process appends to the same file.
	n, err := s.w.Write(line.Bytes())
	if err != nil {
		if n > 0 && n < line.Len() {
			// End the torn line so the retry starts on a line of its own.
			_, _ = s.w.Write([]byte{'\n'})
		}
		return &crmhook.DeliveryError{Err: fmt.Errorf("file sink %q: write: %w", s.name, err)}
	}
	if s.file != nil {
		if err := s.file.Sync(); err != nil {
			return &crmhook.DeliveryError{Err: fmt.Errorf("file sink %q: fsync: %w", s.name, err)}
		}
	}
	return nil
}

// Close closes the sink's file; standard output is left open. Deliveries
// after Close fail (and are retried by whoever still holds them).
func (s *File) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if s.file != nil {
		if err := s.file.Close(); err != nil {
			return fmt.Errorf("file sink %q: close: %w", s.name, err)
		}
	}
	return nil
}
