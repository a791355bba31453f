// Package app assembles `crmhook serve` from a config: the store chosen by
// URL, the sinks, the receiver on the public listener, the dispatcher, the
// retention pruner and the admin listener. cmd/crmhook only parses flags and
// calls it; end-to-end tests and the benchmark run the same Main.
package app

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/crmhook/crmhook"
	"github.com/crmhook/crmhook/config"
	"github.com/crmhook/crmhook/deliver"
	"github.com/crmhook/crmhook/internal/admin"
	"github.com/crmhook/crmhook/metrics"
	"github.com/crmhook/crmhook/receiver"
	"github.com/crmhook/crmhook/subscription"
	"github.com/crmhook/crmhook/watchdog"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/time/rate"
)

// Main is one running crmhook: receiver, dispatcher and admin listener.
type Main struct {
	Config *config.Config
	// Stdout receives events of file sinks with path "-".
	Stdout io.Writer
	// Logger receives structured logs (never payloads or secrets).
	Logger *slog.Logger
	// Owner names this replica on leases; default host:pid.
	Owner string
	// Now is crmhook's one clock, shared by the store, the receiver, the
	// dispatcher, the sinks, retention and the admin API: a test that
	// freezes it freezes every component. Default time.Now. A Store given
	// from outside must have been opened with the same clock.
	Now func() time.Time
	// SecretsRefresh is how often the secrets kept in the store are
	// reloaded; default DefaultSecretsRefresh.
	SecretsRefresh time.Duration

	// ServerTimeouts overrides the public listener's timeouts; zero fields
	// keep the defaults. End-to-end tests shorten them to prove that slow
	// clients are cut off.
	ServerTimeouts ServerTimeouts

	Store      crmhook.Store
	Metrics    *metrics.Metrics
	Receiver   *receiver.Handler
	Dispatcher *deliver.Dispatcher
	// Subscriptions and Watchdog are set when a source declares a
	// subscription and the watchdog is on.
	Subscriptions *subscription.Manager
	Watchdog      *watchdog.Watchdog

	secrets map[string][]string // what each source accepts now (refreshSecrets)

	sinks    []crmhook.Sink
	route    func(*crmhook.Event) []string // names the sinks whose filter wants an event
	public   *http.Server
	admin    *http.Server
	publicLn net.Listener
	adminLn  net.Listener
	closers  []func() error
	// storeOwned says Close must close Store (Open opened it).
	storeOwned bool
}

