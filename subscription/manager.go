package subscription

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/crmhook/crmhook"
	"github.com/crmhook/crmhook/affinity"
	"github.com/crmhook/crmhook/attio"
	"github.com/crmhook/crmhook/config"
	"github.com/crmhook/crmhook/internal/retry"
)

// Manager plans and applies the subscriptions a config declares. Its
// methods are safe for concurrent use; a Manager must not be copied after
// first use.
type Manager struct {
	Config *config.Config
	Store  crmhook.ControlStore
	// Now is crmhook's one clock; default time.Now.
	Now func() time.Time
	// HTTPClient makes the providers' API calls; nil: a client with a 30s
	// timeout.
	HTTPClient *http.Client
	// Logger receives one line per change made (never a secret, an API key
	// or an unredacted URL); nil: discard.
	Logger *slog.Logger
	// Providers overrides NewProvider per source name (tests); nil or a
	// missing name: NewProvider.
	Providers map[string]Provider
	// SecretSettle is how long a new secret is kept in the store before the
	// provider is sent to it (an Attio webhook's events are set, an
	// Affinity URL is changed), so that every replica, reloading the
	// store's secrets every few seconds, accepts it by then. Zero: no wait
	// (one process, or tests that reload at once).
	SecretSettle time.Duration

	mu        sync.Mutex
	providers map[string]Provider // made by NewProvider, by source name
}

func (m *Manager) now() time.Time {
	if m.Now != nil {
		return m.Now()
	}
	return time.Now()
}

func (m *Manager) logger() *slog.Logger {
	if m.Logger != nil {
		return m.Logger
	}
	return slog.New(slog.DiscardHandler)
}

// configSource returns the configured source called name.
func (m *Manager) configSource(name string) (config.Source, error) {
	if m.Config == nil {
		return config.Source{}, errors.New("subscription: no config")
	}
	if m.Store == nil {
		return config.Source{}, errors.New("subscription: no store")
	}
	for _, s := range m.Config.Sources {
		if s.Name == name {
			return s, nil
		}
	}
	return config.Source{}, fmt.Errorf("subscription: no source %q in the config", name)
}

// declaredSource returns the source called name, which must declare a
// subscription.
func (m *Manager) declaredSource(name string) (config.Source, error) {
	src, err := m.configSource(name)
	if err != nil {
		return src, err
	}
	if src.Subscription == nil {
		return src, fmt.Errorf("subscription: source %q declares no subscription (add a subscription block)", name)
	}
	return src, nil
}

// settle waits SecretSettle, or until ctx ends.
func (m *Manager) settle(ctx context.Context) error {
	return retry.Sleep(ctx, m.SecretSettle)
}

// Provider is the subscription API of a declared source.
func (m *Manager) Provider(source string) (Provider, error) {
	src, err := m.declaredSource(source)
	if err != nil {
		return nil, err
	}
	return m.provider(src)
}

