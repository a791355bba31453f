package affinity

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// MaxWebhookSubscriptions is how many webhook subscriptions an Affinity
// instance may hold; a create beyond it fails with ErrSubscriptionLimit.
const MaxWebhookSubscriptions = 3

// Webhook is a webhook subscription as Affinity's V1 API returns it.
type Webhook struct {
	ID         int64  `json:"id"`
	WebhookURL string `json:"webhook_url"`
	// Subscriptions are the event types sent to WebhookURL; empty means
	// every event type (see AllEvents).
	Subscriptions []EventType `json:"subscriptions"`
	// Disabled is set by an Update, or by Affinity itself after 10 hours of
	// failed deliveries.
	Disabled bool `json:"disabled"`
	// CreatedBy is the id of the user who created the subscription; only
	// that user may update it.
	CreatedBy int64 `json:"created_by"`
}

// AllEvents reports whether the subscription receives every event type.
func (w *Webhook) AllEvents() bool { return len(w.Subscriptions) == 0 }

// wants reports whether a subscription list (empty: every type) takes t.
func wants(subscriptions []EventType, t EventType) bool {
	return len(subscriptions) == 0 || slices.Contains(subscriptions, t)
}

// Wants reports whether the subscription receives events of type t.
func (w *Webhook) Wants(t EventType) bool { return wants(w.Subscriptions, t) }

// CreateWebhookRequest is the body of POST /webhook/subscribe.
type CreateWebhookRequest struct {
	// WebhookURL receives the deliveries. Affinity POSTs a sample.webhook
	// probe to it during the call, which fails unless the URL answers 2xx
	// quickly. Put a long random secret in its path: Affinity signs nothing.
	WebhookURL string `json:"webhook_url"`
	// Subscriptions are the event types to receive; empty (omitted from the
	// request) means every event type.
	Subscriptions []EventType `json:"subscriptions,omitempty"`
}

// UpdateWebhookRequest is the body of PUT /webhook/{id}: only the fields
// that are not nil are sent.
type UpdateWebhookRequest struct {
	// WebhookURL moves the subscription to a new URL (Affinity probes it).
	WebhookURL *string
	// Subscriptions replaces the event types; a non-nil pointer to an empty
	// (or nil) slice means every event type.
	Subscriptions *[]EventType
	// Disabled switches deliveries off (true) or back on (false).
	Disabled *bool
}

// updateBody is the wire form of an UpdateWebhookRequest.
type updateBody struct {
	WebhookURL    *string      `json:"webhook_url,omitempty"`
	Subscriptions *[]EventType `json:"subscriptions,omitempty"`
	Disabled      *bool        `json:"disabled,omitempty"`
}

// WebhookService manages webhook subscriptions (API V1 /webhook). Reach it
// as Client.Webhooks.
type WebhookService struct {
	client *Client
}

// List returns every webhook subscription of the instance (GET /webhook).
func (s *WebhookService) List(ctx context.Context) ([]*Webhook, *Response, error) {
	var out []*Webhook
	resp, err := s.client.do(ctx, http.MethodGet, "/webhook", nil, &out)
	if err != nil {
		return nil, resp, fmt.Errorf("affinity: list webhooks: %w", err)
	}
	if out == nil {
		out = []*Webhook{} // "null" from a proxy still lists nothing
	}
	for i, wh := range out {
		if wh == nil {
			return nil, resp, fmt.Errorf("affinity: list webhooks: %w", kindErrorf(ErrUnexpectedResponse, "unexpected response: null subscription at index %d", i))
		}
		wh.normalize()
	}
	return out, resp, nil
}

// Get returns one webhook subscription (GET /webhook/{id}).
func (s *WebhookService) Get(ctx context.Context, id int64) (*Webhook, *Response, error) {
	if err := checkID(id); err != nil {
		return nil, nil, fmt.Errorf("affinity: get webhook: %w", err)
	}
	wh, resp, err := s.client.webhook(ctx, http.MethodGet, webhookPath(id), nil)
	if err != nil {
		return nil, resp, fmt.Errorf("affinity: get webhook %d: %w", id, err)
	}
	return wh, resp, nil
}

