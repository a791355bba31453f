package affinity

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Affinity's v2 webhook API (/v2/webhooks) is in beta (API version
// 2026-07-15). It manages the same kind of subscription as API V1's
// /webhook, with cursor paging, a 201 on create, a partial update by POST
// answering 204, "active"/"disabled" status instead of V1's disabled flag,
// creation and update times, and structured errors (V2Error). It accepts
// only bearer authentication; the v2 service sends the key as a bearer token
// whatever WithBearerAuth says.

// WebhookV2Status says whether a v2 webhook delivers events.
type WebhookV2Status string

// The two statuses of a v2 webhook. A disabled webhook keeps its
// configuration but receives nothing; setting it active again makes Affinity
// send a test delivery to its URL first.
const (
	WebhookV2Active   WebhookV2Status = "active"
	WebhookV2Disabled WebhookV2Status = "disabled"
)

// Valid reports whether s is one of the two statuses.
func (s WebhookV2Status) Valid() bool { return s == WebhookV2Active || s == WebhookV2Disabled }

// MaxWebhookV2Subscriptions is how many event types one v2 webhook may list.
const MaxWebhookV2Subscriptions = 100

// MaxWebhookV2PageSize is the largest page List may ask for (also the
// default when Limit is 0).
const MaxWebhookV2PageSize = 100

// WebhookV2 is a webhook as Affinity's API v2 returns it. It has no secret:
// protect the receiving URL with a long random path secret.
type WebhookV2 struct {
	ID  int64  `json:"id"`
	URL string `json:"url"`
	// Subscriptions are the event types delivered to URL; empty means every
	// event type.
	Subscriptions []EventType     `json:"subscriptions"`
	Status        WebhookV2Status `json:"status"`
	// Creator is the user who created the webhook; nil when Affinity did
	// not record one.
	Creator   *WebhookV2Creator `json:"creator"`
	CreatedAt time.Time         `json:"createdAt"`
	// UpdatedAt is nil when the webhook was never updated.
	UpdatedAt *time.Time `json:"updatedAt"`
}

// WebhookV2Creator is the user who created a v2 webhook.
type WebhookV2Creator struct {
	ID int64 `json:"id"`
}

// AllEvents reports whether the webhook receives every event type.
func (w *WebhookV2) AllEvents() bool { return len(w.Subscriptions) == 0 }

// Wants reports whether the webhook receives events of type t.
func (w *WebhookV2) Wants(t EventType) bool { return wants(w.Subscriptions, t) }

// Active reports whether the webhook delivers events.
func (w *WebhookV2) Active() bool { return w.Status == WebhookV2Active }

// WebhookV2ListOptions selects one page of GET /v2/webhooks. The zero value
// (or nil) asks for the first page of up to 100 webhooks.
type WebhookV2ListOptions struct {
	// Limit is the page size, 1 to 100; 0 leaves it to Affinity (100).
	Limit int
	// Cursor is a page's NextCursor or PrevCursor; empty for the first page.
	Cursor string
	// Filter is Affinity's filter expression on id, createdAt and updatedAt,
	// e.g. "id=1|id=2" or "createdAt>=2026-01-01T00:00:00Z".
	Filter string
	// TotalCount asks for Pagination.TotalCount.
	TotalCount bool
}

// WebhookV2Page is one page of webhooks, ordered by id.
type WebhookV2Page struct {
	Data       []*WebhookV2        `json:"data"`
	Pagination WebhookV2Pagination `json:"pagination"`
}

// WebhookV2Pagination links a page to its neighbours. A URL is empty at
// either end of the collection.
type WebhookV2Pagination struct {
	NextURL string `json:"nextUrl"`
	PrevURL string `json:"prevUrl"`
	// TotalCount is set when the list asked for it.
	TotalCount *int64 `json:"totalCount,omitempty"`
}

// NextCursor is the cursor of the next page ("" on the last page).
func (p *WebhookV2Page) NextCursor() string { return cursorOf(p.Pagination.NextURL) }

// PrevCursor is the cursor of the previous page ("" on the first page).
func (p *WebhookV2Page) PrevCursor() string { return cursorOf(p.Pagination.PrevURL) }

func cursorOf(raw string) string {
	if raw == "" {
		return ""
	}
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return u.Query().Get("cursor")
}