func (m *Manager) provider(src config.Source) (Provider, error) {
	if p, ok := m.Providers[src.Name]; ok && p != nil {
		return p, nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if p, ok := m.providers[src.Name]; ok {
		return p, nil
	}
	p, err := NewProvider(m.Config, src, m.HTTPClient)
	if err != nil {
		return nil, err
	}
	if m.providers == nil {
		m.providers = map[string]Provider{}
	}
	m.providers[src.Name] = p
	return p, nil
}

// sourceState is what planning one source needs besides the remote list.
type sourceState struct {
	src      config.Source
	p        Provider
	stored   []crmhook.SourceSecret
	accepted []string        // EffectiveSecrets now
	known    map[string]bool // every path secret the source accepts or ever had
	url      string          // the hook URL the subscription must point at
	want     []Event
	instance string // which provider instance (for limits and shared lists)
}

func (m *Manager) sourceState(ctx context.Context, name string) (*sourceState, error) {
	src, err := m.declaredSource(name)
	if err != nil {
		return nil, err
	}
	p, err := m.provider(src)
	if err != nil {
		return nil, err
	}
	stored, err := m.Store.ListSecrets(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("subscription: %s: list secrets: %w", name, err)
	}
	now := m.now()
	ss := &sourceState{
		src:      src,
		p:        p,
		stored:   stored,
		accepted: EffectiveSecrets(src.Secrets, stored, now),
		known:    map[string]bool{},
		url:      m.Config.HookURL(name, pathSecret(src, stored, now)),
		want:     declaredEvents(src.Subscription),
		instance: instanceKey(src),
	}
	for _, v := range src.Secrets {
		ss.known[v] = true
	}
	for _, v := range src.PathSecrets {
		ss.known[v] = true
	}
	for _, s := range stored {
		ss.known[s.Secret] = true
	}
	return ss, nil
}

// instanceKey names the provider instance a source's subscription lives
// on: sources with the same provider, API root and key share subscriptions
// and limits (Affinity's V1 and v2 APIs manage the same webhooks). The key
// is hashed: the result is never printed, but it is not a secret either.
func instanceKey(src config.Source) string {
	sub := src.Subscription
	base := sub.APIBaseURL
	if base == "" {
		base = map[crmhook.Provider]string{crmhook.ProviderAffinity: affinity.DefaultBaseURL, crmhook.ProviderAttio: attio.DefaultBaseURL}[src.Provider]
	}
	h := sha256.Sum256([]byte(sub.APIKey))
	return string(src.Provider) + " " + strings.TrimRight(base, "/") + " " + hex.EncodeToString(h[:8])
}

func (ss *sourceState) attio() bool { return ss.src.Provider == crmhook.ProviderAttio }

// owner says whose a remote subscription is.
type owner int

const (
	unmanaged owner = iota // nobody's we know
	ours                   // this source's
	another                // another configured source's hook
)

func (m *Manager) owner(ss *sourceState, r Remote) owner {
	rest, ok := strings.CutPrefix(r.URL, m.Config.PublicURL+"/hooks/")
	if !ok || m.Config.PublicURL == "" {
		return unmanaged
	}
	name, secret, hasSecret := strings.Cut(rest, "/")
	if name == ss.src.Name {
		if !hasSecret || (secret != "" && !strings.Contains(secret, "/") && ss.known[secret]) {
			return ours
		}
		return unmanaged
	}
	for _, s := range m.Config.Sources {
		if s.Name == name {
			return another
		}
	}
	return unmanaged
}

// secretKnown says whether the store holds an accepted secret of an Attio
// webhook: a stored secret with the webhook's id whose value the source
// accepts now (a stored active or retiring one, or a config secret the
// store attributes to the webhook).
func (ss *sourceState) secretKnown(id string) bool {
	for _, s := range ss.stored {
		if s.SubscriptionID == id && slices.Contains(ss.accepted, s.Secret) {
			return true
		}
	}
	return false
}

// healthy says whether a subscription of ours delivers to us as it is.
func (ss *sourceState) healthy(r Remote) bool {
	return r.Status == StatusActive && (!ss.attio() || ss.secretKnown(r.ID))
}

// drift lists how an ours subscription differs from the declaration.
func (ss *sourceState) drift(r Remote) []string {
	var out []string
	if r.URL != ss.url {
		out = append(out, "url")
	}
	return append(out, eventChanges(ss.want, r.Events, !ss.attio())...)
}

// olderFirst orders subscriptions by creation time when both say, else by
// numeric id (Affinity's grow with time), else keeps the provider's order.
func olderFirst(a, b Remote) int {
	if !a.CreatedAt.IsZero() && !b.CreatedAt.IsZero() {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
	}
	ai, aerr := strconv.ParseInt(a.ID, 10, 64)
	bi, berr := strconv.ParseInt(b.ID, 10, 64)
	if aerr == nil && berr == nil {
		return cmp.Compare(ai, bi)
	}
	return 0
}

// Plan lists every declared source's subscriptions at its provider and the
// steps that make them match the config.
func (m *Manager) Plan(ctx context.Context, opts PlanOptions) (*Plan, error) {
	names, err := m.planSources(opts.Sources)
	if err != nil {
		return nil, err
	}
	var deletes, rest []Step
	seen := map[string]bool{} // instance+id of the unmanaged already listed
	for _, name := range names {
		ss, err := m.sourceState(ctx, name)
		if err != nil {
			return nil, err
		}
		remotes, err := ss.p.List(ctx)
		if err != nil {
			return nil, fmt.Errorf("subscription: %s: list subscriptions: %w", name, err)
		}
		d, r := m.planSource(ss, remotes, opts.Prune, seen)
		deletes, rest = append(deletes, d...), append(rest, r...)
	}
	return &Plan{Steps: append(deletes, rest...)}, nil
}

// planSources checks the names asked for, or lists every declared source.
func (m *Manager) planSources(asked []string) ([]string, error) {
	if m.Config == nil {
		return nil, errors.New("subscription: no config")
	}
	if len(asked) > 0 {
		var names []string
		for _, name := range asked {
			if _, err := m.declaredSource(name); err != nil {
				return nil, err
			}
			if !slices.Contains(names, name) {
				names = append(names, name)
			}
		}
		return names, nil
	}
	var names []string
	for _, s := range m.Config.Sources {
		if s.Subscription != nil {
			names = append(names, s.Name)
		}
	}
	return names, nil
}

// planSource returns one source's delete steps and its other steps.
func (m *Manager) planSource(ss *sourceState, remotes []Remote, prune bool, seen map[string]bool) (deletes, rest []Step) {
	name := ss.src.Name
	var mine, others []Remote
	for _, r := range remotes {
		switch m.owner(ss, r) {
		case ours:
			mine = append(mine, r)
		case unmanaged:
			if key := ss.instance + " " + r.ID; !seen[key] {
				seen[key] = true
				others = append(others, r)
			}
		}
	}
	slices.SortStableFunc(mine, olderFirst)

	if len(mine) == 0 {
		var changes []string
		if len(ss.want) > 0 {
			changes = eventChanges(ss.want, nil, false)
		} else {
			changes = []string{"events: all"}
		}
		rest = append(rest, Step{Source: name, Action: ActionCreate, URL: RedactURL(ss.url), Status: StatusMissing, Changes: changes})
	} else {
		keep := 0
		for i, r := range mine {
			if ss.healthy(r) {
				keep = i
				break
			}
		}
		k := mine[keep]
		for i, r := range mine {
			if i != keep {
				deletes = append(deletes, Step{Source: name, Action: ActionDelete, SubscriptionID: r.ID, URL: RedactURL(r.URL), Status: r.Status, Changes: []string{"duplicate of " + k.ID}})
			}
		}
		rest = append(rest, ss.keepStep(k))
	}
	for _, r := range others {
		s := Step{Source: name, Action: ActionUnmanaged, SubscriptionID: r.ID, URL: RedactURL(r.URL), Status: r.Status}
		if prune {
			s.Action, s.Changes = ActionDelete, []string{"unmanaged (--prune)"}
			deletes = append(deletes, s)
			continue
		}
		rest = append(rest, s)
	}
	return deletes, rest
}

// keepStep is the step for the subscription of ours that is kept.
func (ss *sourceState) keepStep(r Remote) Step {
	s := Step{Source: ss.src.Name, SubscriptionID: r.ID, URL: RedactURL(ss.url), Status: r.Status, Action: ActionNone}
	drift := ss.drift(r)
	var reasons []string
	if ss.attio() {
		if r.Status == StatusDegraded || r.Status == StatusInactive {
			reasons = append(reasons, "status "+string(r.Status))
		}
		if !ss.secretKnown(r.ID) {
			reasons = append(reasons, "secret unknown")
		}
	}
	switch {
	case len(reasons) > 0:
		s.Action, s.Changes = ActionRecreate, append(reasons, drift...)
	case !ss.attio() && r.Status == StatusDisabled:
		s.Action, s.Changes = ActionEnable, append([]string{"status disabled"}, drift...)
	case len(drift) > 0:
		s.Action, s.Changes = ActionUpdate, drift
	}
	return s
}