// Open opens the store and sinks, builds the handlers and binds both
// listeners, so that HookURL and AdminURL are known before Run.
func (m *Main) Open(ctx context.Context) (err error) {
	cfg := m.Config
	if cfg == nil {
		return errors.New("app: no config")
	}
	if m.Stdout == nil {
		m.Stdout = os.Stdout
	}
	if m.Logger == nil {
		m.Logger = slog.New(slog.DiscardHandler)
	}
	if m.Now == nil {
		m.Now = time.Now
	}
	if m.SecretsRefresh <= 0 {
		m.SecretsRefresh = DefaultSecretsRefresh
	}
	m.secrets = make(map[string][]string)
	if m.Owner == "" {
		host, _ := os.Hostname()
		m.Owner = host + ":" + strconv.Itoa(os.Getpid())
	}
	defer func() {
		if err != nil {
			m.Close()
		}
	}()

	for _, d := range cfg.Deprecations {
		m.Logger.Warn("config: " + d)
	}
	m.Metrics = metrics.New(nil)
	if m.Store == nil {
		m.Store, err = OpenStore(ctx, cfg.Store, StoreOptions{Now: m.Now, OnCommit: m.Metrics.Commit})
		if err != nil {
			return err
		}
		m.storeOwned = true
	}
	m.Metrics.WatchStore(m.Store, m.Now)

	sinkCfgs := make([]deliver.SinkConfig, 0, len(cfg.Sinks))
	for i, sc := range cfg.Sinks {
		s, closeFn, err := openSink(sc, m.Stdout, m.Now)
		if err != nil {
			return fmt.Errorf("app: sinks[%d] %q: %w", i, sc.Name, err)
		}
		m.sinks = append(m.sinks, s)
		if closeFn != nil {
			m.closers = append(m.closers, closeFn)
		}
		sinkCfgs = append(sinkCfgs, deliver.SinkConfig{Sink: s, Concurrency: sc.Concurrency})
	}

	m.Dispatcher, err = deliver.New(deliver.Config{
		Store:         m.Store,
		Sinks:         sinkCfgs,
		Owner:         m.Owner,
		Lease:         cfg.Delivery.Lease,
		PollInterval:  cfg.Delivery.PollInterval,
		ShutdownGrace: cfg.ShutdownGrace,
		Retry: deliver.RetryPolicy{
			MaxAttempts: cfg.Delivery.MaxAttempts,
			MaxAge:      cfg.Delivery.GiveUpAfter,
			BaseDelay:   cfg.Delivery.BaseDelay,
			MaxDelay:    cfg.Delivery.MaxDelay,
		},
		Logger:    m.Logger.With("component", "dispatcher"),
		OnAttempt: m.Metrics.Attempt,
		Now:       m.Now,
	})
	if err != nil {
		return err
	}

	rcfg, err := receiverConfig(cfg)
	if err != nil {
		return err
	}
	rcfg.Store = m.Store
	m.route = router(cfg.Sinks)
	rcfg.Route = m.route
	rcfg.OnStored = m.Dispatcher.Notify
	rcfg.Observer = m.Metrics
	rcfg.Logger = m.Logger.With("component", "receiver")
	rcfg.Now = m.Now
	m.Receiver, err = receiver.New(rcfg)
	if err != nil {
		return err
	}
	// The secrets kept in the store count from the first request on.
	if err := m.refreshSecrets(ctx); err != nil {
		return fmt.Errorf("app: secrets: %w", err)
	}
	if err := m.openWatchdog(); err != nil {
		return err
	}

	// The public listener serves /hooks/… and nothing else: the receiver
	// answers 404 to every other path.
	timeouts := m.ServerTimeouts.withDefaults()
	m.public = &http.Server{
		Handler:           m.Receiver,
		ReadHeaderTimeout: timeouts.ReadHeader,
		ReadTimeout:       timeouts.Read,
		WriteTimeout:      timeouts.Write,
		IdleTimeout:       timeouts.Idle,
		MaxHeaderBytes:    PublicMaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(m.Logger.Handler(), slog.LevelDebug),
	}
	if m.publicLn, err = net.Listen("tcp", cfg.Listen); err != nil {
		return fmt.Errorf("app: listen: %w", err)
	}
	if cfg.TLS.Cert != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLS.Cert, cfg.TLS.Key)
		if err != nil {
			return fmt.Errorf("app: tls: %w", err)
		}
		m.publicLn = tls.NewListener(m.publicLn, &tls.Config{
			Certificates: []tls.Certificate{cert},
			MinVersion:   tls.VersionTLS12,
		})
	}
	if cfg.Admin.Listen != "off" {
		api := &admin.Server{
			Store: m.Store, Releaser: m.Receiver, Notify: m.Dispatcher.Notify, Sinks: sinkNames(cfg.Sinks),
			Token: cfg.Admin.Token, Now: m.Now, Logger: m.Logger.With("component", "admin"), Control: m.controlStore(),
			UILogger: m.Logger.With("component", "admin/ui"),
			Metrics:  promhttp.HandlerFor(m.Metrics.Registry, promhttp.HandlerOpts{}),
		}
		m.admin = &http.Server{
			Handler:           api.Handler(),
			ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout:       30 * time.Second,
			WriteTimeout:      60 * time.Second,
		}
		if m.adminLn, err = net.Listen("tcp", cfg.Admin.Listen); err != nil {
			return fmt.Errorf("app: admin listen: %w", err)
		}
	}
	return nil
}

// PublicMaxHeaderBytes bounds the request headers the public listener reads;
// larger headers are answered 431.
const PublicMaxHeaderBytes = 64 << 10

// ServerTimeouts are the public listener's http.Server timeouts.
type ServerTimeouts struct {
	ReadHeader time.Duration // default 5s: slow-header (Slowloris) clients are cut off
	Read       time.Duration // default 30s: the whole request, body included
	Write      time.Duration // default 30s
	Idle       time.Duration // default 90s
}

func (t ServerTimeouts) withDefaults() ServerTimeouts {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&t.ReadHeader, 5*time.Second)
	def(&t.Read, 30*time.Second)
	def(&t.Write, 30*time.Second)
	def(&t.Idle, 90*time.Second)
	return t
}

// HookURL is the public listener's base URL (hooks live under /hooks/).
func (m *Main) HookURL() string {
	scheme := "http"
	if m.Config.TLS.Cert != "" {
		scheme = "https"
	}
	return scheme + "://" + m.publicLn.Addr().String()
}

// AdminURL is the admin listener's base URL, "" when it is off.
func (m *Main) AdminURL() string {
	if m.adminLn == nil {
		return ""
	}
	return "http://" + m.adminLn.Addr().String()
}

