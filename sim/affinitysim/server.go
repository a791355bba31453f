package affinitysim

import (
	"bytes"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/crmhook/crmhook/sim/internal/simdeliver"
	"github.com/crmhook/crmhook/sim/internal/simhttp"
)

// Webhook is a webhook subscription as Affinity's V1 API returns it. An empty
// Subscriptions list means every event type. API v2 serves the same
// subscriptions as its webhooks (url, subscriptions, status "disabled" when
// Disabled, creator CreatedBy).
type Webhook struct {
	ID            int64    `json:"id"`
	WebhookURL    string   `json:"webhook_url"`
	Subscriptions []string `json:"subscriptions"`
	Disabled      bool     `json:"disabled"`
	CreatedBy     int64    `json:"created_by"`

	// createdAt and updatedAt are shown by API v2 only (V1 has no such
	// fields); updatedAt is zero until the first update through either API.
	createdAt, updatedAt time.Time
}

// wants reports whether the subscription receives events of type t.
func (wh *Webhook) wants(t string) bool {
	return len(wh.Subscriptions) == 0 || slices.Contains(wh.Subscriptions, t)
}

func (wh *Webhook) clone() Webhook {
	c := *wh
	c.Subscriptions = append([]string{}, wh.Subscriptions...)
	return c
}

// firstWebhookID is where subscription ids start: far from the user ids
// (1, 2, …) so a client that mixes up the two fails in tests.
const firstWebhookID = 1001

// maxRequestBody bounds every request body the simulator reads.
const maxRequestBody = 1 << 20

// Server is a simulated Affinity instance: an http.Handler serving Affinity's
// V1 webhook API, plus local-only /_sim/ endpoints to trigger events and read
// the delivery log. It delivers events to the subscribed URLs over real HTTP
// and retries failures the way Affinity does.
type Server struct {
	cfg    Config
	rl     *rateLimiter
	runner *simdeliver.Runner // sends deliveries and probes; Close stops its retry chains

	mu         sync.Mutex
	webhooks   map[int64]*Webhook
	nextID     int64
	deliveries []Delivery
	probes     []Delivery
}

// New returns a Server for cfg, or an error naming every invalid field.
func New(cfg Config) (*Server, error) {
	checked, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg:      checked,
		rl:       newRateLimiter(checked.RateLimitPerMinute, checked.OrgMonthlyQuota),
		webhooks: map[int64]*Webhook{},
		nextID:   firstWebhookID,
	}
	s.runner = simdeliver.NewRunner(&s.mu, simdeliver.RunnerConfig{
		Name:       "affinitysim",
		Client:     checked.HTTPClient,
		OwnsClient: cfg.HTTPClient == nil,
		UserAgent:  "crmhook-affinity-sim",
		TimeScale:  checked.TimeScale,
	})
	return s, nil
}

// Webhooks returns a copy of the current subscriptions, ordered by id.
func (s *Server) Webhooks() []Webhook {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.webhooksLocked()
}

func (s *Server) webhooksLocked() []Webhook {
	out := make([]Webhook, 0, len(s.webhooks))
	for _, wh := range s.webhooks {
		out = append(out, wh.clone())
	}
	slices.SortFunc(out, func(a, b Webhook) int { return int(a.ID - b.ID) })
	return out
}

// ServeHTTP serves Affinity's V1 webhook API and, under /_sim/ only, the
// simulator's own endpoints (which need no API key: the simulator is a
// local tool).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/_sim/") {
		s.simControl().ServeHTTP(w, r)
		return
	}
	if r.URL.Path == "/v2" || strings.HasPrefix(r.URL.Path, "/v2/") {
		s.serveV2(w, r) // API v2 has its own auth (bearer only) and error bodies
		return
	}
	rec := simhttp.NewStatusRecorder(w)
	user, ok := s.authenticate(r)
	if !ok {
		writeUnauthorized(rec)
		s.logRequest(r, rec.Status, 0)
		return
	}
	st := s.rl.take(user.ID, s.cfg.Now())
	st.setHeaders(rec.Header())
	if !st.allowed {
		writeErrors(rec, http.StatusTooManyRequests, "rate_limit_exceeded",
			"Rate limit exceeded. Retry after "+seconds(st.retryAfter)+" seconds.")
	} else {
		s.route(rec, r, user)
	}
	s.logRequest(r, rec.Status, user.ID)
}

