package app

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/crmhook/crmhook"
	"github.com/crmhook/crmhook/config"
	"github.com/crmhook/crmhook/sink"
	"github.com/crmhook/crmhook/sink/natssink"
	"github.com/crmhook/crmhook/store/sqlite"
)

// StoreOptions are what every store takes besides its URL.
type StoreOptions struct {
	// Now is crmhook's one clock; the store judges due-ness, leases and
	// dedupe windows by it. Default time.Now.
	Now func() time.Time
	// OnCommit observes group commits (metrics); it may be nil.
	OnCommit func(batch int, took time.Duration)
}

// OpenStore opens the store a URL names: sqlite://path (or a plain path) for
// the embedded store, postgres://… for the shared one.
func OpenStore(ctx context.Context, rawURL string, opts StoreOptions) (crmhook.Store, error) {
	u, err := config.ParseStoreURL(rawURL)
	if err != nil {
		return nil, fmt.Errorf("app: %w", err)
	}
	if u.Driver == "postgres" {
		return openPostgres(ctx, u.URL, opts)
	}
	st, err := sqlite.Open(ctx, sqlite.Config{Path: u.Path, OnCommit: opts.OnCommit, Now: opts.Now})
	if err != nil {
		return nil, fmt.Errorf("app: open store: %w", err)
	}
	return st, nil
}

// openSink builds one configured sink and, when it holds resources, the
// function that releases them.
func openSink(sc config.Sink, stdout io.Writer, now func() time.Time) (crmhook.Sink, func() error, error) {
	switch sc.Type {
	case "http":
		s, err := sink.NewHTTP(sink.HTTPConfig{Name: sc.Name, URL: sc.URL, Secret: sc.Secret, Timeout: sc.Timeout, Headers: sc.Headers, Now: now})
		if err != nil {
			return nil, nil, err
		}
		return s, s.Close, nil
	case "exec":
		env := make([]string, 0, len(sc.Env))
		for k, v := range sc.Env {
			env = append(env, k+"="+v)
		}
		s, err := sink.NewExec(sink.ExecConfig{Name: sc.Name, Command: sc.Command, Timeout: sc.Timeout, Env: env})
		if err != nil {
			return nil, nil, err
		}
		return s, s.Close, nil
	case "file":
		s, err := sink.NewFile(sink.FileConfig{Name: sc.Name, Path: sc.Path, Stdout: stdout})
		if err != nil {
			return nil, nil, err
		}
		return s, s.Close, nil
	case "nats":
		s, err := natssink.New(natssink.Config{Name: sc.Name, URL: sc.NATSURL, Subject: sc.Subject, Stream: sc.Stream, Timeout: sc.Timeout})
		if err != nil {
			return nil, nil, err
		}
		return s, s.Close, nil
	}
	return nil, nil, fmt.Errorf("unknown sink type %q", sc.Type)
}
