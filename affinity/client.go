package affinity

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/crmhook/crmhook/internal/apiclient"
	"github.com/crmhook/crmhook/internal/retry"
)

// DefaultBaseURL is Affinity's API V1 root.
const DefaultBaseURL = "https://api.affinity.co"

// Environment variables read by NewClientFromEnv (and by the CLI).
const (
	EnvAPIKey  = "AFFINITY_API_KEY"
	EnvBaseURL = "AFFINITY_BASE_URL"
)

// Retry defaults: GET and HEAD are retried 3 times on 429, 5xx and network
// errors, waiting a full-jitter exponential backoff from 500ms capped at 30s.
const (
	DefaultMaxRetries  = 3
	DefaultBackoffBase = 500 * time.Millisecond
	DefaultBackoffCap  = 30 * time.Second
)

const defaultUserAgent = "crmhook-affinity/1 (+https://github.com/crmhook/crmhook)"

// maxSuccessBody bounds what a 2xx answer may hold; subscription lists are
// tiny (three at most).
const maxSuccessBody = 4 << 20

// Client talks to Affinity's API V1. Create one with NewClient; it is safe
// for concurrent use. The API key never appears in a URL, an error or a log.
type Client struct {
	baseURL    *url.URL
	apiKey     string
	bearer     bool
	httpClient *http.Client
	userAgent  string
	maxRetries int
	backoff    backoffPolicy
	scrub      *apiclient.Redactor

	// Seams for tests: the clock (Retry-After dates), the wait between
	// attempts and the jitter source.
	now    func() time.Time
	sleep  func(ctx context.Context, d time.Duration) error
	jitter func(n int64) int64

	// Webhooks manages webhook subscriptions.
	Webhooks *WebhookService
}

// backoffPolicy is full jitter: attempt n (from 0) waits a uniform duration
// in [0, min(cap, base·2^n)].
type backoffPolicy struct {
	base, cap time.Duration
}

// Option configures a Client.
type Option func(*Client) error

// WithBaseURL points the client at another API root, e.g. a simulator's
// "http://127.0.0.1:7701". It must be an absolute http or https URL without
// credentials, query or fragment.
func WithBaseURL(raw string) Option {
	return func(c *Client) error {
		u, err := url.Parse(strings.TrimSpace(raw))
		if err != nil || !u.IsAbs() || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
			return kindErrorf(ErrInvalidRequest, "base URL must be an absolute http(s) URL such as %s", DefaultBaseURL)
		}
		if u.User != nil {
			// A key in the URL would end up in every transport error.
			return kindErrorf(ErrInvalidRequest, "base URL must not hold credentials; pass the API key to NewClient")
		}
		if u.RawQuery != "" || u.Fragment != "" {
			return kindErrorf(ErrInvalidRequest, "base URL must not have a query or fragment")
		}
		u.Path = strings.TrimRight(u.Path, "/")
		u.RawPath = ""
		c.baseURL = u
		return nil
	}
}

// WithHTTPClient sets the HTTP client (timeouts, proxies, transports). The
// default has a 30s timeout.
func WithHTTPClient(hc *http.Client) Option {
	return func(c *Client) error {
		if hc == nil {
			return kindErrorf(ErrInvalidRequest, "nil HTTP client")
		}
		c.httpClient = hc
		return nil
	}
}

// WithBearerAuth sends the key as "Authorization: Bearer <key>" instead of
// HTTP Basic with an empty user name. Affinity accepts both.
func WithBearerAuth() Option {
	return func(c *Client) error {
		c.bearer = true
		return nil
	}
}

// WithUserAgent sets the User-Agent header.
func WithUserAgent(ua string) Option {
	return func(c *Client) error {
		if strings.ContainsAny(ua, "\r\n") {
			return kindErrorf(ErrInvalidRequest, "user agent must be one line")
		}
		c.userAgent = ua
		return nil
	}
}