// UpdateWebhookV2Request is the body of a partial update: only the fields
// that are not nil are sent, the others keep their value.
type UpdateWebhookV2Request struct {
	// Status switches deliveries off (disabled) or on (active; Affinity
	// makes a test delivery to the URL first).
	Status *WebhookV2Status `json:"status,omitempty"`
	// URL moves the webhook; on an active webhook Affinity makes a test
	// delivery to the new URL first.
	URL *string `json:"url,omitempty"`
	// Subscriptions replaces the event types; a non-nil pointer to an empty
	// (or nil) slice means every event type.
	Subscriptions *[]EventType `json:"subscriptions,omitempty"`
}

// WebhookV2Service manages webhooks through Affinity's API v2
// (/v2/webhooks, beta). Reach it as Client.WebhooksV2(). Reads are retried
// like every GET; writes are sent once.
type WebhookV2Service struct {
	client *Client
}

// WebhooksV2 returns the service for Affinity's v2 webhook API. It shares
// the client's settings; its requests always carry the key as a bearer
// token, the only scheme API v2 accepts.
func (c *Client) WebhooksV2() *WebhookV2Service { return &WebhookV2Service{client: c} }

const webhooksV2Path = "/v2/webhooks"

// List returns one page of webhooks (GET /v2/webhooks): the caller's own,
// or every webhook of the organization for a user allowed to manage them
// all. Follow NextCursor for more, or use ListAll.
func (s *WebhookV2Service) List(ctx context.Context, opts *WebhookV2ListOptions) (*WebhookV2Page, *Response, error) {
	q, err := opts.query()
	if err != nil {
		return nil, nil, fmt.Errorf("affinity: list v2 webhooks: %w", err)
	}
	page, resp, err := s.page(ctx, q)
	if err != nil {
		return nil, resp, fmt.Errorf("affinity: list v2 webhooks: %w", err)
	}
	return page, resp, nil
}

// ListAll yields every webhook List would return, page after page, ordered
// by id. Each next page is requested at the client's base URL with the query
// of the previous page's nextUrl: the host named in nextUrl is never
// contacted, so the key only ever goes to the configured API root. The
// first error ends the sequence. opts.Cursor, when set, is where it starts.
func (s *WebhookV2Service) ListAll(ctx context.Context, opts *WebhookV2ListOptions) iter.Seq2[*WebhookV2, error] {
	return func(yield func(*WebhookV2, error) bool) {
		q, err := opts.query()
		if err != nil {
			yield(nil, fmt.Errorf("affinity: list v2 webhooks: %w", err))
			return
		}
		seen := map[string]bool{q.Encode(): true}
		for {
			page, _, err := s.page(ctx, q)
			if err != nil {
				yield(nil, fmt.Errorf("affinity: list v2 webhooks: %w", err))
				return
			}
			for _, wh := range page.Data {
				if !yield(wh, nil) {
					return
				}
			}
			if page.Pagination.NextURL == "" {
				return
			}
			next, err := nextQuery(page.Pagination.NextURL)
			if err == nil && seen[next.Encode()] {
				err = kindErrorf(ErrUnexpectedResponse, "unexpected response: nextUrl repeats an earlier page")
			}
			if err != nil {
				yield(nil, fmt.Errorf("affinity: list v2 webhooks: %w", err))
				return
			}
			seen[next.Encode()] = true
			q = next
		}
	}
}

// nextQuery takes the query of a nextUrl, which must carry a cursor.
func nextQuery(raw string) (url.Values, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, kindErrorf(ErrUnexpectedResponse, "unexpected response: nextUrl is not a URL")
	}
	q := u.Query()
	if q.Get("cursor") == "" {
		return nil, kindErrorf(ErrUnexpectedResponse, "unexpected response: nextUrl has no cursor")
	}
	return q, nil
}

func (s *WebhookV2Service) page(ctx context.Context, q url.Values) (*WebhookV2Page, *Response, error) {
	var page WebhookV2Page
	resp, err := s.client.doV2(ctx, http.MethodGet, webhooksV2Path, q, nil, &page)
	if err != nil {
		return nil, resp, err
	}
	if page.Data == nil {
		page.Data = []*WebhookV2{}
	}
	for i, wh := range page.Data {
		if wh == nil || wh.ID == 0 {
			return nil, resp, kindErrorf(ErrUnexpectedResponse, "unexpected response: no webhook object at data[%d]", i)
		}
		wh.normalize()
	}
	return &page, resp, nil
}