// route dispatches an authenticated API request.
func (s *Server) route(w http.ResponseWriter, r *http.Request, user User) {
	switch p := r.URL.Path; {
	case p == "/webhook":
		if r.Method != http.MethodGet {
			methodNotAllowed(w, http.MethodGet)
			return
		}
		writeJSON(w, http.StatusOK, s.Webhooks())
	case p == "/webhook/subscribe":
		if r.Method != http.MethodPost {
			methodNotAllowed(w, http.MethodPost)
			return
		}
		s.createWebhook(w, r, user)
	case strings.HasPrefix(p, "/webhook/") && !strings.Contains(p[len("/webhook/"):], "/"):
		id, err := strconv.ParseInt(p[len("/webhook/"):], 10, 64)
		if err != nil || id <= 0 {
			if p == "/webhook/" {
				writeNotFound(w)
				return
			}
			writeErrors(w, http.StatusBadRequest, "invalid_params", "webhook_subscription_id must be a positive integer")
			return
		}
		switch r.Method {
		case http.MethodGet:
			s.getWebhook(w, id)
		case http.MethodPut:
			s.updateWebhook(w, r, user, id)
		case http.MethodDelete:
			s.deleteWebhook(w, user, id)
		default:
			methodNotAllowed(w, "GET, PUT, DELETE")
		}
	default:
		writeNotFound(w)
	}
}

// authenticate accepts Affinity's two schemes: HTTP Basic with an empty user
// name and the API key as password, or "Authorization: Bearer <key>". Every
// user's key is compared in constant time, with no early exit.
func (s *Server) authenticate(r *http.Request) (User, bool) {
	var key string
	if name, pass, ok := r.BasicAuth(); ok {
		if name != "" {
			return User{}, false
		}
		key = pass
	} else if scheme, rest, ok := strings.Cut(r.Header.Get("Authorization"), " "); ok && strings.EqualFold(scheme, "Bearer") {
		key = strings.TrimSpace(rest)
	}
	if key == "" {
		return User{}, false
	}
	var found User
	matched := 0
	for _, u := range s.cfg.Users {
		if subtle.ConstantTimeCompare([]byte(u.APIKey), []byte(key)) == 1 {
			found = u
			matched = 1
		}
	}
	return found, matched == 1
}

