package sink

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/crmhook/crmhook"
	"github.com/crmhook/crmhook/internal/retry"
	"github.com/crmhook/crmhook/stdwebhooks"
)

// Defaults of HTTPConfig.
const (
	DefaultHTTPTimeout = 10 * time.Second
	// MaxRetryAfter caps how long a receiver's Retry-After may hold a delivery back.
	MaxRetryAfter = time.Hour
)

// maxResponseDrain is how much of a response body is read before the
// connection is closed; reading it lets the connection be reused.
const maxResponseDrain = 64 << 10

// HTTPConfig configures an HTTP sink.
type HTTPConfig struct {
	Name string // the sink's configured name; required
	URL  string // where events are POSTed; http or https; required
	// Secret, a whsec_ Standard Webhooks secret, signs every request
	// (webhook-signature). Empty sends the requests unsigned.
	Secret string
	// Timeout bounds one attempt, response included. Default 10s.
	Timeout time.Duration
	// Headers are added to every request (an Authorization header, say).
	// They cannot replace Content-Type or the webhook-* headers.
	Headers map[string]string
	// Client sends the requests. The default does not follow redirects, so
	// a 3xx is reported as such instead of turning the POST into a GET. A
	// Client given here is used as it is.
	Client *http.Client
	// Now is the clock the signature's timestamp and Retry-After dates are
	// read from: crmhook's one clock. Default time.Now.
	Now func() time.Time
}

func (c *HTTPConfig) withDefaults() HTTPConfig {
	out := *c
	if out.Timeout == 0 {
		out.Timeout = DefaultHTTPTimeout
	}
	if out.Now == nil {
		out.Now = time.Now
	}
	return out
}

func (c *HTTPConfig) validate() error {
	if c.Name == "" {
		return errors.New("name is required")
	}
	u, err := url.Parse(c.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		// The URL itself is left out: it may hold a secret path or token.
		return errors.New("url must be an absolute http:// or https:// URL")
	}
	if c.Timeout < 0 {
		return fmt.Errorf("timeout %s is negative", c.Timeout)
	}
	for name := range c.Headers {
		if !validHeaderName(name) {
			return fmt.Errorf("header name %q is not a valid HTTP header name", name)
		}
		switch http.CanonicalHeaderKey(name) {
		case "Content-Type", "Content-Length", "Host",
			http.CanonicalHeaderKey(stdwebhooks.HeaderID),
			http.CanonicalHeaderKey(stdwebhooks.HeaderTimestamp),
			http.CanonicalHeaderKey(stdwebhooks.HeaderSignature):
			return fmt.Errorf("header %q is set by the sink and cannot be configured", name)
		}
	}
	return nil
}

// validHeaderName reports whether s is an RFC 9110 token.
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case strings.ContainsRune("!#$%&'*+-.^_`|~", r):
		default:
			return false
		}
	}
	return true
}

// HTTP POSTs each event as a CloudEvent in structured JSON mode, signed
// with Standard Webhooks headers. A 2xx answer means delivered; 410 Gone
// means the receiver is gone for good (dead-lettered at once); 408, 429 and
// 5xx are retried, after the receiver's Retry-After if it sent one; other
// statuses and network failures are retried too, so a misconfigured
// receiver that gets fixed still receives what the retry budget holds.
type HTTP struct {
	cfg       HTTPConfig
	signer    *stdwebhooks.Signer // nil: unsigned
	client    *http.Client
	ownClient bool
	now       func() time.Time
}

// NewHTTP returns an HTTP sink.
func NewHTTP(cfg HTTPConfig) (*HTTP, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("http sink %q: %w", cfg.Name, err)
	}
	s := &HTTP{cfg: cfg, client: cfg.Client, now: cfg.Now}
	if cfg.Secret != "" {
		signer, err := stdwebhooks.NewSigner(cfg.Secret)
		if err != nil {
			return nil, fmt.Errorf("http sink %q: secret: %w", cfg.Name, err)
		}
		s.signer = signer
	}
	if s.client == nil {
		transport := http.DefaultTransport.(*http.Transport).Clone()
		// One receiver is usually behind every request: keep enough idle
		// connections for the dispatcher's concurrency (the default is 2).
		transport.MaxIdleConnsPerHost = 64
		s.client = &http.Client{
			Transport: transport,
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			},
		}
		s.ownClient = true
	}
	return s, nil
}

