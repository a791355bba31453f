// Package natssink is crmhook's NATS JetStream sink: each event is published
// as a CloudEvent (structured JSON) on a subject built from a template, and
// the delivery is done once JetStream acknowledges that it stored it.
//
// The event id goes out as Nats-Msg-Id, so a retry after a lost ack is
// dropped by JetStream inside the stream's duplicate window (two minutes by
// default; see Config.Duplicates). Consumers should still dedupe on the
// CloudEvents id for redeliveries older than that window.
package natssink

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/crmhook/crmhook"
	"github.com/crmhook/crmhook/sink"
)

// Defaults of Config.
const (
	DefaultURL     = "nats://127.0.0.1:4222"
	DefaultSubject = "crmhook.{source}.{type}"
	DefaultTimeout = 5 * time.Second
)

// Config configures a NATS JetStream sink.
type Config struct {
	Name string // the sink's configured name; required
	// URL is the NATS server (or a comma-separated list). It may hold
	// credentials, so it is never put into errors. Default nats://127.0.0.1:4222.
	// Ignored when Conn is set.
	URL string
	// Subject is the subject template. Placeholders: {source}, {provider},
	// {type}; a type's dots make separate tokens ("person.created"), and
	// whitespace, '*' and '>' in values become '_'. Default
	// "crmhook.{source}.{type}".
	Subject string
	// Stream, when set, names a stream the sink makes sure captures its
	// subjects: it is created if missing, or its subjects extended with the
	// template's prefix ("crmhook.>") if they do not cover it. Empty leaves
	// streams to the operator; publishing with no stream for the subject
	// fails (and is retried).
	Stream string
	// Duplicates is the duplicate window of a stream the sink creates; zero
	// keeps the server's default (two minutes). An existing stream's window
	// is left alone.
	Duplicates time.Duration
	// Timeout bounds connecting, stream setup and each publish with its
	// ack. Default 5s.
	Timeout time.Duration
	// Conn, when set, is used instead of dialing URL; Close leaves it open.
	Conn *nats.Conn
}

func (c *Config) withDefaults() Config {
	out := *c
	if out.URL == "" {
		out.URL = DefaultURL
	}
	if out.Subject == "" {
		out.Subject = DefaultSubject
	}
	if out.Timeout == 0 {
		out.Timeout = DefaultTimeout
	}
	return out
}

func (c *Config) validate() (*subjectTemplate, string, error) {
	if c.Name == "" {
		return nil, "", errors.New("name is required")
	}
	if c.Timeout < 0 {
		return nil, "", fmt.Errorf("timeout %s is negative", c.Timeout)
	}
	if c.Duplicates < 0 {
		return nil, "", fmt.Errorf("duplicates %s is negative", c.Duplicates)
	}
	tmpl, err := parseSubjectTemplate(c.Subject)
	if err != nil {
		return nil, "", err
	}
	var capture string
	if c.Stream != "" {
		if strings.ContainsAny(c.Stream, ".*>/\\ \t\r\n") {
			return nil, "", fmt.Errorf("stream name %q may not contain '.', '*', '>', slashes or whitespace", c.Stream)
		}
		if capture, err = tmpl.capture(); err != nil {
			return nil, "", err
		}
	}
	return tmpl, capture, nil
}

// Sink publishes events to NATS JetStream.
type Sink struct {
	cfg     Config
	subject *subjectTemplate
	conn    *nats.Conn
	js      jetstream.JetStream
	owned   bool          // the sink dialed conn and closes it
	closed  chan struct{} // closed by the connection's ClosedHandler (owned only)
	once    sync.Once
	err     error
}

// New connects (unless cfg.Conn is given), sets up cfg.Stream if named, and
// returns the sink.
func New(cfg Config) (*Sink, error) {
	cfg = cfg.withDefaults()
	tmpl, capture, err := cfg.validate()
	if err != nil {
		return nil, fmt.Errorf("nats sink %q: %w", cfg.Name, err)
	}
	s := &Sink{cfg: cfg, subject: tmpl, conn: cfg.Conn}
	if s.conn == nil {
		s.closed = make(chan struct{})
		closed := s.closed
		nc, err := nats.Connect(cfg.URL,
			nats.Name("crmhook sink "+cfg.Name),
			nats.Timeout(cfg.Timeout),
			// Once connected, keep trying through outages: deliveries
			// meanwhile fail and are retried from the store.
			nats.MaxReconnects(-1),
			nats.ClosedHandler(func(*nats.Conn) { close(closed) }),
		)
		if err != nil {
			return nil, fmt.Errorf("nats sink %q: connect: %w", cfg.Name, stripURL(err))
		}
		s.conn, s.owned = nc, true
	}
	s.js, err = jetstream.New(s.conn)
	if err != nil {
		s.closeConn()
		return nil, fmt.Errorf("nats sink %q: jetstream: %w", cfg.Name, err)
	}
	if cfg.Stream != "" {
		ctx, cancel := context.WithTimeout(context.Background(), cfg.Timeout)
		defer cancel()
		if err := s.ensureStream(ctx, capture); err != nil {
			s.closeConn()
			return nil, fmt.Errorf("nats sink %q: stream %q: %w", cfg.Name, cfg.Stream, err)
		}
	}
	return s, nil
}