func (o *WebhookV2ListOptions) query() (url.Values, error) {
	q := url.Values{}
	if o == nil {
		return q, nil
	}
	if o.Limit < 0 || o.Limit > MaxWebhookV2PageSize {
		return nil, kindErrorf(ErrInvalidRequest, "limit must be between 1 and %d (0 for the default), got %d", MaxWebhookV2PageSize, o.Limit)
	}
	if o.Limit > 0 {
		q.Set("limit", strconv.Itoa(o.Limit))
	}
	if o.Cursor != "" {
		q.Set("cursor", o.Cursor)
	}
	if o.Filter != "" {
		q.Set("filter", o.Filter)
	}
	if o.TotalCount {
		q.Set("totalCount", "true")
	}
	return q, nil
}

// Get returns one webhook (GET /v2/webhooks/{id}). A webhook the caller may
// not see is ErrNotFound, like a missing one.
func (s *WebhookV2Service) Get(ctx context.Context, id int64) (*WebhookV2, *Response, error) {
	if err := checkID(id); err != nil {
		return nil, nil, fmt.Errorf("affinity: get v2 webhook: %w", err)
	}
	wh, resp, err := s.client.webhookV2(ctx, http.MethodGet, webhookV2Path(id), nil)
	if err != nil {
		return nil, resp, fmt.Errorf("affinity: get v2 webhook %d: %w", id, err)
	}
	return wh, resp, nil
}

// createV2Body is the body of POST /v2/webhooks: both keys are required,
// subscriptions [] meaning every event type.
type createV2Body struct {
	URL           string      `json:"url"`
	Subscriptions []EventType `json:"subscriptions"`
}

// Create subscribes rawURL to events (POST /v2/webhooks); no subscriptions
// means every event type. rawURL must be an absolute https URL (http only to
// a loopback host) without credentials. Affinity makes a test delivery to
// the URL first: when it fails the error matches ErrTestDeliveryFailed, when
// another webhook of the organization has the URL ErrWebhookURLInUse, and at
// the organization's webhook limit ErrSubscriptionLimit. Create is never
// retried automatically.
func (s *WebhookV2Service) Create(ctx context.Context, rawURL string, subscriptions []EventType) (*WebhookV2, *Response, error) {
	if err := ValidateWebhookV2URL(rawURL); err != nil {
		return nil, nil, fmt.Errorf("affinity: create v2 webhook: %w", err)
	}
	if err := checkV2EventTypes(subscriptions); err != nil {
		return nil, nil, fmt.Errorf("affinity: create v2 webhook: %w", err)
	}
	body := createV2Body{URL: rawURL, Subscriptions: subscriptions}
	if body.Subscriptions == nil {
		body.Subscriptions = []EventType{}
	}
	wh, resp, err := s.client.webhookV2(ctx, http.MethodPost, webhooksV2Path, body)
	if err != nil {
		if v2e, ok := errors.AsType[*V2Error](err); ok && v2e.paramlessBadRequest() {
			v2e.atLimit = true
		}
		return nil, resp, fmt.Errorf("affinity: create v2 webhook: %w", err)
	}
	return wh, resp, nil
}

// Update changes a webhook (POST /v2/webhooks/{id}, answered 204 with no
// body), sending only the fields req sets; Get it afterwards to see the
// result. Only its creator, or a user allowed to manage all webhooks, may
// update it. A new URL on an active webhook, or a switch to active, is
// refused unless Affinity's test delivery to the URL succeeds
// (ErrTestDeliveryFailed).
func (s *WebhookV2Service) Update(ctx context.Context, id int64, req *UpdateWebhookV2Request) (*Response, error) {
	return s.update(ctx, "update", id, req)
}

// Enable sets a webhook's status to active, e.g. after Affinity disabled it
// for failed deliveries. Affinity makes a test delivery to its URL first.
func (s *WebhookV2Service) Enable(ctx context.Context, id int64) (*Response, error) {
	st := WebhookV2Active
	return s.update(ctx, "enable", id, &UpdateWebhookV2Request{Status: &st})
}

// Disable sets a webhook's status to disabled: it keeps its configuration
// but receives nothing (nothing is queued for it either).
func (s *WebhookV2Service) Disable(ctx context.Context, id int64) (*Response, error) {
	st := WebhookV2Disabled
	return s.update(ctx, "disable", id, &UpdateWebhookV2Request{Status: &st})
}

