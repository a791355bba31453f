package attio

import (
	"context"
	"encoding/json"
	"errors"
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

// DefaultBaseURL is Attio's REST API v2. Paths such as "/webhooks" are
// relative to it, so a simulator's base is "http://host:port/v2".
const DefaultBaseURL = "https://api.attio.com/v2"

// Environment variables read by NewClientFromEnv.
const (
	EnvAPIKey  = "ATTIO_API_KEY"
	EnvBaseURL = "ATTIO_BASE_URL"
)

// Retry defaults: GETs are retried 3 times after the first attempt on 429,
// 5xx and network errors, waiting a full-jitter exponential backoff from
// 500ms capped at 30s.
const (
	DefaultMaxRetries  = 3
	DefaultBackoffBase = 500 * time.Millisecond
	DefaultBackoffCap  = 30 * time.Second
)

// maxRetriesLimit bounds WithMaxRetries.
const maxRetriesLimit = 20

const defaultUserAgent = "crmhook-attio/1 (+https://github.com/crmhook/crmhook)"

// maxSuccessBody bounds what a 2xx answer may hold; webhook listings are small.
const maxSuccessBody = 16 << 20

// ErrNoToken is returned by NewClient for an empty API token.
var ErrNoToken = errors.New("attio: no API token (set " + EnvAPIKey + ")")

// Client talks to the Attio REST API v2. Create one with NewClient; it is
// safe for concurrent use.
type Client struct {
	baseURL    *url.URL
	token      string
	httpClient *http.Client
	userAgent  string
	maxRetries int // retries after the first attempt, GETs only
	backoff    retry.Backoff

	// Seams for tests: the clock (Retry-After dates), the wait between
	// attempts and the jitter source.
	now    func() time.Time
	sleep  func(ctx context.Context, d time.Duration) error
	jitter func(n int64) int64

	// Webhooks manages webhook subscriptions.
	Webhooks *WebhookService
}

// Option configures a Client.
type Option func(*Client) error

// WithBaseURL points the client at another API root, e.g. a simulator's
// "http://127.0.0.1:7702/v2". It must be an absolute http or https URL.
func WithBaseURL(raw string) Option {
	return func(c *Client) error {
		u, err := url.Parse(strings.TrimSpace(raw))
		if err != nil || !u.IsAbs() || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
			return fmt.Errorf("%w: base URL must be an absolute http(s) URL", ErrInvalidRequest)
		}
		u.Path = strings.TrimRight(u.Path, "/")
		u.RawQuery, u.Fragment = "", ""
		c.baseURL = u
		return nil
	}
}

// WithHTTPClient sets the HTTP client (timeouts, proxies, transports).
func WithHTTPClient(hc *http.Client) Option {
	return func(c *Client) error {
		if hc == nil {
			return fmt.Errorf("%w: nil HTTP client", ErrInvalidRequest)
		}
		c.httpClient = hc
		return nil
	}
}

// WithUserAgent sets the User-Agent header.
func WithUserAgent(ua string) Option {
	return func(c *Client) error {
		c.userAgent = ua
		return nil
	}
}

// WithMaxRetries sets how many times a GET is retried after its first
// attempt fails with a 429, a 5xx or a network error: n retries mean at most
// n+1 attempts (default DefaultMaxRetries; 0 disables retries; at most 20).
// Writes are never retried: Attio offers no idempotency key on them, so a
// retried POST could create a second webhook. The affinity SDK's
// WithMaxRetries means the same.
func WithMaxRetries(n int) Option {
	return func(c *Client) error {
		if n < 0 || n > maxRetriesLimit {
			return fmt.Errorf("%w: max retries must be between 0 and %d, got %d", ErrInvalidRequest, maxRetriesLimit, n)
		}
		c.maxRetries = n
		return nil
	}
}

// WithBackoff sets the full-jitter exponential backoff between retries:
// retry n (from 0) waits a random duration up to min(cap, base·2^n). A
// Retry-After from Attio replaces the backoff; if it asks for longer than
// cap the client gives up at once and returns the *APIError, whose
// RetryAfter says how long to wait.
func WithBackoff(base, cap time.Duration) Option {
	return func(c *Client) error {
		if base <= 0 || cap < base {
			return fmt.Errorf("%w: backoff wants 0 < base <= cap", ErrInvalidRequest)
		}
		c.backoff = retry.Backoff{Base: base, Cap: cap}
		return nil
	}
}

// NewClient returns a client authenticating with the bearer token (an Attio
// API key or OAuth access token). The token never appears in errors. Nil
// options are skipped.
func NewClient(token string, opts ...Option) (*Client, error) {
	token = strings.TrimSpace(token)
	if token == "" {
		return nil, ErrNoToken
	}
	if strings.ContainsFunc(token, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return nil, fmt.Errorf("%w: API token contains whitespace or control characters", ErrInvalidRequest)
	}
	base, _ := url.Parse(DefaultBaseURL)
	c := &Client{
		baseURL:    base,
		token:      token,
		httpClient: &http.Client{Timeout: 30 * time.Second},
		userAgent:  defaultUserAgent,
		maxRetries: DefaultMaxRetries,
		backoff:    retry.Backoff{Base: DefaultBackoffBase, Cap: DefaultBackoffCap},
		now:        time.Now,
		sleep:      sleepCtx,
		jitter:     func(n int64) int64 { return rand.Int64N(n) },
	}
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o(c); err != nil {
			return nil, err
		}
	}
	c.Webhooks = &WebhookService{client: c}
	return c, nil
}