// ErrInvalidWebhookURL is matched by the error of Create, Update and
// ValidateWebhookURL for a webhook URL that is missing, not absolute, or
// plain http to a host other than loopback. Such an error matches
// ErrInvalidRequest too: the call is refused before anything is sent.
var ErrInvalidWebhookURL = errors.New("affinity: invalid webhook URL")

// webhookURLError is a refused webhook URL. It never quotes the URL, whose
// path holds the receiver's secret.
type webhookURLError struct{ reason string }

func (e *webhookURLError) Error() string { return "invalid webhook URL: " + e.reason }

func (e *webhookURLError) Is(target error) bool {
	return target == ErrInvalidWebhookURL || target == ErrInvalidRequest
}

// ValidateWebhookURL checks a URL for Create and Update: an absolute https
// URL. Plain http is allowed only for loopback hosts (localhost,
// 127.0.0.0/8, ::1), for a receiver under test or the local simulator.
// Errors match ErrInvalidWebhookURL and ErrInvalidRequest.
func ValidateWebhookURL(raw string) error {
	if strings.TrimSpace(raw) == "" {
		return &webhookURLError{"a URL is required"}
	}
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Host == "" || u.Opaque != "" {
		return &webhookURLError{"it must be an absolute https URL"}
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if isLoopbackHost(u.Hostname()) {
			return nil
		}
		return &webhookURLError{"it must use https (plain http only for loopback hosts)"}
	default:
		return &webhookURLError{"it must use https"}
	}
}

// isLoopbackHost reports whether host is localhost or a loopback address.
func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Create subscribes a URL to events (POST /webhook/subscribe). The URL must
// be https (plain http only for loopback hosts; ErrInvalidWebhookURL
// before any call). Affinity probes the URL first and refuses the call
// unless it answers 2xx; it also refuses a fourth subscription
// (ErrSubscriptionLimit). Create is never retried automatically.
func (s *WebhookService) Create(ctx context.Context, req *CreateWebhookRequest) (*Webhook, *Response, error) {
	if req == nil {
		return nil, nil, fmt.Errorf("affinity: create webhook: %w", kindErrorf(ErrInvalidRequest, "nil request"))
	}
	if err := ValidateWebhookURL(req.WebhookURL); err != nil {
		return nil, nil, fmt.Errorf("affinity: create webhook: %w", err)
	}
	if err := checkEventTypes(req.Subscriptions); err != nil {
		return nil, nil, fmt.Errorf("affinity: create webhook: %w", err)
	}
	wh, resp, err := s.client.webhook(ctx, http.MethodPost, "/webhook/subscribe", req)
	if err != nil {
		return nil, resp, fmt.Errorf("affinity: create webhook: %w", err)
	}
	return wh, resp, nil
}

// Update changes a subscription (PUT /webhook/{id}), sending only the fields
// req sets; a new WebhookURL is checked as Create checks it. Only the subscription's creator may update it (ErrForbidden
// otherwise). Affinity probes a new URL, and the URL of a subscription being
// re-enabled, before it accepts the change.
func (s *WebhookService) Update(ctx context.Context, id int64, req *UpdateWebhookRequest) (*Webhook, *Response, error) {
	return s.update(ctx, "update", id, req)
}

// Enable switches a disabled subscription back on (PUT disabled=false), for
// example after Affinity disabled it for failed deliveries.
func (s *WebhookService) Enable(ctx context.Context, id int64) (*Webhook, *Response, error) {
	off := false
	return s.update(ctx, "enable", id, &UpdateWebhookRequest{Disabled: &off})
}

// Disable stops deliveries to a subscription without deleting it (PUT
// disabled=true).
func (s *WebhookService) Disable(ctx context.Context, id int64) (*Webhook, *Response, error) {
	on := true
	return s.update(ctx, "disable", id, &UpdateWebhookRequest{Disabled: &on})
}

