package subscription

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/crmhook/crmhook"
	"github.com/crmhook/crmhook/affinity"
	"github.com/crmhook/crmhook/attio"
	"github.com/crmhook/crmhook/config"
)

// Provider is one source's subscription API.
type Provider interface {
	// List returns every subscription the key can see (all pages).
	List(ctx context.Context) ([]Remote, error)
	// Create subscribes url to events (empty: every event type at
	// Affinity; nothing at Attio, see NewProvider) and returns the new
	// subscription with its signing secret: Attio's, returned only here;
	// "" for Affinity, which signs nothing.
	Create(ctx context.Context, url string, events []Event) (Remote, string, error)
	// Update sets a subscription's URL and events.
	Update(ctx context.Context, id, url string, events []Event) error
	// Enable switches a disabled subscription back on (Affinity); Attio
	// answers ErrCannotReactivate.
	Enable(ctx context.Context, id string) error
	// Delete removes a subscription; one that is already gone is no error.
	Delete(ctx context.Context, id string) error
	// Limit is the most subscriptions the provider allows per instance
	// (Affinity V1: 3); 0 when it documents none.
	Limit() int
}

// defaultHTTPTimeout bounds each provider call of a Provider made without
// an HTTP client. Affinity probes the URL during create and update, so the
// call takes as long as the probe.
const defaultHTTPTimeout = 30 * time.Second

// NewProvider returns the subscription API of src, from its subscription
// block: Affinity's API V1 or v2 (api), or Attio, at api_base_url (default
// the provider's own) with api_key. hc, when not nil, makes the HTTP calls.
//
// Attio wants at least one subscription per webhook, so its Provider sends
// an empty event list as one subscription that matches no event (record.created
// filtered on a workspace id no workspace has), and lists such a webhook
// with no events. This is how Create makes a webhook that receives nothing
// until its secret is stored.
func NewProvider(cfg *config.Config, src config.Source, hc *http.Client) (Provider, error) {
	sub := src.Subscription
	if sub == nil {
		return nil, fmt.Errorf("subscription: source %q declares no subscription", src.Name)
	}
	if hc == nil {
		hc = &http.Client{Timeout: defaultHTTPTimeout}
	}
	switch src.Provider {
	case crmhook.ProviderAffinity:
		opts := []affinity.Option{affinity.WithHTTPClient(hc)}
		if sub.APIBaseURL != "" {
			opts = append(opts, affinity.WithBaseURL(sub.APIBaseURL))
		}
		c, err := affinity.NewClient(sub.APIKey, opts...)
		if err != nil {
			return nil, fmt.Errorf("subscription: source %q: %w", src.Name, err)
		}
		switch sub.API {
		case "", "v1":
			return &affinityV1{c: c}, nil
		case "v2":
			return &affinityV2{s: c.WebhooksV2()}, nil
		}
		return nil, fmt.Errorf("subscription: source %q: api %q is not v1 or v2", src.Name, sub.API)
	case crmhook.ProviderAttio:
		opts := []attio.Option{attio.WithHTTPClient(hc)}
		if sub.APIBaseURL != "" {
			opts = append(opts, attio.WithBaseURL(sub.APIBaseURL))
		}
		c, err := attio.NewClient(sub.APIKey, opts...)
		if err != nil {
			return nil, fmt.Errorf("subscription: source %q: %w", src.Name, err)
		}
		return &attioProvider{c: c}, nil
	}
	return nil, fmt.Errorf("subscription: source %q: %s sources have no subscription API", src.Name, src.Provider)
}

// affinityV1 is Affinity's API V1 /webhook.
type affinityV1 struct{ c *affinity.Client }

func (p *affinityV1) List(ctx context.Context) ([]Remote, error) {
	whs, _, err := p.c.Webhooks.List(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Remote, 0, len(whs))
	for _, wh := range whs {
		st := StatusActive
		if wh.Disabled {
			st = StatusDisabled
		}
		out = append(out, Remote{ID: strconv.FormatInt(wh.ID, 10), URL: wh.WebhookURL, Events: affinityEvents(wh.Subscriptions), Status: st})
	}
	return out, nil
}