// NewClientFromEnv is NewClient with the token from ATTIO_API_KEY and, when
// set, the base URL from ATTIO_BASE_URL. Options given here win over both.
func NewClientFromEnv(opts ...Option) (*Client, error) {
	if base := os.Getenv(EnvBaseURL); base != "" {
		opts = append([]Option{WithBaseURL(base)}, opts...)
	}
	return NewClient(os.Getenv(EnvAPIKey), opts...)
}

// BaseURL returns the API root the client sends requests to.
func (c *Client) BaseURL() string { return c.baseURL.String() }

// Response wraps the HTTP response of an API call. Its body has already been
// read and closed.
type Response struct {
	*http.Response
}

// do sends one API call. in, when not nil, is sent as {"data": in}; out, when
// not nil, receives the "data" of a 2xx answer. GETs are retried per the
// client's policy; other methods are sent exactly once.
func (c *Client) do(ctx context.Context, method, path string, query url.Values, in, out any) (*Response, error) {
	if ctx == nil {
		return nil, fmt.Errorf("%w: nil context", ErrInvalidRequest)
	}
	var payload []byte
	if in != nil {
		var err error
		if payload, err = json.Marshal(struct {
			Data any `json:"data"`
		}{in}); err != nil {
			return nil, fmt.Errorf("%w: encode request: %w", ErrInvalidRequest, err)
		}
	}
	// path arrives escaped (ids go through url.PathEscape), so an id holding
	// "/" or "?" stays one path segment.
	unescaped, err := url.PathUnescape(path)
	if err != nil {
		return nil, fmt.Errorf("%w: bad path", ErrInvalidRequest)
	}
	u := *c.baseURL
	u.Path = c.baseURL.Path + unescaped
	u.RawPath = c.baseURL.EscapedPath() + path
	u.RawQuery = query.Encode()

	retrier := apiclient.Retrier{
		Backoff:   c.backoff,
		Retryable: retryableStatus,
		Now:       c.now,
		Sleep:     c.sleep,
		Jitter:    c.jitter,
	}
	if method == http.MethodGet {
		retrier.MaxRetries = c.maxRetries
	}
	target := u.String()
	ans, err := retrier.Do(ctx, func(ctx context.Context) (*http.Response, []byte, error) {
		return c.send(ctx, method, target, payload)
	})
	if ans == nil {
		return nil, err
	}
	r := &Response{Response: ans.Response}
	if err != nil {
		return r, err // the wait before a retry was cut short
	}
	if !ans.OK() {
		return r, newAPIError(ans.Response, ans.Body, c.token, ans.RetryAfter)
	}
	if out != nil {
		if err := decodeData(ans.Response, ans.Body, out); err != nil {
			return r, err
		}
	}
	return r, nil
}

// send makes one HTTP exchange and reads the whole (bounded) body. A nil
// response with an error means no usable answer arrived (retried for GETs);
// a response with an error is a 2xx answer too large to keep.
func (c *Client) send(ctx context.Context, method, target string, payload []byte) (*http.Response, []byte, error) {
	req, err := apiclient.NewRequest(ctx, method, target, payload, c.userAgent)
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := c.httpClient.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	limit := int64(maxSuccessBody)
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		limit = maxErrorBody
	}
	data, over, err := apiclient.ReadBounded(resp.Body, limit)
	if err != nil {
		return nil, nil, err
	}
	if over && limit != maxErrorBody { // an error body only feeds a message
		return resp, nil, apiclient.Mark(ErrUnexpectedResponse, apiclient.Unexpected("%d answer is over %d bytes", resp.StatusCode, limit))
	}
	return resp, data, nil
}

// retryableStatus: rate limits and the transient server failures Attio's
// docs name.
func retryableStatus(code int) bool {
	switch code {
	case http.StatusTooManyRequests, http.StatusInternalServerError, http.StatusBadGateway,
		http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// decodeData unwraps {"data": …} into out. Its errors match
// ErrUnexpectedResponse.
func decodeData(resp *http.Response, body []byte, out any) error {
	var env struct {
		Data json.RawMessage `json:"data"`
	}
	if err := apiclient.DecodeJSON(resp, body, &env); err != nil {
		return apiclient.Mark(ErrUnexpectedResponse, err)
	}
	if len(env.Data) == 0 || string(env.Data) == "null" {
		return apiclient.Mark(ErrUnexpectedResponse, apiclient.Unexpected(`%d answer has no "data"`, resp.StatusCode))
	}
	if err := json.Unmarshal(env.Data, out); err != nil {
		return apiclient.Mark(ErrUnexpectedResponse, apiclient.Unexpected("decode %d answer: %w", resp.StatusCode, err))
	}
	return nil
}

// sleepCtx waits d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error { return retry.Sleep(ctx, d) }