// Name is the sink's configured name.
func (s *HTTP) Name() string { return s.cfg.Name }

// Close releases idle connections of the sink's own client.
func (s *HTTP) Close() error {
	if s.ownClient {
		s.client.CloseIdleConnections()
	}
	return nil
}

// Deliver POSTs ev to the sink's URL.
func (s *HTTP) Deliver(ctx context.Context, ev *crmhook.Event, attempt int) error {
	body, err := CloudEvent(ev)
	if err != nil {
		return &crmhook.DeliveryError{Err: fmt.Errorf("http sink %q: %w", s.cfg.Name, err), Permanent: true}
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return &crmhook.DeliveryError{Err: fmt.Errorf("http sink %q: new request: %w", s.cfg.Name, stripURL(err))}
	}
	for k, v := range s.cfg.Headers {
		req.Header.Set(k, v)
	}
	req.Header.Set("Content-Type", ContentTypeCloudEvents)
	if req.Header.Get("User-Agent") == "" {
		req.Header.Set("User-Agent", "crmhook")
	}
	now := s.now()
	if s.signer != nil {
		s.signer.SetHeaders(req.Header, ev.ID, now, body)
	} else {
		// Without a secret the id and timestamp still let a receiver dedupe.
		req.Header.Set(stdwebhooks.HeaderID, ev.ID)
		req.Header.Set(stdwebhooks.HeaderTimestamp, strconv.FormatInt(now.Unix(), 10))
	}

	resp, err := s.client.Do(req)
	if err != nil {
		return &crmhook.DeliveryError{Err: fmt.Errorf("http sink %q: post: %w", s.cfg.Name, stripURL(err))}
	}
	// Drain a bounded amount so the connection can be reused; the body is
	// never read into errors.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponseDrain))
	_ = resp.Body.Close()
	return s.outcome(resp)
}

// outcome turns a response into the delivery's result.
func (s *HTTP) outcome(resp *http.Response) error {
	code := resp.StatusCode
	if code >= 200 && code < 300 {
		return nil
	}
	err := fmt.Errorf("http sink %q: %w", s.cfg.Name, &StatusError{StatusCode: code})
	switch {
	case code == http.StatusGone:
		return &crmhook.DeliveryError{Err: err, Permanent: true}
	case code == http.StatusRequestTimeout, code == http.StatusTooManyRequests, code >= 500:
		return &crmhook.DeliveryError{Err: err, RetryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), s.now())}
	default:
		// 3xx and other 4xx: likely a misconfiguration that an operator can
		// fix; the retry budget dead-letters it if nobody does.
		return &crmhook.DeliveryError{Err: err}
	}
}

// StatusError is a receiver's answer other than 2xx.
type StatusError struct {
	StatusCode int
}

func (e *StatusError) Error() string {
	if text := http.StatusText(e.StatusCode); text != "" {
		return fmt.Sprintf("status %d %s", e.StatusCode, text)
	}
	return fmt.Sprintf("status %d", e.StatusCode)
}

// parseRetryAfter reads a Retry-After value, delay-seconds or an HTTP date,
// capped at MaxRetryAfter. It returns 0 for an absent, invalid or past value.
func parseRetryAfter(v string, now time.Time) time.Duration {
	return min(retry.ParseRetryAfter(v, now), MaxRetryAfter)
}

// stripURL drops the URL from a *url.Error: it may hold a secret path or
// token, and errors are stored and logged.
func stripURL(err error) error {
	var uerr *url.Error
	if errors.As(err, &uerr) {
		return uerr.Err
	}
	return err
}
