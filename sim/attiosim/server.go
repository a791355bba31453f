package attiosim

import (
	"bytes"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/crmhook/crmhook/attio"
	"github.com/crmhook/crmhook/sim/internal/simdeliver"
	"github.com/crmhook/crmhook/sim/internal/simhttp"
)

// maxRequestBody bounds every request body the simulator reads.
const maxRequestBody = 1 << 20

// List paging: Attio's limit is 1–100; without one a page holds 10.
const (
	defaultListLimit = 10
	maxListLimit     = 100
)

// webhook is a stored webhook: what the API shows plus the simulator's
// bookkeeping.
type webhook struct {
	attio.Webhook // Secret is kept here and shown only in the answer to create
	seq           int64
	degradedAt    time.Time // on Config.Now; zero unless degraded
}

// public returns what GET shows: a deep copy without the secret.
func (wh *webhook) public() attio.Webhook {
	c := wh.Webhook
	c.Secret = ""
	c.Subscriptions = slices.Clone(wh.Subscriptions)
	return c
}

// Server is a simulated Attio workspace: an http.Handler serving the REST
// API v2 webhook endpoints under /v2, plus local-only /_sim/ endpoints to
// trigger events and read the delivery log. It delivers events to the
// webhooks' target URLs over real HTTP and retries failures as Attio does.
type Server struct {
	cfg    Config
	reads  *limiter
	writes *limiter
	runner *simdeliver.Runner // sends deliveries; Close stops its retry chains

	mu         sync.Mutex
	webhooks   map[string]*webhook
	seq        int64
	deliveries []Delivery
}

// New returns a Server for cfg, or an error naming every invalid field.
func New(cfg Config) (*Server, error) {
	checked, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	now := checked.Now()
	s := &Server{
		cfg:      checked,
		reads:    newLimiter(checked.ReadRate, now),
		writes:   newLimiter(checked.WriteRate, now),
		webhooks: map[string]*webhook{},
	}
	s.runner = simdeliver.NewRunner(&s.mu, simdeliver.RunnerConfig{
		Name:       "attiosim",
		Client:     checked.HTTPClient,
		OwnsClient: cfg.HTTPClient == nil,
		UserAgent:  "crmhook-attio-sim",
		TimeScale:  checked.TimeScale,
		Closing:    errors.New("the simulator is closing"),
	})
	return s, nil
}

// Token returns the bearer token the API accepts.
func (s *Server) Token() string { return s.cfg.Token }

// WorkspaceID returns the simulated workspace's id.
func (s *Server) WorkspaceID() string { return s.cfg.WorkspaceID }

// Webhooks returns the current webhooks, oldest first, without secrets (the
// simulator, like Attio, shows a secret only in the answer to create).
func (s *Server) Webhooks() []attio.Webhook {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]attio.Webhook, 0, len(s.webhooks))
	for _, wh := range s.sortedLocked() {
		out = append(out, wh.public())
	}
	return out
}

// sortedLocked returns the stored webhooks oldest first, after bringing
// their statuses up to date.
func (s *Server) sortedLocked() []*webhook {
	now := s.cfg.Now()
	all := make([]*webhook, 0, len(s.webhooks))
	for _, wh := range s.webhooks {
		s.refreshStatusLocked(wh, now)
		all = append(all, wh)
	}
	slices.SortFunc(all, func(a, b *webhook) int { return int(a.seq - b.seq) })
	return all
}

// refreshStatusLocked turns a webhook that has been degraded for
// InactiveAfter (simulated) into an inactive one. Status is computed when
// read rather than by a timer, so a test clock controls it exactly.
func (s *Server) refreshStatusLocked(wh *webhook, now time.Time) {
	if wh.Status == attio.WebhookDegraded && now.Sub(wh.degradedAt) >= simdeliver.RealWait(s.cfg.InactiveAfter, s.cfg.TimeScale) {
		wh.Status = attio.WebhookInactive
		s.cfg.Logger.Warn("attio sim: webhook inactive after staying degraded", "webhook_id", wh.ID.WebhookID)
	}
}