func (s *Server) getWebhook(w http.ResponseWriter, id int64) {
	s.mu.Lock()
	wh, ok := s.webhooks[id]
	var out Webhook
	if ok {
		out = wh.clone()
	}
	s.mu.Unlock()
	if !ok {
		writeNotFound(w)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) createWebhook(w http.ResponseWriter, r *http.Request, user User) {
	params, apiErr := readParams(w, r)
	if apiErr != nil {
		apiErr.write(w)
		return
	}
	if params.webhookURL == nil {
		writeErrors(w, http.StatusUnprocessableEntity, "invalid_params", "webhook_url is required")
		return
	}
	if apiErr := params.validate(); apiErr != nil {
		apiErr.write(w)
		return
	}
	// Check the limit before probing (no point calling the URL), and again
	// after: the probe runs unlocked and another create may have won the slot.
	if apiErr := s.checkLimit(); apiErr != nil {
		apiErr.write(w)
		return
	}
	if reason := s.probe(r.Context(), 0, *params.webhookURL); reason != "" {
		probeFailed(w, reason)
		return
	}

	s.mu.Lock()
	if apiErr := s.checkLimitLocked(); apiErr != nil {
		s.mu.Unlock()
		apiErr.write(w)
		return
	}
	wh := &Webhook{
		ID:            s.nextID,
		WebhookURL:    *params.webhookURL,
		Subscriptions: []string{},
		CreatedBy:     user.ID,
		createdAt:     s.cfg.Now(),
	}
	if params.subscriptions != nil {
		wh.Subscriptions = *params.subscriptions
	}
	s.nextID++
	s.webhooks[wh.ID] = wh
	out := wh.clone()
	s.mu.Unlock()

	s.cfg.Logger.Info("affinity sim: webhook subscription created",
		"id", out.ID, "created_by", out.CreatedBy, "event_types", len(out.Subscriptions))
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) checkLimit() *apiError {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.checkLimitLocked()
}

func (s *Server) checkLimitLocked() *apiError {
	if len(s.webhooks) >= s.cfg.MaxSubscriptions {
		return &apiError{
			status: http.StatusUnprocessableEntity,
			code:   "limit_reached",
			msg:    fmt.Sprintf("Webhook subscription limit of %s reached for this instance; delete one to create another", subscriptionCount(s.cfg.MaxSubscriptions)),
		}
	}
	return nil
}

// subscriptionCount renders n with its noun: "1 subscription", "3 subscriptions".
func subscriptionCount(n int) string {
	if n == 1 {
		return "1 subscription"
	}
	return strconv.Itoa(n) + " subscriptions"
}

func (s *Server) updateWebhook(w http.ResponseWriter, r *http.Request, user User, id int64) {
	s.mu.Lock()
	wh, ok := s.webhooks[id]
	var cur Webhook
	if ok {
		cur = wh.clone()
	}
	s.mu.Unlock()
	if !ok {
		writeNotFound(w)
		return
	}
	if cur.CreatedBy != user.ID {
		writeErrors(w, http.StatusForbidden, "forbidden",
			"A webhook subscription can only be updated by its creator")
		return
	}
	params, apiErr := readParams(w, r)
	if apiErr != nil {
		apiErr.write(w)
		return
	}
	if apiErr := params.validate(); apiErr != nil {
		apiErr.write(w)
		return
	}

	// Affinity calls the URL again when it changes or when a disabled
	// subscription is switched back on; a failed probe changes nothing.
	target := cur.WebhookURL
	if params.webhookURL != nil {
		target = *params.webhookURL
	}
	urlChanged := target != cur.WebhookURL
	enabling := cur.Disabled && params.disabled != nil && !*params.disabled
	if urlChanged || enabling {
		if reason := s.probe(r.Context(), id, target); reason != "" {
			probeFailed(w, reason)
			return
		}
	}

	s.mu.Lock()
	wh, ok = s.webhooks[id]
	if !ok {
		s.mu.Unlock()
		writeNotFound(w)
		return
	}
	wh.WebhookURL = target
	if params.subscriptions != nil {
		wh.Subscriptions = *params.subscriptions
	}
	if params.disabled != nil {
		wh.Disabled = *params.disabled
	}
	wh.updatedAt = s.cfg.Now()
	out := wh.clone()
	s.mu.Unlock()

	s.cfg.Logger.Info("affinity sim: webhook subscription updated",
		"id", out.ID, "url_changed", urlChanged, "disabled", out.Disabled, "event_types", len(out.Subscriptions))
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) deleteWebhook(w http.ResponseWriter, user User, id int64) {
	s.mu.Lock()
	wh, ok := s.webhooks[id]
	if !ok {
		s.mu.Unlock()
		writeNotFound(w)
		return
	}
	if wh.CreatedBy != user.ID && !user.Admin {
		s.mu.Unlock()
		writeErrors(w, http.StatusForbidden, "forbidden",
			"A webhook subscription can only be deleted by its creator or an admin")
		return
	}
	delete(s.webhooks, id)
	s.mu.Unlock()

	s.cfg.Logger.Info("affinity sim: webhook subscription deleted", "id", id, "deleted_by", user.ID)
	writeJSON(w, http.StatusOK, map[string]bool{"success": true})
}

func probeFailed(w http.ResponseWriter, reason string) {
	writeErrors(w, http.StatusUnprocessableEntity, "webhook_url_unreachable",
		"webhook_url did not respond with a 2xx status to the sample.webhook request: "+reason)
}

// webhookParams are the fields of a create or update request; nil means the
// field was not sent.
type webhookParams struct {
	webhookURL    *string
	subscriptions *[]string
	disabled      *bool
}

// readParams reads a create/update body. Affinity's reference shows
// form-encoded requests (curl -d) and its SDKs send JSON, so both are
// accepted, as is multipart (curl -F). Without a Content-Type the body is
// taken as JSON when it starts with '{' and as a form otherwise.
func readParams(w http.ResponseWriter, r *http.Request) (webhookParams, *apiError) {
	r.Body = http.MaxBytesReader(w, r.Body, maxRequestBody)
	mediaType, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))

	if mediaType == "multipart/form-data" {
		if err := r.ParseMultipartForm(maxRequestBody); err != nil {
			return webhookParams{}, bodyError(err, "the multipart form could not be parsed")
		}
		return formParams(r.MultipartForm.Value)
	}

	body, err := io.ReadAll(r.Body)
	if err != nil {
		return webhookParams{}, bodyError(err, "the request body could not be read")
	}
	trimmed := bytes.TrimSpace(body)
	switch {
	case mediaType == "application/json" || strings.HasSuffix(mediaType, "+json"):
		return jsonParams(trimmed)
	case mediaType == "application/x-www-form-urlencoded":
		return parseForm(trimmed)
	case mediaType != "":
		return webhookParams{}, &apiError{status: http.StatusUnsupportedMediaType, code: "unsupported_media_type",
			msg: "Content-Type must be application/json or application/x-www-form-urlencoded"}
	case len(trimmed) == 0:
		return webhookParams{}, nil
	case trimmed[0] == '{':
		return jsonParams(trimmed)
	default:
		return parseForm(trimmed)
	}
}