// ensureStream makes cfg.Stream exist and capture the subject filter capture.
func (s *Sink) ensureStream(ctx context.Context, capture string) error {
	for try := 0; ; try++ {
		st, err := s.js.Stream(ctx, s.cfg.Stream)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			_, err = s.js.CreateStream(ctx, jetstream.StreamConfig{
				Name:       s.cfg.Stream,
				Subjects:   []string{capture},
				Storage:    jetstream.FileStorage,
				Duplicates: s.cfg.Duplicates,
			})
			if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) && try == 0 {
				continue // another crmhook created it meanwhile: check its subjects
			}
			if err != nil {
				return fmt.Errorf("create: %w", err)
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("look up: %w", err)
		}
		cfg := st.CachedInfo().Config
		for _, subj := range cfg.Subjects {
			if subjectCovers(subj, capture) {
				return nil
			}
		}
		cfg.Subjects = append(cfg.Subjects, capture)
		if _, err := s.js.UpdateStream(ctx, cfg); err != nil {
			return fmt.Errorf("add subject %q: %w", capture, err)
		}
		return nil
	}
}

// Name is the sink's configured name.
func (s *Sink) Name() string { return s.cfg.Name }

// Subject returns the subject ev is published on.
func (s *Sink) Subject(ev *crmhook.Event) string { return s.subject.Subject(ev) }

// Deliver publishes ev and waits for JetStream's ack. An ack that reports a
// duplicate (the same event id inside the duplicate window) is a success:
// the stream already holds the event.
func (s *Sink) Deliver(ctx context.Context, ev *crmhook.Event, attempt int) error {
	body, err := sink.CloudEvent(ev)
	if err != nil {
		return &crmhook.DeliveryError{Err: fmt.Errorf("nats sink %q: %w", s.cfg.Name, err), Permanent: true}
	}
	subject := s.subject.Subject(ev)
	msg := nats.NewMsg(subject)
	msg.Data = body
	msg.Header.Set("Content-Type", sink.ContentTypeCloudEvents)

	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	_, err = s.js.PublishMsg(ctx, msg, jetstream.WithMsgID(ev.ID))
	switch {
	case err == nil:
		return nil
	case errors.Is(err, jetstream.ErrNoStreamResponse):
		return &crmhook.DeliveryError{Err: fmt.Errorf("nats sink %q: publish %q: no stream captures the subject: %w", s.cfg.Name, subject, err)}
	case errors.Is(err, context.DeadlineExceeded):
		return &crmhook.DeliveryError{Err: fmt.Errorf("nats sink %q: publish %q: no ack within the timeout: %w", s.cfg.Name, subject, err)}
	default:
		return &crmhook.DeliveryError{Err: fmt.Errorf("nats sink %q: publish %q: %w", s.cfg.Name, subject, err)}
	}
}

// Close drains and closes the connection if the sink dialed it; a Conn
// given in Config is left open.
func (s *Sink) Close() error {
	s.once.Do(func() {
		if !s.owned {
			return
		}
		if err := s.conn.Drain(); err != nil {
			if !errors.Is(err, nats.ErrConnectionClosed) {
				s.err = fmt.Errorf("nats sink %q: drain: %w", s.cfg.Name, err)
			}
			s.conn.Close()
			return
		}
		timer := time.NewTimer(s.cfg.Timeout)
		defer timer.Stop()
		select {
		case <-s.closed:
		case <-timer.C:
			s.conn.Close()
			s.err = fmt.Errorf("nats sink %q: drain: not finished within %s", s.cfg.Name, s.cfg.Timeout)
		}
	})
	return s.err
}

func (s *Sink) closeConn() {
	if s.owned {
		s.conn.Close()
	}
}

// stripURL drops the URL from a *url.Error: it may hold credentials.
func stripURL(err error) error {
	var uerr *url.Error
	if errors.As(err, &uerr) {
		return uerr.Err
	}
	return err
}
