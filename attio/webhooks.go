package attio

import (
	"context"
	"fmt"
	"iter"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// WebhookService manages webhooks: /webhooks and /webhooks/{webhook_id}.
type WebhookService struct {
	client *Client
}

// WebhookID identifies a webhook; only WebhookID is needed in paths.
type WebhookID struct {
	WorkspaceID string `json:"workspace_id"`
	WebhookID   string `json:"webhook_id"`
}

// WebhookStatus is the delivery health Attio reports for a webhook.
type WebhookStatus string

// Attio marks a webhook degraded after its retries for a message run out,
// and inactive after it has been degraded for 7 days.
const (
	WebhookActive   WebhookStatus = "active"
	WebhookDegraded WebhookStatus = "degraded"
	WebhookInactive WebhookStatus = "inactive"
)

// Webhook is a webhook as Attio returns it.
type Webhook struct {
	ID            WebhookID      `json:"id"`
	TargetURL     string         `json:"target_url"`
	Subscriptions []Subscription `json:"subscriptions"`
	Status        WebhookStatus  `json:"status"`
	CreatedAt     time.Time      `json:"created_at"`
	// Secret signs deliveries. Attio returns it only in the answer to
	// Create; every other call leaves it empty.
	Secret string `json:"secret,omitempty"`
}

// Subscription is one event type a webhook receives, optionally narrowed by a
// filter. A nil Filter is encoded as "filter": null, Attio's "every event".
type Subscription struct {
	EventType EventType `json:"event_type"`
	Filter    *Filter   `json:"filter"`
}

// WebhookCreateRequest is the body of Create.
type WebhookCreateRequest struct {
	TargetURL     string         `json:"target_url"`
	Subscriptions []Subscription `json:"subscriptions"`
}

// WebhookUpdateRequest is the body of Update: only non-nil fields are sent,
// and Subscriptions, when given, replaces the whole list.
type WebhookUpdateRequest struct {
	TargetURL     *string         `json:"target_url,omitempty"`
	Subscriptions *[]Subscription `json:"subscriptions,omitempty"`
}

// ListOptions pages through List. Zero values are left out of the query, so
// Attio's defaults apply.
type ListOptions struct {
	Limit  int
	Offset int
}

// Create creates a webhook (POST /webhooks). The returned Webhook carries its
// signing Secret: Attio shows it only this once, so store it now.
func (s *WebhookService) Create(ctx context.Context, req *WebhookCreateRequest) (*Webhook, *Response, error) {
	const op = "create webhook"
	if req == nil {
		return nil, nil, requestError(op, fmt.Errorf("%w: nil request", ErrInvalidRequest))
	}
	if err := ValidateTargetURL(req.TargetURL); err != nil {
		return nil, nil, requestError(op, err)
	}
	if err := validateSubscriptions(req.Subscriptions); err != nil {
		return nil, nil, requestError(op, err)
	}
	wh := new(Webhook)
	resp, err := s.client.do(ctx, http.MethodPost, "/webhooks", nil, req, wh)
	if err != nil {
		return nil, resp, requestError(op, err)
	}
	return wh, resp, nil
}

// List returns one page of webhooks (GET /webhooks?limit=&offset=). opts may
// be nil.
func (s *WebhookService) List(ctx context.Context, opts *ListOptions) ([]*Webhook, *Response, error) {
	const op = "list webhooks"
	q := url.Values{}
	if opts != nil {
		if opts.Limit < 0 || opts.Offset < 0 {
			return nil, nil, requestError(op, fmt.Errorf("%w: limit and offset must not be negative", ErrInvalidRequest))
		}
		if opts.Limit > 0 {
			q.Set("limit", strconv.Itoa(opts.Limit))
		}
		if opts.Offset > 0 {
			q.Set("offset", strconv.Itoa(opts.Offset))
		}
	}
	var page []*Webhook
	resp, err := s.client.do(ctx, http.MethodGet, "/webhooks", q, nil, &page)
	if err != nil {
		return nil, resp, requestError(op, err)
	}
	return page, resp, nil
}

// DefaultPageSize is the page size All uses when given zero or less.
const DefaultPageSize = 50

// All iterates over every webhook, fetching pages of pageSize with List until
// a short page. An error is yielded once, with a nil webhook, and ends the
// iteration.
func (s *WebhookService) All(ctx context.Context, pageSize int) iter.Seq2[*Webhook, error] {
	if pageSize <= 0 {
		pageSize = DefaultPageSize
	}
	return func(yield func(*Webhook, error) bool) {
		for offset := 0; ; {
			page, _, err := s.List(ctx, &ListOptions{Limit: pageSize, Offset: offset})
			if err != nil {
				yield(nil, err)
				return
			}
			for _, wh := range page {
				if !yield(wh, nil) {
					return
				}
			}
			if len(page) < pageSize {
				return
			}
			offset += len(page)
		}
	}
}

// Get returns one webhook (GET /webhooks/{webhook_id}).
func (s *WebhookService) Get(ctx context.Context, webhookID string) (*Webhook, *Response, error) {
	const op = "get webhook"
	path, err := webhookPath(webhookID)
	if err != nil {
		return nil, nil, requestError(op, err)
	}
	wh := new(Webhook)
	resp, err := s.client.do(ctx, http.MethodGet, path, nil, nil, wh)
	if err != nil {
		return nil, resp, requestError(op, err)
	}
	return wh, resp, nil
}

// Update changes the given fields of a webhook (PATCH /webhooks/{webhook_id}).
func (s *WebhookService) Update(ctx context.Context, webhookID string, req *WebhookUpdateRequest) (*Webhook, *Response, error) {
	const op = "update webhook"
	path, err := webhookPath(webhookID)
	if err != nil {
		return nil, nil, requestError(op, err)
	}
	if req == nil || (req.TargetURL == nil && req.Subscriptions == nil) {
		return nil, nil, requestError(op, fmt.Errorf("%w: nothing to update (give a target URL or subscriptions)", ErrInvalidRequest))
	}
	if req.TargetURL != nil {
		if err := ValidateTargetURL(*req.TargetURL); err != nil {
			return nil, nil, requestError(op, err)
		}
	}
	if req.Subscriptions != nil {
		if err := validateSubscriptions(*req.Subscriptions); err != nil {
			return nil, nil, requestError(op, err)
		}
	}
	wh := new(Webhook)
	resp, err := s.client.do(ctx, http.MethodPatch, path, nil, req, wh)
	if err != nil {
		return nil, resp, requestError(op, err)
	}
	return wh, resp, nil
}

// Delete deletes a webhook (DELETE /webhooks/{webhook_id}).
func (s *WebhookService) Delete(ctx context.Context, webhookID string) (*Response, error) {
	const op = "delete webhook"
	path, err := webhookPath(webhookID)
	if err != nil {
		return nil, requestError(op, err)
	}
	resp, err := s.client.do(ctx, http.MethodDelete, path, nil, nil, nil)
	if err != nil {
		return resp, requestError(op, err)
	}
	return resp, nil
}

func webhookPath(id string) (string, error) {
	id = strings.TrimSpace(id)
	if id == "" {
		return "", fmt.Errorf("%w: empty webhook id", ErrInvalidRequest)
	}
	return "/webhooks/" + url.PathEscape(id), nil
}

// ValidateTargetURL checks a webhook target the way Attio does: an absolute
// https URL. Plain http is allowed only for loopback hosts (localhost,
// 127.0.0.0/8, ::1) so the local simulator can deliver to a local receiver.
// Errors never echo the URL, which may hold a path secret.
func ValidateTargetURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Host == "" || u.Opaque != "" {
		return fmt.Errorf("%w: target URL must be an absolute https URL", ErrInvalidRequest)
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if isLoopbackHost(u.Hostname()) {
			return nil
		}
		return fmt.Errorf("%w: target URL must use https (plain http only for loopback hosts)", ErrInvalidRequest)
	default:
		return fmt.Errorf("%w: target URL must use https", ErrInvalidRequest)
	}
}

func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func validateSubscriptions(subs []Subscription) error {
	if len(subs) == 0 {
		return fmt.Errorf("%w: at least one subscription is required", ErrInvalidRequest)
	}
	for i, sub := range subs {
		if strings.TrimSpace(string(sub.EventType)) == "" {
			return fmt.Errorf("%w: subscriptions[%d]: empty event type", ErrInvalidRequest, i)
		}
		if err := sub.Filter.Validate(); err != nil {
			return errorf("%w: subscriptions[%d] (%s): %w", ErrInvalidRequest, i, sub.EventType, err)
		}
	}
	return nil
}