// Run serves until ctx ends, then shuts down gracefully: new deliveries get
// 503 (the provider retries elsewhere or later), requests in flight finish
// their commit, the dispatcher finishes or releases its attempts.
func (m *Main) Run(ctx context.Context) error {
	errc := make(chan error, 2)
	go func() {
		if err := m.public.Serve(m.publicLn); !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("app: public listener: %w", err)
		}
	}()
	if m.admin != nil {
		go func() {
			if err := m.admin.Serve(m.adminLn); !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("app: admin listener: %w", err)
			}
		}()
	}
	dctx, stopDispatch := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	if ws, ok := m.Store.(wakeSubscriber); ok {
		ws.Subscribe(dctx, m.Dispatcher.Notify) // other replicas' inserts wake this dispatcher
	}
	wg.Go(func() { _ = m.Dispatcher.Run(dctx) })
	wg.Go(func() { m.prune(dctx) })
	if m.controlStore() != nil {
		wg.Go(func() { m.refreshSecretsLoop(dctx) })
	}
	if m.Watchdog != nil {
		wg.Go(func() { m.Watchdog.Run(dctx) })
	}

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
	}
	m.Logger.Info("shutting down")
	m.Receiver.Drain()
	sctx, cancel := context.WithTimeout(context.Background(), m.Config.ShutdownGrace)
	defer cancel()
	if err := m.public.Shutdown(sctx); err != nil {
		m.Logger.Warn("public listener did not drain in time", "err", err)
	}
	stopDispatch()
	wg.Wait()
	if m.admin != nil {
		_ = m.admin.Shutdown(sctx)
	}
	return runErr
}

// prune applies retention: fully delivered events older than Retention and
// dedupe keys past their window.
func (m *Main) prune(ctx context.Context) {
	every := min(time.Hour, max(m.Config.Retention/10, time.Minute))
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		now := m.Now()
		n, err := m.Store.Prune(ctx, crmhook.PruneParams{DeliveredBefore: now.Add(-m.Config.Retention), Now: now})
		switch {
		case err != nil && ctx.Err() == nil:
			m.Logger.Warn("retention prune failed", "err", err)
		case n > 0:
			m.Logger.Info("retention pruned events", "count", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Close releases what Open acquired. Run must have returned.
func (m *Main) Close() error {
	var errs []error
	if m.publicLn != nil {
		m.publicLn.Close()
	}
	if m.adminLn != nil {
		m.adminLn.Close()
	}
	for _, c := range m.closers {
		errs = append(errs, c())
	}
	m.closers = nil
	if m.storeOwned && m.Store != nil {
		errs = append(errs, m.Store.Close())
		m.Store = nil
	}
	return errors.Join(errs...)
}

// receiverConfig turns the validated config into the receiver's.
func receiverConfig(cfg *config.Config) (receiver.Config, error) {
	var rc receiver.Config
	for _, p := range cfg.TrustedProxies {
		pf, err := config.ParsePrefix(p)
		if err != nil {
			return rc, fmt.Errorf("app: trusted_proxies: %w", err)
		}
		rc.TrustedProxies = append(rc.TrustedProxies, pf)
	}
	for _, s := range cfg.Sources {
		src := receiver.Source{
			Name:         s.Name,
			Provider:     s.Provider,
			Secrets:      s.Secrets,
			PathSecrets:  s.PathSecrets,
			BodyLimit:    int64(s.BodyLimit),
			RateLimit:    rate.Limit(s.RateLimit.RPS),
			RateBurst:    s.RateLimit.Burst,
			RequireHTTPS: s.RequireHTTPS,
			DedupeWindow: cfg.DedupeWindow,
			Window:       s.ReplayWindow.Receiver(),
		}
		for _, a := range s.AllowIPs {
			pf, err := config.ParsePrefix(a)
			if err != nil {
				return rc, fmt.Errorf("app: source %q allow_ips: %w", s.Name, err)
			}
			src.AllowIPs = append(src.AllowIPs, pf)
		}
		rc.Sources = append(rc.Sources, src)
	}
	return rc, nil
}

func sinkNames(sinks []config.Sink) []string {
	names := make([]string, len(sinks))
	for i, s := range sinks {
		names[i] = s.Name
	}
	return names
}

// router names the sinks whose filter wants an event.
func router(sinks []config.Sink) func(*crmhook.Event) []string {
	filters := make([]crmhook.SinkFilter, len(sinks))
	for i, s := range sinks {
		filters[i] = s.Filter()
	}
	return func(ev *crmhook.Event) []string {
		var names []string
		for i, f := range filters {
			if f.Match(ev) {
				names = append(names, sinks[i].Name)
			}
		}
		return names
	}
}
