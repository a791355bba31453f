package subscription_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/crmhook/crmhook"
	"github.com/crmhook/crmhook/affinity"
	"github.com/crmhook/crmhook/attio"
	"github.com/crmhook/crmhook/config"
	"github.com/crmhook/crmhook/internal/app"
	"github.com/crmhook/crmhook/sim/affinitysim"
	"github.com/crmhook/crmhook/sim/attiosim"
	"github.com/crmhook/crmhook/store/sqlite"
	"github.com/crmhook/crmhook/subscription"
)

// Path secrets of the test sources (Affinity wants 32 URL-safe characters).
const (
	v1Secret    = "v1-path-secret-0123456789abcdefghij"
	v1OldSecret = "v1-old-secret-0123456789abcdefghijk"
	v2Secret    = "v2-path-secret-0123456789abcdefghij"
	attioSecret = "attio-config-signing-secret"
)

// env is a world to plan in: the Affinity and Attio simulators over real
// HTTP, a SQLite store in a temp dir, a receiver at public_url, a config
// and a Manager over them.
type env struct {
	t        *testing.T
	ctx      context.Context
	dir      string
	aff      *affinitysim.Server
	affURL   string
	att      *attiosim.Server
	attURL   string
	store    *sqlite.Store
	cfg      *config.Config
	m        *subscription.Manager
	hookURL  string // the receiver's base URL (= public_url)
	receiver *app.Main
}

type envOptions struct {
	// realReceiver runs an app.Main on the config as the receiver at
	// public_url (it answers Affinity's probe as in production); otherwise
	// a plain server answers 200 to everything.
	realReceiver bool
	affinity     affinitysim.Config
}

// sourcesYAML is the sources block of the tests' config: an Affinity V1 and
// an Affinity v2 source on the same Affinity instance, and an Attio source.
const sourcesYAML = `
sources:
  - name: aff-v1
    provider: affinity
    secrets: [` + v1Secret + `]
    subscription:
      api: v1
      api_key: sim-admin-key
      api_base_url: {{AFF}}
      events: [person.created, organization.created]
  - name: aff-v2
    provider: affinity
    secrets: [` + v2Secret + `]
    subscription:
      api: v2
      api_key: sim-admin-key
      api_base_url: {{AFF}}
  - name: attio
    provider: attio
    secrets: [` + attioSecret + `]
    subscription:
      api_key: sim-attio-token
      api_base_url: {{ATT}}/v2
      events:
        - type: record.created
          filter: {"$and": [{"field": "id.object_id", "operator": "equals", "value": "people"}]}
        - note.created
`

func newEnv(t *testing.T, sources string, opts envOptions) *env {
	t.Helper()
	e := &env{t: t, ctx: context.Background(), dir: t.TempDir()}
	var err error
	if e.aff, err = affinitysim.New(opts.affinity); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.aff.Close)
	affSrv := httptest.NewServer(e.aff)
	t.Cleanup(affSrv.Close)
	e.affURL = affSrv.URL
	if e.att, err = attiosim.New(attiosim.Config{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.att.Close)
	attSrv := httptest.NewServer(e.att)
	t.Cleanup(attSrv.Close)
	e.attURL = attSrv.URL

	e.store, err = sqlite.Open(e.ctx, sqlite.Config{Path: filepath.Join(e.dir, "crmhook.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.store.Close() })

	e.cfg = e.config(sources, "http://127.0.0.1:1") // public_url is set once the receiver listens
	if opts.realReceiver {
		e.cfg.Listen = "127.0.0.1:0"
		e.receiver = &app.Main{Config: e.cfg, Store: e.store, Stdout: ioDiscard{}}
		if err := e.receiver.Open(e.ctx); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- e.receiver.Run(ctx) }()
		t.Cleanup(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("receiver: %v", err)
			}
			e.receiver.Close()
		})
		e.hookURL = e.receiver.HookURL()
	} else {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Write([]byte(`{"ok":true}`))
		}))
		t.Cleanup(srv.Close)
		e.hookURL = srv.URL
	}
	e.cfg.PublicURL = e.hookURL
	e.m = &subscription.Manager{Config: e.cfg, Store: e.store}
	return e
}

type ioDiscard struct{}

func (ioDiscard) Write(p []byte) (int, error) { return len(p), nil }

// config parses a config with the simulators' URLs filled in.
func (e *env) config(sources, publicURL string) *config.Config {
	e.t.Helper()
	y := "listen: 127.0.0.1:0\nadmin: {listen: \"off\"}\nwatchdog: off\n" +
		"store: sqlite://" + filepath.Join(e.dir, "crmhook.db") + "\npublic_url: " + publicURL + "\n" +
		strings.NewReplacer("{{AFF}}", e.affURL, "{{ATT}}", e.attURL).Replace(sources)
	cfg, err := config.Parse([]byte(y), os.Getenv)
	if err != nil {
		e.t.Fatalf("config: %v\n%s", err, y)
	}
	return cfg
}