// WithMaxRetries sets how many times a GET or HEAD is retried after a 429,
// a 5xx or a network error (default 3; 0 disables retries). Writes are never
// retried: Affinity probes the webhook URL on create and update and has no
// idempotency key, so a blind retry could create a second subscription.
func WithMaxRetries(n int) Option {
	return func(c *Client) error {
		if n < 0 || n > 20 {
			return kindErrorf(ErrInvalidRequest, "max retries must be between 0 and 20, got %d", n)
		}
		c.maxRetries = n
		return nil
	}
}

// WithBackoff sets the full-jitter exponential backoff between retries:
// retry n waits a random duration up to min(cap, base·2^n). A Retry-After
// from Affinity replaces the backoff; if it asks for longer than cap the
// client gives up at once and returns the *APIError, whose RetryAfter says
// how long to wait. Mostly useful in tests (short waits).
func WithBackoff(base, cap time.Duration) Option {
	return func(c *Client) error {
		if base <= 0 || cap < base {
			return kindErrorf(ErrInvalidRequest, "backoff wants 0 < base <= cap")
		}
		c.backoff = backoffPolicy{base: base, cap: cap}
		return nil
	}
}

// NewClient returns a client authenticating with apiKey: HTTP Basic with an
// empty user and the key as password, or a bearer token with WithBearerAuth.
func NewClient(apiKey string, opts ...Option) (*Client, error) {
	apiKey = strings.TrimSpace(apiKey)
	if apiKey == "" {
		return nil, ErrNoAPIKey
	}
	if strings.ContainsFunc(apiKey, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		// The key itself is not quoted: it is a secret.
		return nil, kindErrorf(ErrInvalidRequest, "affinity: API key contains whitespace or control characters")
	}
	base, _ := url.Parse(DefaultBaseURL)
	c := &Client{
		baseURL:    base,
		apiKey:     apiKey,
		httpClient: &http.Client{Timeout: 30 * time.Second},
		userAgent:  defaultUserAgent,
		maxRetries: DefaultMaxRetries,
		backoff:    backoffPolicy{base: DefaultBackoffBase, cap: DefaultBackoffCap},
		scrub:      newScrubber(apiKey),
		now:        time.Now,
		sleep:      sleepCtx,
		jitter:     func(n int64) int64 { return rand.Int64N(n) },
	}
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o(c); err != nil {
			return nil, fmt.Errorf("affinity: %w", err)
		}
	}
	c.Webhooks = &WebhookService{client: c}
	return c, nil
}

// NewClientFromEnv is NewClient with the key from AFFINITY_API_KEY and, when
// set, the base URL from AFFINITY_BASE_URL. Options given here win over both.
// It returns ErrNoAPIKey when AFFINITY_API_KEY is unset or empty.
func NewClientFromEnv(opts ...Option) (*Client, error) {
	if base := os.Getenv(EnvBaseURL); base != "" {
		opts = append([]Option{WithBaseURL(base)}, opts...)
	}
	return NewClient(os.Getenv(EnvAPIKey), opts...)
}

// BaseURL returns the API root the client sends requests to.
func (c *Client) BaseURL() string { return c.baseURL.String() }

// Response wraps the HTTP response of an API call, with Affinity's
// rate-limit headers parsed. Its body has already been read and closed.
type Response struct {
	*http.Response
	RateLimits RateLimits
}

func newResponse(resp *http.Response) *Response {
	return &Response{Response: resp, RateLimits: parseRateLimits(resp.Header)}
}

// do sends one API call. in, when not nil, is sent as JSON; out, when not
// nil, receives the JSON of a 2xx answer. GET and HEAD are retried per the
// client's policy; other methods are sent exactly once. Errors are not
// labelled here: the caller adds "affinity: <operation>: ".
func (c *Client) do(ctx context.Context, method, path string, in, out any) (*Response, error) {
	return c.call(ctx, method, path, nil, in, out, false)
}