func (p *affinityV1) Create(ctx context.Context, url string, events []Event) (Remote, string, error) {
	types, err := affinityTypes(events)
	if err != nil {
		return Remote{}, "", err
	}
	wh, _, err := p.c.Webhooks.Create(ctx, &affinity.CreateWebhookRequest{WebhookURL: url, Subscriptions: types})
	if err != nil {
		return Remote{}, "", err
	}
	st := StatusActive
	if wh.Disabled {
		st = StatusDisabled
	}
	return Remote{ID: strconv.FormatInt(wh.ID, 10), URL: wh.WebhookURL, Events: affinityEvents(wh.Subscriptions), Status: st}, "", nil
}

func (p *affinityV1) Update(ctx context.Context, id, url string, events []Event) error {
	n, err := affinityID(id)
	if err != nil {
		return err
	}
	types, err := affinityTypes(events)
	if err != nil {
		return err
	}
	_, _, err = p.c.Webhooks.Update(ctx, n, &affinity.UpdateWebhookRequest{WebhookURL: &url, Subscriptions: &types})
	return err
}

func (p *affinityV1) Enable(ctx context.Context, id string) error {
	n, err := affinityID(id)
	if err != nil {
		return err
	}
	_, _, err = p.c.Webhooks.Enable(ctx, n)
	return err
}

func (p *affinityV1) Delete(ctx context.Context, id string) error {
	n, err := affinityID(id)
	if err != nil {
		return err
	}
	if _, err := p.c.Webhooks.Delete(ctx, n); err != nil && !errors.Is(err, affinity.ErrNotFound) {
		return err
	}
	return nil
}

func (p *affinityV1) Limit() int { return affinity.MaxWebhookSubscriptions }

// affinityV2 is Affinity's API v2 /v2/webhooks (beta).
type affinityV2 struct{ s *affinity.WebhookV2Service }

func v2Remote(wh *affinity.WebhookV2) Remote {
	st := StatusActive
	if wh.Status == affinity.WebhookV2Disabled {
		st = StatusDisabled
	}
	return Remote{ID: strconv.FormatInt(wh.ID, 10), URL: wh.URL, Events: affinityEvents(wh.Subscriptions), Status: st, CreatedAt: wh.CreatedAt}
}

func (p *affinityV2) List(ctx context.Context) ([]Remote, error) {
	var out []Remote
	for wh, err := range p.s.ListAll(ctx, nil) {
		if err != nil {
			return nil, err
		}
		out = append(out, v2Remote(wh))
	}
	return out, nil
}

func (p *affinityV2) Create(ctx context.Context, url string, events []Event) (Remote, string, error) {
	types, err := affinityTypes(events)
	if err != nil {
		return Remote{}, "", err
	}
	wh, _, err := p.s.Create(ctx, url, types)
	if err != nil {
		return Remote{}, "", err
	}
	return v2Remote(wh), "", nil
}

func (p *affinityV2) Update(ctx context.Context, id, url string, events []Event) error {
	n, err := affinityID(id)
	if err != nil {
		return err
	}
	types, err := affinityTypes(events)
	if err != nil {
		return err
	}
	_, err = p.s.Update(ctx, n, &affinity.UpdateWebhookV2Request{URL: &url, Subscriptions: &types})
	return err
}

func (p *affinityV2) Enable(ctx context.Context, id string) error {
	n, err := affinityID(id)
	if err != nil {
		return err
	}
	_, err = p.s.Enable(ctx, n)
	return err
}

func (p *affinityV2) Delete(ctx context.Context, id string) error {
	n, err := affinityID(id)
	if err != nil {
		return err
	}
	if _, err := p.s.Delete(ctx, n); err != nil && !errors.Is(err, affinity.ErrNotFound) {
		return err
	}
	return nil
}

// Limit is 0: API v2 documents a limit but not its size; a create beyond it
// is refused by Affinity (and reported as an *OverLimitError).
func (p *affinityV2) Limit() int { return 0 }

func affinityID(id string) (int64, error) {
	n, err := strconv.ParseInt(id, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("subscription: %q is not an Affinity webhook id", id)
	}
	return n, nil
}