func (s *WebhookV2Service) update(ctx context.Context, op string, id int64, req *UpdateWebhookV2Request) (*Response, error) {
	fail := func(err error) error { return fmt.Errorf("affinity: %s v2 webhook %d: %w", op, id, err) }
	if err := checkID(id); err != nil {
		return nil, fmt.Errorf("affinity: %s v2 webhook: %w", op, err)
	}
	if req == nil || (req.Status == nil && req.URL == nil && req.Subscriptions == nil) {
		return nil, fail(kindErrorf(ErrInvalidRequest, "nothing to update: set Status, URL or Subscriptions"))
	}
	body := UpdateWebhookV2Request{Status: req.Status, URL: req.URL}
	if req.Status != nil && !req.Status.Valid() {
		return nil, fail(kindErrorf(ErrInvalidRequest, "status must be %q or %q, got %q", WebhookV2Active, WebhookV2Disabled, *req.Status))
	}
	if req.URL != nil {
		if err := ValidateWebhookV2URL(*req.URL); err != nil {
			return nil, fail(err)
		}
	}
	if req.Subscriptions != nil {
		subs := *req.Subscriptions
		if err := checkV2EventTypes(subs); err != nil {
			return nil, fail(err)
		}
		if subs == nil {
			subs = []EventType{} // "all events" is [], never null
		}
		body.Subscriptions = &subs
	}
	resp, err := s.client.doV2(ctx, http.MethodPost, webhookV2Path(id), nil, body, nil)
	if err != nil {
		return resp, fail(err)
	}
	return resp, nil
}

// Delete removes a webhook (DELETE /v2/webhooks/{id}, answered 204). Only
// its creator, or a user allowed to manage all webhooks, may delete it.
func (s *WebhookV2Service) Delete(ctx context.Context, id int64) (*Response, error) {
	if err := checkID(id); err != nil {
		return nil, fmt.Errorf("affinity: delete v2 webhook: %w", err)
	}
	resp, err := s.client.doV2(ctx, http.MethodDelete, webhookV2Path(id), nil, nil, nil)
	if err != nil {
		return resp, fmt.Errorf("affinity: delete v2 webhook %d: %w", id, err)
	}
	return resp, nil
}

// ValidateWebhookV2URL checks a URL for the v2 Create and Update before
// anything is sent: what ValidateWebhookURL asks (absolute, https, plain
// http only to a loopback host), and no user name or password (Affinity's v2
// API refuses credentials in the URL), no #fragment and no surrounding
// spaces. Errors match ErrInvalidWebhookURL and ErrInvalidRequest and never
// quote the URL, whose path holds the receiver's secret.
func ValidateWebhookV2URL(raw string) error {
	if err := ValidateWebhookURL(raw); err != nil {
		return err
	}
	if raw != strings.TrimSpace(raw) {
		return &webhookURLError{"it must not start or end with spaces"}
	}
	u, err := url.Parse(raw)
	if err != nil {
		return &webhookURLError{"it must be an absolute https URL"}
	}
	if u.User != nil {
		return &webhookURLError{"it must not hold a user name or password (put the secret in the path)"}
	}
	if u.Fragment != "" || strings.HasSuffix(raw, "#") {
		return &webhookURLError{"it must not have a #fragment"}
	}
	return nil
}

// checkV2EventTypes refuses empty types and more than 100 of them. Unknown
// types are sent as they are: Affinity may add some before this package
// knows them.
func checkV2EventTypes(ts []EventType) error {
	if len(ts) > MaxWebhookV2Subscriptions {
		return kindErrorf(ErrInvalidRequest, "at most %d event types per webhook, got %d", MaxWebhookV2Subscriptions, len(ts))
	}
	return checkEventTypes(ts)
}

// webhookV2 makes a call whose answer is one webhook object.
func (c *Client) webhookV2(ctx context.Context, method, path string, in any) (*WebhookV2, *Response, error) {
	var out *WebhookV2
	resp, err := c.doV2(ctx, method, path, nil, in, &out)
	if err != nil {
		return nil, resp, err
	}
	if out == nil || out.ID == 0 {
		return nil, resp, kindErrorf(ErrUnexpectedResponse, "unexpected response: no webhook object in the answer")
	}
	out.normalize()
	return out, resp, nil
}

// normalize makes "all events" an empty list, never nil, so it encodes as [].
func (w *WebhookV2) normalize() {
	if w.Subscriptions == nil {
		w.Subscriptions = []EventType{}
	}
}

func webhookV2Path(id int64) string { return webhooksV2Path + "/" + strconv.FormatInt(id, 10) }

// doV2 is do for API v2: the key always as a bearer token, an optional
// query, and non-2xx answers as *V2Error. GET is retried per the client's
// policy; other methods are sent once. out, when not nil, receives the JSON
// of a 2xx answer (204 answers have no body and need a nil out).
func (c *Client) doV2(ctx context.Context, method, path string, query url.Values, in, out any) (*Response, error) {
	return c.call(ctx, method, path, query, in, out, true)
}