func bodyError(err error, msg string) *apiError {
	if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
		return &apiError{status: http.StatusRequestEntityTooLarge, code: "request_too_large",
			msg: fmt.Sprintf("the request body is larger than %d bytes", maxRequestBody)}
	}
	return &apiError{status: http.StatusBadRequest, code: "invalid_body", msg: msg}
}

func jsonParams(body []byte) (webhookParams, *apiError) {
	var p webhookParams
	if len(body) == 0 {
		return p, nil
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil {
		return p, &apiError{status: http.StatusBadRequest, code: "invalid_json",
			msg: "the request body is not a valid JSON object"}
	}
	isNull := func(raw json.RawMessage) bool { return string(raw) == "null" }
	if raw, ok := fields["webhook_url"]; ok && !isNull(raw) {
		var v string
		if err := json.Unmarshal(raw, &v); err != nil {
			return p, invalidParam("webhook_url must be a string")
		}
		p.webhookURL = &v
	}
	if raw, ok := fields["subscriptions"]; ok && !isNull(raw) {
		var v []string
		if err := json.Unmarshal(raw, &v); err != nil {
			return p, invalidParam("subscriptions must be an array of event type strings")
		}
		p.subscriptions = &v
	}
	if raw, ok := fields["disabled"]; ok && !isNull(raw) {
		var v bool
		if err := json.Unmarshal(raw, &v); err != nil {
			return p, invalidParam("disabled must be true or false")
		}
		p.disabled = &v
	}
	return p, nil
}

func parseForm(body []byte) (webhookParams, *apiError) {
	values, err := url.ParseQuery(string(body))
	if err != nil {
		return webhookParams{}, &apiError{status: http.StatusBadRequest, code: "invalid_body",
			msg: "the request body is not a valid form encoding"}
	}
	return formParams(values)
}

// formParams reads form fields. subscriptions may repeat, in the plain
// (subscriptions=a&subscriptions=b) or the Rails style (subscriptions[]=a);
// empty values are dropped, so "subscriptions[]=" means "all events".
func formParams(values url.Values) (webhookParams, *apiError) {
	var p webhookParams
	if v, ok := values["webhook_url"]; ok && len(v) > 0 {
		p.webhookURL = &v[len(v)-1]
	}
	subs, plain := values["subscriptions"]
	rails, bracketed := values["subscriptions[]"]
	if plain || bracketed {
		list := []string{}
		for _, s := range append(subs, rails...) {
			if s != "" {
				list = append(list, s)
			}
		}
		p.subscriptions = &list
	}
	if v, ok := values["disabled"]; ok && len(v) > 0 {
		b, err := strconv.ParseBool(v[len(v)-1])
		if err != nil {
			return p, invalidParam("disabled must be true or false")
		}
		p.disabled = &b
	}
	return p, nil
}

// validate checks the values and normalises subscriptions (duplicates dropped).
func (p *webhookParams) validate() *apiError {
	if p.webhookURL != nil {
		u, err := url.Parse(*p.webhookURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Hostname() == "" {
			return invalidParam("webhook_url must be an absolute http or https URL")
		}
	}
	if p.subscriptions != nil {
		list := []string{}
		for _, t := range *p.subscriptions {
			if !isEventType(t) {
				return invalidParam(fmt.Sprintf("subscriptions: %s is not a supported webhook event", quoteShort(t)))
			}
			if !slices.Contains(list, t) {
				list = append(list, t)
			}
		}
		p.subscriptions = &list
	}
	return nil
}

// quoteShort quotes client input for an error message, cut to a sane length.
func quoteShort(s string) string {
	const limit = 64
	if len(s) > limit {
		s = s[:limit] + "…"
	}
	return strconv.Quote(s)
}

// apiError is an error answer. Affinity does not document its error bodies,
// so the simulator varies them the way real APIs of its kind do and clients
// must parse defensively:
//
//	401                          text/plain "Unauthorized"
//	404                          {"message":"Not found"}
//	400, 403, 405, 413, 415, 422, 429  {"errors":[{"code":"…","message":"…"}]}
type apiError struct {
	status int
	code   string
	msg    string
}

func (e *apiError) write(w http.ResponseWriter) { writeErrors(w, e.status, e.code, e.msg) }

func invalidParam(msg string) *apiError {
	return &apiError{status: http.StatusUnprocessableEntity, code: "invalid_params", msg: msg}
}

type errorItem struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func writeErrors(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string][]errorItem{"errors": {{Code: code, Message: msg}}})
}

func writeNotFound(w http.ResponseWriter) {
	writeJSON(w, http.StatusNotFound, map[string]string{"message": "Not found"})
}

func writeUnauthorized(w http.ResponseWriter) {
	w.Header().Set("WWW-Authenticate", `Basic realm="Affinity API"`)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusUnauthorized)
	io.WriteString(w, "Unauthorized")
}

func methodNotAllowed(w http.ResponseWriter, allow string) {
	w.Header().Set("Allow", allow)
	writeErrors(w, http.StatusMethodNotAllowed, "method_not_allowed", "method not allowed; use "+allow)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		// Only the simulator's own types are encoded here; this cannot happen.
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

// logRequest logs one line per API call: method, path (which holds at most a
// subscription id), status and user id. Never the body, query or headers.
func (s *Server) logRequest(r *http.Request, status int, userID int64) {
	s.cfg.Logger.Info("affinity sim: api request",
		"method", r.Method, "path", r.URL.Path, "status", status, "user", userID)
}