// reconfigure swaps in a new sources block (the public URL is kept).
func (e *env) reconfigure(sources string) {
	e.t.Helper()
	cfg := e.config(sources, e.hookURL)
	*e.cfg = *cfg
}

func (e *env) plan(opts subscription.PlanOptions) *subscription.Plan {
	e.t.Helper()
	p, err := e.m.Plan(e.ctx, opts)
	if err != nil {
		e.t.Fatalf("plan: %v", err)
	}
	return p
}

func (e *env) apply(p *subscription.Plan) {
	e.t.Helper()
	if err := e.m.Apply(e.ctx, p); err != nil {
		e.t.Fatalf("apply: %v", err)
	}
}

// converge applies a fresh plan and checks that the next one is empty.
func (e *env) converge(opts subscription.PlanOptions) *subscription.Plan {
	e.t.Helper()
	p := e.plan(opts)
	e.apply(p)
	if again := e.plan(opts); again.Changed() {
		e.t.Fatalf("the plan after apply still changes something: %+v", again.Steps)
	}
	return p
}

// step returns the source's one step with action (failing otherwise).
func step(t *testing.T, p *subscription.Plan, source string, action subscription.Action) subscription.Step {
	t.Helper()
	var found []subscription.Step
	for _, s := range p.Steps {
		if s.Source == source && s.Action == action {
			found = append(found, s)
		}
	}
	if len(found) != 1 {
		t.Fatalf("want one %s step for %s, got %d in %+v", action, source, len(found), p.Steps)
	}
	return found[0]
}

func (e *env) affinityClient() *affinity.Client {
	e.t.Helper()
	c, err := affinity.NewClient(affinitysim.DefaultAdminKey, affinity.WithBaseURL(e.affURL), affinity.WithBackoff(time.Millisecond, 10*time.Millisecond))
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

func (e *env) attioClient() *attio.Client {
	e.t.Helper()
	c, err := attio.NewClient(attiosim.DefaultToken, attio.WithBaseURL(e.attURL+"/v2"))
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

// affinityAt returns the Affinity subscriptions at url.
func (e *env) affinityAt(url string) []affinitysim.Webhook {
	var out []affinitysim.Webhook
	for _, wh := range e.aff.Webhooks() {
		if wh.WebhookURL == url {
			out = append(out, wh)
		}
	}
	return out
}

// attioAt returns the Attio webhooks at url.
func (e *env) attioAt(url string) []attio.Webhook {
	var out []attio.Webhook
	for _, wh := range e.att.Webhooks() {
		if wh.TargetURL == url {
			out = append(out, wh)
		}
	}
	return out
}

func (e *env) secrets(source string) []crmhook.SourceSecret {
	e.t.Helper()
	s, err := e.store.ListSecrets(e.ctx, source)
	if err != nil {
		e.t.Fatal(err)
	}
	return s
}

// otherEndpoint is a URL that answers 200 but is nobody's hook: someone
// else's subscription.
func otherEndpoint(t *testing.T, path string) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	t.Cleanup(srv.Close)
	return srv.URL + path
}

// spyProvider wraps a Provider to watch the calls Manager makes.
type spyProvider struct {
	subscription.Provider
	mu       sync.Mutex
	creates  [][]subscription.Event
	onUpdate func(id string)
	// status overrides the status List reports, by subscription id.
	status map[string]subscription.Status
	// refuseEmpty makes Create refuse an empty event list as Attio's
	// validation would.
	refuseEmpty bool
}

func (s *spyProvider) List(ctx context.Context) ([]subscription.Remote, error) {
	rs, err := s.Provider.List(ctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, r := range rs {
		if st, ok := s.status[r.ID]; ok {
			rs[i].Status = st
		}
	}
	return rs, err
}

func (s *spyProvider) Create(ctx context.Context, url string, events []subscription.Event) (subscription.Remote, string, error) {
	s.mu.Lock()
	s.creates = append(s.creates, events)
	refuse := s.refuseEmpty && len(events) == 0
	s.mu.Unlock()
	if refuse {
		return subscription.Remote{}, "", fmt.Errorf("attio: create webhook: %w", attio.ErrValidation)
	}
	return s.Provider.Create(ctx, url, events)
}

func (s *spyProvider) Update(ctx context.Context, id, url string, events []subscription.Event) error {
	if s.onUpdate != nil {
		s.onUpdate(id)
	}
	return s.Provider.Update(ctx, id, url, events)
}

func (e *env) spy(source string) *spyProvider {
	e.t.Helper()
	for _, src := range e.cfg.Sources {
		if src.Name == source {
			p, err := subscription.NewProvider(e.cfg, src, nil)
			if err != nil {
				e.t.Fatal(err)
			}
			sp := &spyProvider{Provider: p}
			if e.m.Providers == nil {
				e.m.Providers = map[string]subscription.Provider{}
			}
			e.m.Providers[source] = sp
			return sp
		}
	}
	e.t.Fatalf("no source %s", source)
	return nil
}