func affinityTypes(events []Event) ([]affinity.EventType, error) {
	types := make([]affinity.EventType, 0, len(events))
	for _, e := range events {
		if len(e.Filter) > 0 && string(e.Filter) != "null" {
			return nil, fmt.Errorf("subscription: Affinity subscriptions take no filters (event %s)", e.Type)
		}
		types = append(types, affinity.EventType(e.Type))
	}
	return types, nil
}

func affinityEvents(types []affinity.EventType) []Event {
	if len(types) == 0 {
		return nil
	}
	out := make([]Event, 0, len(types))
	for _, t := range types {
		out = append(out, Event{Type: string(t)})
	}
	return out
}

// attioProvider is Attio's REST API v2 /webhooks.
type attioProvider struct{ c *attio.Client }

// quietSubscription matches no event: Attio wants at least one subscription
// per webhook, and this one stands for none. The filter compares the
// event's workspace id with a value no workspace id has.
func quietSubscription() attio.Subscription {
	return attio.Subscription{EventType: attio.RecordCreated, Filter: attio.And(attio.Equals("id.workspace_id", quietValue))}
}

const quietValue = "crmhook:receives-nothing"

func isQuiet(subs []attio.Subscription) bool {
	if len(subs) != 1 || subs[0].EventType != attio.RecordCreated || subs[0].Filter == nil {
		return false
	}
	f := subs[0].Filter
	return len(f.Or) == 0 && len(f.And) == 1 && f.And[0] == attio.Equals("id.workspace_id", quietValue)
}

func attioRemote(wh *attio.Webhook) Remote {
	r := Remote{ID: wh.ID.WebhookID, URL: wh.TargetURL, Status: Status(wh.Status), CreatedAt: wh.CreatedAt}
	if r.Status == "" {
		r.Status = StatusActive
	}
	if isQuiet(wh.Subscriptions) {
		return r
	}
	for _, s := range wh.Subscriptions {
		e := Event{Type: string(s.EventType)}
		if s.Filter != nil {
			if b, err := json.Marshal(s.Filter); err == nil {
				e.Filter = b
			}
		}
		r.Events = append(r.Events, e)
	}
	return r
}

func attioSubscriptions(events []Event) ([]attio.Subscription, error) {
	if len(events) == 0 {
		return []attio.Subscription{quietSubscription()}, nil
	}
	subs := make([]attio.Subscription, 0, len(events))
	for _, e := range events {
		s := attio.Subscription{EventType: attio.EventType(e.Type)}
		if raw := strings.TrimSpace(string(e.Filter)); raw != "" && raw != "null" {
			var f attio.Filter
			if err := json.Unmarshal(e.Filter, &f); err != nil {
				return nil, fmt.Errorf("subscription: event %s: %w", e.Type, err)
			}
			s.Filter = &f
		}
		subs = append(subs, s)
	}
	return subs, nil
}

func (p *attioProvider) List(ctx context.Context) ([]Remote, error) {
	var out []Remote
	for wh, err := range p.c.Webhooks.All(ctx, 0) {
		if err != nil {
			return nil, err
		}
		out = append(out, attioRemote(wh))
	}
	return out, nil
}

func (p *attioProvider) Create(ctx context.Context, url string, events []Event) (Remote, string, error) {
	subs, err := attioSubscriptions(events)
	if err != nil {
		return Remote{}, "", err
	}
	wh, _, err := p.c.Webhooks.Create(ctx, &attio.WebhookCreateRequest{TargetURL: url, Subscriptions: subs})
	if err != nil {
		return Remote{}, "", err
	}
	return attioRemote(wh), wh.Secret, nil
}

func (p *attioProvider) Update(ctx context.Context, id, url string, events []Event) error {
	subs, err := attioSubscriptions(events)
	if err != nil {
		return err
	}
	_, _, err = p.c.Webhooks.Update(ctx, id, &attio.WebhookUpdateRequest{TargetURL: &url, Subscriptions: &subs})
	return err
}

func (p *attioProvider) Enable(context.Context, string) error { return ErrCannotReactivate }

func (p *attioProvider) Delete(ctx context.Context, id string) error {
	if _, err := p.c.Webhooks.Delete(ctx, id); err != nil && !errors.Is(err, attio.ErrNotFound) {
		return err
	}
	return nil
}

func (p *attioProvider) Limit() int { return 0 }