// ServeHTTP serves Attio's webhook API under /v2 and, under /_sim/ only, the
// simulator's own endpoints (which need no token: the simulator is a local
// tool).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/_sim/") {
		s.simControl().ServeHTTP(w, r)
		return
	}
	rec := simhttp.NewStatusRecorder(w)
	defer func() {
		s.cfg.Logger.Info("attio sim: api", "method", r.Method, "path", r.URL.Path, "status", rec.Status)
	}()
	if !s.authenticate(r) {
		writeError(rec, http.StatusUnauthorized, "auth_error", "unauthorized",
			"Authentication failed: send a valid API token as 'Authorization: Bearer <token>'.")
		return
	}
	lim := s.writes
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		lim = s.reads
	}
	if ok, retryAt := lim.take(s.cfg.Now()); !ok {
		rec.Header().Set("Retry-After", retryAt.UTC().Format(http.TimeFormat))
		writeError(rec, http.StatusTooManyRequests, "rate_limit_error", "rate_limit_exceeded",
			"Rate limit exceeded, please try again later.")
		return
	}
	s.route(rec, r)
}

// route dispatches an authenticated API request.
func (s *Server) route(w http.ResponseWriter, r *http.Request) {
	const prefix = "/v2/webhooks"
	path := strings.TrimSuffix(r.URL.Path, "/")
	switch {
	case path == prefix:
		switch r.Method {
		case http.MethodGet:
			s.listWebhooks(w, r)
		case http.MethodPost:
			s.createWebhook(w, r)
		default:
			methodNotAllowed(w, "GET, POST")
		}
	case strings.HasPrefix(path, prefix+"/") && !strings.Contains(path[len(prefix)+1:], "/"):
		id := path[len(prefix)+1:]
		switch r.Method {
		case http.MethodGet:
			s.getWebhook(w, id)
		case http.MethodPatch:
			s.updateWebhook(w, r, id)
		case http.MethodDelete:
			s.deleteWebhook(w, id)
		default:
			methodNotAllowed(w, "GET, PATCH, DELETE")
		}
	default:
		writeError(w, http.StatusNotFound, "invalid_request_error", "not_found",
			"No such endpoint. The simulator serves /v2/webhooks and /v2/webhooks/{webhook_id}.")
	}
}

// authenticate checks "Authorization: Bearer <token>" in constant time.
func (s *Server) authenticate(r *http.Request) bool {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(strings.TrimSpace(tok)), []byte(s.cfg.Token)) == 1
}

func (s *Server) listWebhooks(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit, offset := defaultListLimit, 0
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxListLimit {
			writeValidation(w, fmt.Sprintf("limit: must be an integer from 1 to %d.", maxListLimit))
			return
		}
		limit = n
	}
	if v := q.Get("offset"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			writeValidation(w, "offset: must be a non-negative integer.")
			return
		}
		offset = n
	}
	s.mu.Lock()
	all := s.sortedLocked()
	page := []attio.Webhook{}
	for i := offset; i < len(all) && len(page) < limit; i++ {
		page = append(page, all[i].public())
	}
	s.mu.Unlock()
	writeData(w, http.StatusOK, page)
}

func (s *Server) getWebhook(w http.ResponseWriter, id string) {
	s.mu.Lock()
	wh, ok := s.webhooks[id]
	var out attio.Webhook
	if ok {
		s.refreshStatusLocked(wh, s.cfg.Now())
		out = wh.public()
	}
	s.mu.Unlock()
	if !ok {
		writeWebhookNotFound(w, id)
		return
	}
	writeData(w, http.StatusOK, out)
}

// webhookInput is the "data" of create and update. Pointers tell absent
// from empty.
type webhookInput struct {
	TargetURL     *string            `json:"target_url"`
	Subscriptions *[]json.RawMessage `json:"subscriptions"`
}