// call is one request of either API: V1 (the client's auth scheme, V1
// error bodies) or v2 (always Bearer, v2 error bodies).
func (c *Client) call(ctx context.Context, method, path string, query url.Values, in, out any, v2 bool) (*Response, error) {
	if ctx == nil {
		return nil, kindErrorf(ErrInvalidRequest, "nil context")
	}
	var payload []byte
	if in != nil {
		var err error
		if payload, err = json.Marshal(in); err != nil {
			return nil, fmt.Errorf("encode request: %w", err)
		}
	}
	u := *c.baseURL
	u.Path = c.baseURL.Path + path
	if len(query) > 0 {
		u.RawQuery = query.Encode()
	}
	target := u.String()

	retrier := apiclient.Retrier{
		Backoff:   retry.Backoff{Base: c.backoff.base, Cap: c.backoff.cap},
		Retryable: retryableStatus,
		Now:       c.now,
		Sleep:     c.sleep,
		Jitter:    c.jitter,
	}
	if method == http.MethodGet || method == http.MethodHead {
		retrier.MaxRetries = c.maxRetries
	}
	ans, err := retrier.Do(ctx, func(ctx context.Context) (*http.Response, []byte, error) {
		return c.send(ctx, method, target, payload, v2 || c.bearer)
	})
	if ans == nil {
		return nil, err
	}
	r := newResponse(ans.Response)
	if err != nil {
		return r, err // an answer we could not read whole, or a wait cut short
	}
	if !ans.OK() {
		if v2 {
			return r, newV2Error(ans.Response, ans.Body, c.scrub, ans.RetryAfter)
		}
		return r, newAPIError(ans.Response, ans.Body, c.scrub, ans.RetryAfter)
	}
	if out != nil && method != http.MethodHead {
		if err := decodeJSON(ans.Response, ans.Body, out); err != nil {
			return r, err
		}
	}
	return r, nil
}

// send makes one HTTP exchange and reads the whole (bounded) body. A nil
// response with an error means no usable answer arrived (worth a retry for
// reads), its text scrubbed of the key; a response with an error is an
// answer too large to keep.
func (c *Client) send(ctx context.Context, method, target string, payload []byte, bearer bool) (*http.Response, []byte, error) {
	req, err := apiclient.NewRequest(ctx, method, target, payload, c.userAgent)
	if err != nil {
		return nil, nil, c.scrub.Wrap(err)
	}
	if bearer {
		req.Header.Set("Authorization", "Bearer "+c.apiKey)
	} else {
		req.SetBasicAuth("", c.apiKey)
	}
	resp, err := c.httpClient.Do(req)
	if err != nil {
		return nil, nil, c.scrub.Wrap(err)
	}
	defer resp.Body.Close()
	limit := int64(maxSuccessBody)
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		limit = maxErrorBody
	}
	data, over, err := apiclient.ReadBounded(resp.Body, limit)
	if err != nil {
		return nil, nil, c.scrub.Wrap(err)
	}
	if over && limit != maxErrorBody { // an error body only feeds a message
		return resp, nil, apiclient.Mark(ErrUnexpectedResponse, apiclient.Unexpected("%d answer is over %d bytes", resp.StatusCode, limit))
	}
	return resp, data, nil
}

// backoffFor is the full-jitter wait before retry attempt+1.
func (c *Client) backoffFor(attempt int) time.Duration {
	return retry.Backoff{Base: c.backoff.base, Cap: c.backoff.cap}.Wait(attempt, c.jitter)
}

// retryableStatus: rate limits and transient server failures. 501 and 505
// will not change on a retry.
func retryableStatus(code int) bool {
	switch {
	case code == http.StatusTooManyRequests:
		return true
	case code == http.StatusNotImplemented, code == http.StatusHTTPVersionNotSupported:
		return false
	}
	return code >= 500 && code <= 599
}

// decodeJSON decodes a 2xx answer, saying clearly when it is not JSON at all
// (a captive portal, a proxy's HTML page) rather than quoting a syntax error.
// Its errors match ErrUnexpectedResponse.
func decodeJSON(resp *http.Response, body []byte, out any) error {
	if err := apiclient.DecodeJSON(resp, body, out); err != nil {
		return apiclient.Mark(ErrUnexpectedResponse, err)
	}
	return nil
}

// sleepCtx waits d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error { return retry.Sleep(ctx, d) }