func (s *WebhookService) update(ctx context.Context, op string, id int64, req *UpdateWebhookRequest) (*Webhook, *Response, error) {
	if err := checkID(id); err != nil {
		return nil, nil, fmt.Errorf("affinity: %s webhook: %w", op, err)
	}
	if req == nil || (req.WebhookURL == nil && req.Subscriptions == nil && req.Disabled == nil) {
		return nil, nil, fmt.Errorf("affinity: %s webhook %d: %w", op, id,
			kindErrorf(ErrInvalidRequest, "nothing to update: set WebhookURL, Subscriptions or Disabled"))
	}
	body := updateBody{WebhookURL: req.WebhookURL, Disabled: req.Disabled}
	if req.WebhookURL != nil {
		if err := ValidateWebhookURL(*req.WebhookURL); err != nil {
			return nil, nil, fmt.Errorf("affinity: %s webhook %d: %w", op, id, err)
		}
	}
	if req.Subscriptions != nil {
		subs := *req.Subscriptions
		if err := checkEventTypes(subs); err != nil {
			return nil, nil, fmt.Errorf("affinity: %s webhook %d: %w", op, id, err)
		}
		if subs == nil {
			subs = []EventType{} // "all events" is [], never null (which means "not sent")
		}
		body.Subscriptions = &subs
	}
	wh, resp, err := s.client.webhook(ctx, http.MethodPut, webhookPath(id), body)
	if err != nil {
		return nil, resp, fmt.Errorf("affinity: %s webhook %d: %w", op, id, err)
	}
	return wh, resp, nil
}

// Delete removes a subscription (DELETE /webhook/{id}). Only its creator or
// an admin may delete it.
func (s *WebhookService) Delete(ctx context.Context, id int64) (*Response, error) {
	if err := checkID(id); err != nil {
		return nil, fmt.Errorf("affinity: delete webhook: %w", err)
	}
	var out struct {
		Success *bool `json:"success"`
	}
	resp, err := s.client.do(ctx, http.MethodDelete, webhookPath(id), nil, &out)
	if err != nil {
		return resp, fmt.Errorf("affinity: delete webhook %d: %w", id, err)
	}
	if out.Success == nil || !*out.Success {
		return resp, fmt.Errorf("affinity: delete webhook %d: %w", id,
			kindErrorf(ErrUnexpectedResponse, `unexpected response: answer lacks "success": true`))
	}
	return resp, nil
}

// webhook makes a call whose answer is one subscription object.
func (c *Client) webhook(ctx context.Context, method, path string, in any) (*Webhook, *Response, error) {
	var out *Webhook
	resp, err := c.do(ctx, method, path, in, &out)
	if err != nil {
		return nil, resp, err
	}
	if out == nil || out.ID == 0 {
		return nil, resp, kindErrorf(ErrUnexpectedResponse, "unexpected response: no webhook subscription object in the answer")
	}
	out.normalize()
	return out, resp, nil
}

// normalize makes "all events" an empty list, never nil, so it encodes as
// [] the way Affinity shows it.
func (w *Webhook) normalize() {
	if w.Subscriptions == nil {
		w.Subscriptions = []EventType{}
	}
}

func webhookPath(id int64) string { return "/webhook/" + strconv.FormatInt(id, 10) }

func checkID(id int64) error {
	if id <= 0 {
		return kindErrorf(ErrInvalidRequest, "webhook id must be a positive integer, got %d", id)
	}
	return nil
}

// checkEventTypes refuses empty strings only: unknown types are sent as they
// are, because Affinity may add event types before this package knows them.
func checkEventTypes(ts []EventType) error {
	for i, t := range ts {
		if strings.TrimSpace(string(t)) == "" {
			return kindErrorf(ErrInvalidRequest, "subscriptions[%d] is empty", i)
		}
	}
	return nil
}