func (s *Server) createWebhook(w http.ResponseWriter, r *http.Request) {
	in, ok := readInput(w, r)
	if !ok {
		return
	}
	switch {
	case in.TargetURL == nil:
		writeValidation(w, "data.target_url: required.")
		return
	case in.Subscriptions == nil:
		writeValidation(w, "data.subscriptions: required.")
		return
	}
	if msg := checkTargetURL(*in.TargetURL); msg != "" {
		writeValidation(w, msg)
		return
	}
	subs, msg := parseSubscriptions(*in.Subscriptions)
	if msg != "" {
		writeValidation(w, msg)
		return
	}
	secret, err := newSecret()
	if err != nil {
		writeError(w, http.StatusInternalServerError, "api_error", "internal_error", "Could not create a secret.")
		return
	}
	s.mu.Lock()
	s.seq++
	wh := &webhook{
		Webhook: attio.Webhook{
			ID:            attio.WebhookID{WorkspaceID: s.cfg.WorkspaceID, WebhookID: uuid.NewString()},
			TargetURL:     *in.TargetURL,
			Subscriptions: subs,
			Status:        attio.WebhookActive,
			CreatedAt:     s.cfg.Now().UTC().Truncate(time.Millisecond),
			Secret:        secret,
		},
		seq: s.seq,
	}
	s.webhooks[wh.ID.WebhookID] = wh
	out := wh.Webhook // the only answer that carries the secret
	out.Subscriptions = slices.Clone(subs)
	s.mu.Unlock()
	s.cfg.Logger.Info("attio sim: webhook created", "webhook_id", out.ID.WebhookID, "subscriptions", len(subs))
	writeData(w, http.StatusOK, out)
}

func (s *Server) updateWebhook(w http.ResponseWriter, r *http.Request, id string) {
	s.mu.Lock()
	_, exists := s.webhooks[id]
	s.mu.Unlock()
	if !exists {
		writeWebhookNotFound(w, id)
		return
	}
	in, ok := readInput(w, r)
	if !ok {
		return
	}
	if in.TargetURL == nil && in.Subscriptions == nil {
		writeValidation(w, "data: give target_url, subscriptions or both.")
		return
	}
	if in.TargetURL != nil {
		if msg := checkTargetURL(*in.TargetURL); msg != "" {
			writeValidation(w, msg)
			return
		}
	}
	var subs []attio.Subscription
	if in.Subscriptions != nil {
		var msg string
		if subs, msg = parseSubscriptions(*in.Subscriptions); msg != "" {
			writeValidation(w, msg)
			return
		}
	}
	s.mu.Lock()
	wh, ok := s.webhooks[id]
	var out attio.Webhook
	if ok {
		if in.TargetURL != nil {
			wh.TargetURL = *in.TargetURL
		}
		if in.Subscriptions != nil {
			wh.Subscriptions = subs
		}
		s.refreshStatusLocked(wh, s.cfg.Now())
		out = wh.public()
	}
	s.mu.Unlock()
	if !ok { // deleted while we validated
		writeWebhookNotFound(w, id)
		return
	}
	s.cfg.Logger.Info("attio sim: webhook updated", "webhook_id", id)
	writeData(w, http.StatusOK, out)
}

func (s *Server) deleteWebhook(w http.ResponseWriter, id string) {
	s.mu.Lock()
	_, ok := s.webhooks[id]
	delete(s.webhooks, id)
	s.mu.Unlock()
	if !ok {
		writeWebhookNotFound(w, id)
		return
	}
	s.cfg.Logger.Info("attio sim: webhook deleted", "webhook_id", id)
	writeJSON(w, http.StatusOK, struct{}{})
}

// readInput reads {"data": {…}} strictly: one object, no unknown keys.
func readInput(w http.ResponseWriter, r *http.Request) (webhookInput, bool) {
	var in webhookInput
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRequestBody))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			writeError(w, http.StatusRequestEntityTooLarge, "invalid_request_error", "body_too_large",
				fmt.Sprintf("The request body is over %d bytes.", maxRequestBody))
		} else {
			writeValidation(w, "Could not read the request body.")
		}
		return in, false
	}
	var env struct {
		Data json.RawMessage `json:"data"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&env); err != nil || dec.More() {
		writeValidation(w, `Body must be one JSON object {"data": {…}}.`)
		return in, false
	}
	if len(env.Data) == 0 || string(env.Data) == "null" {
		writeValidation(w, "data: required.")
		return in, false
	}
	dec = json.NewDecoder(bytes.NewReader(env.Data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		writeValidation(w, "data: "+decodeProblem(err))
		return in, false
	}
	return in, true
}

// decodeProblem describes a decoding error by field and expected type,
// never quoting the input.
func decodeProblem(err error) string {
	if te, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
		return fmt.Sprintf("%s: must be a %s.", te.Field, jsonTypeName(te.Type.Kind().String()))
	}
	if msg, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		return "unknown field " + msg + "."
	}
	return "must be a JSON object."
}

func jsonTypeName(kind string) string {
	switch kind {
	case "string":
		return "string"
	case "slice":
		return "array"
	case "struct", "map":
		return "object"
	}
	return kind
}

// checkTargetURL applies attio.ValidateTargetURL: https, or plain http for
// loopback hosts only (so local receivers work; real Attio wants https).
func checkTargetURL(raw string) string {
	if err := attio.ValidateTargetURL(raw); err != nil {
		return "data.target_url: must be an absolute https URL (the simulator also accepts http for loopback hosts)."
	}
	return ""
}

// parseSubscriptions decodes and validates subscriptions one by one, so an
// error names the offending index. Event types must be known; filters are
// decoded by attio.Filter, which refuses every shape Attio refuses. An
// absent filter is taken as null (every event).
func parseSubscriptions(raw []json.RawMessage) ([]attio.Subscription, string) {
	if len(raw) == 0 {
		return nil, "data.subscriptions: at least one subscription is required."
	}
	subs := make([]attio.Subscription, 0, len(raw))
	for i, item := range raw {
		at := fmt.Sprintf("data.subscriptions[%d]", i)
		var sub struct {
			EventType *string         `json:"event_type"`
			Filter    json.RawMessage `json:"filter"`
		}
		dec := json.NewDecoder(bytes.NewReader(item))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&sub); err != nil {
			return nil, at + ": " + decodeProblem(err)
		}
		if sub.EventType == nil {
			return nil, at + ".event_type: required."
		}
		t := attio.EventType(*sub.EventType)
		if !t.Known() {
			return nil, fmt.Sprintf("%s.event_type: unknown event type %s.", at, quoteShort(string(t)))
		}
		var f *attio.Filter
		if len(sub.Filter) > 0 && string(sub.Filter) != "null" {
			if err := json.Unmarshal(sub.Filter, &f); err != nil {
				msg := strings.TrimPrefix(err.Error(), attio.ErrInvalidFilter.Error()+": ")
				return nil, at + ".filter: " + msg + "."
			}
		}
		subs = append(subs, attio.Subscription{EventType: t, Filter: f})
	}
	return subs, ""
}

// newSecret returns a fresh webhook secret: 32 random bytes, hex-encoded.
func newSecret() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

// apiError is Attio's error body.
type apiError struct {
	StatusCode int    `json:"status_code"`
	Type       string `json:"type"`
	Code       string `json:"code"`
	Message    string `json:"message"`
}

func writeError(w http.ResponseWriter, status int, typ, code, msg string) {
	writeJSON(w, status, apiError{StatusCode: status, Type: typ, Code: code, Message: msg})
}

func writeValidation(w http.ResponseWriter, msg string) {
	writeError(w, http.StatusBadRequest, "invalid_request_error", "validation_type", msg)
}

func writeWebhookNotFound(w http.ResponseWriter, id string) {
	writeError(w, http.StatusNotFound, "invalid_request_error", "not_found",
		fmt.Sprintf("Webhook with ID %s not found.", quoteShort(id)))
}

func methodNotAllowed(w http.ResponseWriter, allow string) {
	w.Header().Set("Allow", allow)
	writeError(w, http.StatusMethodNotAllowed, "invalid_request_error", "method_not_allowed",
		"Method not allowed; use "+allow+".")
}

func writeData(w http.ResponseWriter, status int, v any) {
	writeJSON(w, status, struct {
		Data any `json:"data"`
	}{v})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // messages read "<token>", not "\u003ctoken\u003e"
	if err := enc.Encode(v); err != nil {
		status = http.StatusInternalServerError
		buf.Reset()
		buf.WriteString(`{"status_code":500,"type":"api_error","code":"internal_error","message":"Could not encode the answer."}` + "\n")
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}
