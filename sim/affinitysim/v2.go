package affinitysim

import (
	"bytes"
	"cmp"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/crmhook/crmhook/sim/internal/simhttp"
)

// API v2 webhooks (/v2/webhooks, beta in Affinity's API version 2026-07-15).
//
// One store serves both APIs: a v2 webhook is the same object as a V1
// subscription, with the same id; v2 "url" is V1 "webhook_url", the
// subscriptions are shared, v2 status "disabled" is V1 disabled: true, and
// v2 creator {id} is V1 created_by. A subscription created, changed,
// disabled (by either API or after failed deliveries) or deleted through one
// API is seen so through the other, and V1's limit of three subscriptions
// per instance counts both. Affinity does not document how its two webhook
// APIs relate; sharing one set is the simulator's assumption.
//
// What v2 adds over V1 here: bearer authentication only; {"errors":[{code,
// message, param?}]} error bodies; cursor paging; a 201 on create and a 204
// with no body on update and delete; the caller sees (and so may change)
// only the webhooks they created, admins ("allowed to manage all webhooks")
// every one; URLs unique within the instance and without credentials; a
// request body with unknown keys is refused.

// v2Status is the v2 form of V1's disabled flag.
func v2Status(disabled bool) string {
	if disabled {
		return "disabled"
	}
	return "active"
}

// webhookV2 is a webhook as API v2 returns it.
type webhookV2 struct {
	ID            int64       `json:"id"`
	URL           string      `json:"url"`
	Subscriptions []string    `json:"subscriptions"`
	Status        string      `json:"status"`
	Creator       *creatorRef `json:"creator"`
	CreatedAt     time.Time   `json:"createdAt"`
	UpdatedAt     *time.Time  `json:"updatedAt"`
}

type creatorRef struct {
	ID int64 `json:"id"`
}

// v2View renders a subscription for API v2.
func (wh *Webhook) v2View() webhookV2 {
	out := webhookV2{
		ID:            wh.ID,
		URL:           wh.WebhookURL,
		Subscriptions: append([]string{}, wh.Subscriptions...),
		Status:        v2Status(wh.Disabled),
		CreatedAt:     wh.createdAt.UTC().Truncate(time.Millisecond),
	}
	if wh.CreatedBy != 0 {
		out.Creator = &creatorRef{ID: wh.CreatedBy}
	}
	if !wh.updatedAt.IsZero() {
		t := wh.updatedAt.UTC().Truncate(time.Millisecond)
		out.UpdatedAt = &t
	}
	return out
}

// canManage reports whether user sees (and so may update and delete) wh
// through API v2: its creator, or an admin.
func canManage(user User, wh *Webhook) bool { return user.Admin || wh.CreatedBy == user.ID }

// The v2 error codes the simulator answers with.
const (
	v2BadRequest     = "bad-request"
	v2Validation     = "validation"
	v2NotFound       = "not-found"
	v2Authentication = "authentication"
	v2RateLimit      = "rate-limit"
	v2MethodNotAllow = "method-not-allowed"
)

type v2ErrorItem struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Param   string `json:"param,omitempty"`
}

// v2Error is an API v2 error answer.
type v2Error struct {
	status int
	item   v2ErrorItem
}

func (e *v2Error) write(w http.ResponseWriter) {
	writeJSON(w, e.status, map[string][]v2ErrorItem{"errors": {e.item}})
}

func v2Err(status int, code, param, msg string) *v2Error {
	return &v2Error{status: status, item: v2ErrorItem{Code: code, Message: msg, Param: param}}
}

// invalidV2 is a validation error on one property: 400 with its param.
func invalidV2(param, msg string) *v2Error {
	return v2Err(http.StatusBadRequest, v2Validation, param, msg)
}

func writeV2NotFound(w http.ResponseWriter) {
	v2Err(http.StatusNotFound, v2NotFound, "", "Not found").write(w)
}

// serveV2 authenticates (bearer only), spends the rate-limit budget V1 and
// v2 share, and routes an API v2 request.
func (s *Server) serveV2(w http.ResponseWriter, r *http.Request) {
	rec := simhttp.NewStatusRecorder(w)
	scheme, _, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	user, ok := User{}, false
	if strings.EqualFold(scheme, "Bearer") {
		user, ok = s.authenticate(r)
	}
	if !ok {
		msg := "Invalid or missing API key: send it as Authorization: Bearer <key>"
		if strings.EqualFold(scheme, "Basic") {
			msg = "API v2 accepts only bearer authentication: send the API key as Authorization: Bearer <key>"
		}
		rec.Header().Set("WWW-Authenticate", `Bearer realm="Affinity API"`)
		v2Err(http.StatusUnauthorized, v2Authentication, "", msg).write(rec)
		s.logRequest(r, rec.Status, 0)
		return
	}
	st := s.rl.take(user.ID, s.cfg.Now())
	st.setHeaders(rec.Header())
	if !st.allowed {
		v2Err(http.StatusTooManyRequests, v2RateLimit, "",
			"Rate limit exceeded. Retry after "+seconds(st.retryAfter)+" seconds.").write(rec)
	} else {
		s.routeV2(rec, r, user)
	}
	s.logRequest(r, rec.Status, user.ID)
}

func (s *Server) routeV2(w http.ResponseWriter, r *http.Request, user User) {
	const collection = "/v2/webhooks"
	p := r.URL.Path
	switch {
	case p == collection:
		switch r.Method {
		case http.MethodGet:
			s.listWebhooksV2(w, r, user)
		case http.MethodPost:
			s.createWebhookV2(w, r, user)
		default:
			methodNotAllowedV2(w, "GET, POST")
		}
	case strings.HasPrefix(p, collection+"/") && !strings.Contains(p[len(collection)+1:], "/"):
		id, err := strconv.ParseInt(p[len(collection)+1:], 10, 64)
		if err != nil || id <= 0 {
			invalidV2("webhookId", "webhookId must be a positive integer").write(w)
			return
		}
		switch r.Method {
		case http.MethodGet:
			s.getWebhookV2(w, user, id)
		case http.MethodPost:
			s.updateWebhookV2(w, r, user, id)
		case http.MethodDelete:
			s.deleteWebhookV2(w, user, id)
		default:
			methodNotAllowedV2(w, "GET, POST, DELETE")
		}
	default:
		writeV2NotFound(w)
	}
}

func methodNotAllowedV2(w http.ResponseWriter, allow string) {
	w.Header().Set("Allow", allow)
	v2Err(http.StatusMethodNotAllowed, v2MethodNotAllow, "", "method not allowed; use "+allow).write(w)
}

// visibleLocked returns subscription id if user may see it through v2.
func (s *Server) visibleLocked(user User, id int64) (*Webhook, bool) {
	wh, ok := s.webhooks[id]
	if !ok || !canManage(user, wh) {
		return nil, false
	}
	return wh, true
}

func (s *Server) getWebhookV2(w http.ResponseWriter, user User, id int64) {
	s.mu.Lock()
	wh, ok := s.visibleLocked(user, id)
	var out webhookV2
	if ok {
		out = wh.v2View()
	}
	s.mu.Unlock()
	if !ok {
		writeV2NotFound(w) // missing, or not the caller's: Affinity answers 404 to both
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// webhookV2Params are the fields of a v2 create or update body; nil means
// the field was not sent.
type webhookV2Params struct {
	url           *string
	subscriptions *[]string
	status        *string
}

// readV2Params reads a JSON object whose keys are all in allowed. Unknown
// keys, nulls and ill-typed values are validation errors on that property.
func readV2Params(w http.ResponseWriter, r *http.Request, allowed ...string) (webhookV2Params, *v2Error) {
	var p webhookV2Params
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, _ := mime.ParseMediaType(ct)
		if mt != "application/json" && !strings.HasSuffix(mt, "+json") {
			return p, v2Err(http.StatusUnsupportedMediaType, v2BadRequest, "", "Content-Type must be application/json")
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRequestBody))
	if err != nil {
		if bodyErr := bodyError(err, ""); bodyErr.status == http.StatusRequestEntityTooLarge {
			return p, v2Err(bodyErr.status, v2BadRequest, "", bodyErr.msg)
		}
		return p, v2Err(http.StatusBadRequest, v2BadRequest, "", "the request body could not be read")
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(bytes.TrimSpace(body), &fields); err != nil || fields == nil {
		return p, v2Err(http.StatusBadRequest, v2BadRequest, "", "the request body must be a JSON object")
	}
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if !slices.Contains(allowed, k) {
			return p, invalidV2(k, fmt.Sprintf("unknown property %s; allowed: %s", quoteShort(k), strings.Join(allowed, ", ")))
		}
		raw := fields[k]
		if string(raw) == "null" {
			return p, invalidV2(k, k+" must not be null")
		}
		switch k {
		case "url":
			var v string
			if json.Unmarshal(raw, &v) != nil {
				return p, invalidV2(k, "url must be a string")
			}
			p.url = &v
		case "subscriptions":
			var v []string
			if json.Unmarshal(raw, &v) != nil {
				return p, invalidV2(k, "subscriptions must be an array of event type strings")
			}
			p.subscriptions = &v
		case "status":
			var v string
			if json.Unmarshal(raw, &v) != nil || (v != "active" && v != "disabled") {
				return p, invalidV2(k, `status must be "active" or "disabled"`)
			}
			p.status = &v
		}
	}
	return p, nil
}

// validate checks the values and normalises subscriptions (duplicates
// dropped, order kept).
func (p *webhookV2Params) validate() *v2Error {
	if p.url != nil {
		if apiErr := checkV2URL(*p.url); apiErr != nil {
			return apiErr
		}
	}
	if p.subscriptions != nil {
		if len(*p.subscriptions) > 100 {
			return invalidV2("subscriptions", "at most 100 event types")
		}
		list := []string{}
		for _, t := range *p.subscriptions {
			if !isEventType(t) {
				return invalidV2("subscriptions", fmt.Sprintf("%s is not a supported webhook event", quoteShort(t)))
			}
			if !slices.Contains(list, t) {
				list = append(list, t)
			}
		}
		p.subscriptions = &list
	}
	return nil
}

// checkV2URL: an absolute http(s) URL with a host and no credentials.
// Messages never quote the URL: its path may hold a secret.
func checkV2URL(raw string) *v2Error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" {
		return invalidV2("url", "url must be an absolute http or https URL")
	}
	if u.User != nil {
		return invalidV2("url", "url must not contain embedded credentials")
	}
	return nil
}

// urlTakenLocked reports whether a subscription other than except uses rawURL.
func (s *Server) urlTakenLocked(rawURL string, except int64) bool {
	for id, wh := range s.webhooks {
		if id != except && wh.WebhookURL == rawURL {
			return true
		}
	}
	return false
}

func urlTaken() *v2Error {
	return invalidV2("url", "url is already used by another webhook in this organization")
}

func testDeliveryFailed(reason string) *v2Error {
	return invalidV2("url", "the test delivery to url failed: "+reason)
}

// checkCreateLocked is the state-dependent part of a create: the
// instance's subscription limit, then the URL's uniqueness.
func (s *Server) checkCreateLocked(rawURL string) *v2Error {
	if len(s.webhooks) >= s.cfg.MaxSubscriptions {
		return v2Err(http.StatusBadRequest, v2BadRequest, "",
			fmt.Sprintf("The organization has reached its webhook limit of %d; delete a webhook to create another", s.cfg.MaxSubscriptions))
	}
	if s.urlTakenLocked(rawURL, 0) {
		return urlTaken()
	}
	return nil
}

func (s *Server) createWebhookV2(w http.ResponseWriter, r *http.Request, user User) {
	params, apiErr := readV2Params(w, r, "subscriptions", "url")
	if apiErr == nil {
		switch {
		case params.url == nil:
			apiErr = invalidV2("url", "url is required")
		case params.subscriptions == nil:
			apiErr = invalidV2("subscriptions", "subscriptions is required ([] for every event type)")
		default:
			apiErr = params.validate()
		}
	}
	if apiErr != nil {
		apiErr.write(w)
		return
	}
	target := *params.url
	// Checked before the test delivery (no point calling the URL) and again
	// after: it runs unlocked, and another request may have won meanwhile.
	s.mu.Lock()
	apiErr = s.checkCreateLocked(target)
	s.mu.Unlock()
	if apiErr != nil {
		apiErr.write(w)
		return
	}
	if reason := s.probe(r.Context(), 0, target); reason != "" {
		testDeliveryFailed(reason).write(w)
		return
	}

	s.mu.Lock()
	if apiErr := s.checkCreateLocked(target); apiErr != nil {
		s.mu.Unlock()
		apiErr.write(w)
		return
	}
	wh := &Webhook{
		ID:            s.nextID,
		WebhookURL:    target,
		Subscriptions: *params.subscriptions,
		CreatedBy:     user.ID,
		createdAt:     s.cfg.Now(),
	}
	s.nextID++
	s.webhooks[wh.ID] = wh
	out := wh.v2View()
	s.mu.Unlock()

	s.cfg.Logger.Info("affinity sim: v2 webhook created",
		"id", out.ID, "created_by", user.ID, "event_types", len(out.Subscriptions))
	writeJSON(w, http.StatusCreated, out)
}

// updateWebhookV2 applies a partial update. A test delivery is made when the
// webhook ends up active and either its URL changes or it goes from
// disabled to active; if it fails nothing changes.
func (s *Server) updateWebhookV2(w http.ResponseWriter, r *http.Request, user User, id int64) {
	s.mu.Lock()
	wh, ok := s.visibleLocked(user, id)
	var cur Webhook
	if ok {
		cur = wh.clone()
	}
	s.mu.Unlock()
	if !ok {
		writeV2NotFound(w)
		return
	}
	params, apiErr := readV2Params(w, r, "status", "subscriptions", "url")
	if apiErr == nil {
		apiErr = params.validate()
	}
	if apiErr != nil {
		apiErr.write(w)
		return
	}

	target := cur.WebhookURL
	if params.url != nil {
		target = *params.url
	}
	disabled := cur.Disabled
	if params.status != nil {
		disabled = *params.status == "disabled"
	}
	urlChanged := target != cur.WebhookURL
	if urlChanged {
		s.mu.Lock()
		taken := s.urlTakenLocked(target, id)
		s.mu.Unlock()
		if taken {
			urlTaken().write(w)
			return
		}
	}
	enabling := cur.Disabled && !disabled
	if !disabled && (urlChanged || enabling) {
		if reason := s.probe(r.Context(), id, target); reason != "" {
			testDeliveryFailed(reason).write(w)
			return
		}
	}

	s.mu.Lock()
	wh, ok = s.visibleLocked(user, id)
	if !ok {
		s.mu.Unlock()
		writeV2NotFound(w)
		return
	}
	if urlChanged && s.urlTakenLocked(target, id) {
		s.mu.Unlock()
		urlTaken().write(w)
		return
	}
	changed := wh.WebhookURL != target || wh.Disabled != disabled ||
		(params.subscriptions != nil && !slices.Equal(wh.Subscriptions, *params.subscriptions))
	wh.WebhookURL = target
	wh.Disabled = disabled
	if params.subscriptions != nil {
		wh.Subscriptions = *params.subscriptions
	}
	if changed {
		wh.updatedAt = s.cfg.Now()
	}
	s.mu.Unlock()

	s.cfg.Logger.Info("affinity sim: v2 webhook updated",
		"id", id, "url_changed", urlChanged, "status", v2Status(disabled), "changed", changed)
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) deleteWebhookV2(w http.ResponseWriter, user User, id int64) {
	s.mu.Lock()
	_, ok := s.visibleLocked(user, id)
	if ok {
		delete(s.webhooks, id)
	}
	s.mu.Unlock()
	if !ok {
		writeV2NotFound(w)
		return
	}
	s.cfg.Logger.Info("affinity sim: v2 webhook deleted", "id", id, "deleted_by", user.ID)
	w.WriteHeader(http.StatusNoContent)
}

// listWebhooksV2 serves one page: the caller's webhooks (an admin's: all),
// filtered, ordered by id, cut by the cursor and limit.
func (s *Server) listWebhooksV2(w http.ResponseWriter, r *http.Request, user User) {
	q := r.URL.Query()
	limit := 100
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 100 {
			invalidV2("limit", "limit must be an integer from 1 to 100").write(w)
			return
		}
		limit = n
	}
	withTotal := false
	if v := q.Get("totalCount"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			invalidV2("totalCount", "totalCount must be true or false").write(w)
			return
		}
		withTotal = b
	}
	var match func(*Webhook) bool
	if v := q.Get("filter"); strings.TrimSpace(v) != "" {
		f, err := parseV2Filter(v)
		if err != nil {
			invalidV2("filter", "invalid filter: "+err.Error()).write(w)
			return
		}
		match = f
	}
	cur, apiErr := decodeV2Cursor(q.Get("cursor"))
	if apiErr != nil {
		apiErr.write(w)
		return
	}

	s.mu.Lock()
	var all []webhookV2
	for _, wh := range s.webhooks {
		if canManage(user, wh) && (match == nil || match(wh)) {
			all = append(all, wh.v2View())
		}
	}
	s.mu.Unlock()
	slices.SortFunc(all, func(a, b webhookV2) int { return cmp.Compare(a.ID, b.ID) })

	// The page: the first limit after the cursor's id, or the last limit
	// before it.
	var page []webhookV2
	switch cur.dir {
	case "before":
		i, _ := slices.BinarySearchFunc(all, cur.id, byID)
		page = all[max(0, i-limit):i]
	default:
		i, found := slices.BinarySearchFunc(all, cur.id, byID)
		if found {
			i++
		}
		page = all[i:min(len(all), i+limit)]
	}
	pagination := map[string]any{"nextUrl": nil, "prevUrl": nil}
	if len(page) > 0 {
		first, last := page[0].ID, page[len(page)-1].ID
		if all[len(all)-1].ID > last {
			pagination["nextUrl"] = pageURL(r, v2Cursor{dir: "after", id: last})
		}
		if all[0].ID < first {
			pagination["prevUrl"] = pageURL(r, v2Cursor{dir: "before", id: first})
		}
	}
	if withTotal {
		pagination["totalCount"] = len(all)
	}
	if page == nil {
		page = []webhookV2{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": page, "pagination": pagination})
}

func byID(wh webhookV2, id int64) int { return cmp.Compare(wh.ID, id) }

// v2Cursor is a position in the id order: the page after id, or before it.
// On the wire it is base64url("after:<id>") or base64url("before:<id>"),
// opaque to clients.
type v2Cursor struct {
	dir string // "after" (also the first page, id 0) or "before"
	id  int64
}

func (c v2Cursor) String() string {
	return base64.RawURLEncoding.EncodeToString([]byte(c.dir + ":" + strconv.FormatInt(c.id, 10)))
}

func decodeV2Cursor(raw string) (v2Cursor, *v2Error) {
	if raw == "" {
		return v2Cursor{dir: "after"}, nil
	}
	bad := invalidV2("cursor", "invalid cursor; use the nextUrl or prevUrl of a previous page")
	b, err := base64.RawURLEncoding.DecodeString(raw)
	if err != nil {
		return v2Cursor{}, bad
	}
	dir, num, ok := strings.Cut(string(b), ":")
	id, err := strconv.ParseInt(num, 10, 64)
	if !ok || err != nil || id < 0 || (dir != "after" && dir != "before") {
		return v2Cursor{}, bad
	}
	return v2Cursor{dir: dir, id: id}, nil
}

// pageURL is the absolute URL of another page: the request's own URL (host
// as the client addressed it) with the cursor replaced; limit, filter and
// totalCount carry over.
func pageURL(r *http.Request, c v2Cursor) string {
	q := r.URL.Query()
	q.Set("cursor", c.String())
	u := url.URL{Scheme: "http", Host: r.Host, Path: r.URL.Path, RawQuery: q.Encode()}
	if r.TLS != nil {
		u.Scheme = "https"
	}
	return u.String()
}

// parseV2Filter compiles the part of Affinity's filter language that the
// webhooks list supports: id with = and !=, createdAt and updatedAt with >, <, >=,
// <= against an RFC 3339 time, combined with & (binding tighter) and |,
// grouped with parentheses, negated with !. Spaces are insignificant; values
// may be double-quoted. A webhook never updated matches no updatedAt
// comparison.
func parseV2Filter(src string) (func(*Webhook) bool, error) {
	p := &filterParser{src: src}
	f, err := p.or()
	if err != nil {
		return nil, err
	}
	p.space()
	if p.pos < len(p.src) {
		return nil, fmt.Errorf("unexpected %s at offset %d", quoteShort(p.src[p.pos:]), p.pos)
	}
	return f, nil
}

type filterParser struct {
	src   string
	pos   int
	depth int
}

func (p *filterParser) space() {
	for p.pos < len(p.src) && unicode.IsSpace(rune(p.src[p.pos])) {
		p.pos++
	}
}

// eat consumes tok (after spaces) if it is next.
func (p *filterParser) eat(tok string) bool {
	p.space()
	if strings.HasPrefix(p.src[p.pos:], tok) {
		p.pos += len(tok)
		return true
	}
	return false
}

func (p *filterParser) or() (func(*Webhook) bool, error) {
	left, err := p.and()
	if err != nil {
		return nil, err
	}
	for p.eat("|") {
		right, err := p.and()
		if err != nil {
			return nil, err
		}
		l := left
		left = func(wh *Webhook) bool { return l(wh) || right(wh) }
	}
	return left, nil
}

func (p *filterParser) and() (func(*Webhook) bool, error) {
	left, err := p.unary()
	if err != nil {
		return nil, err
	}
	for p.eat("&") {
		right, err := p.unary()
		if err != nil {
			return nil, err
		}
		l := left
		left = func(wh *Webhook) bool { return l(wh) && right(wh) }
	}
	return left, nil
}

func (p *filterParser) unary() (func(*Webhook) bool, error) {
	if p.depth > 32 {
		return nil, fmt.Errorf("nested too deeply")
	}
	if p.eat("!") {
		p.depth++
		inner, err := p.unary()
		p.depth--
		if err != nil {
			return nil, err
		}
		return func(wh *Webhook) bool { return !inner(wh) }, nil
	}
	if p.eat("(") {
		p.depth++
		inner, err := p.or()
		p.depth--
		if err != nil {
			return nil, err
		}
		if !p.eat(")") {
			return nil, fmt.Errorf("missing ) at offset %d", p.pos)
		}
		return inner, nil
	}
	return p.condition()
}

func (p *filterParser) condition() (func(*Webhook) bool, error) {
	p.space()
	start := p.pos
	for p.pos < len(p.src) && (unicode.IsLetter(rune(p.src[p.pos])) || p.src[p.pos] == '_') {
		p.pos++
	}
	prop := p.src[start:p.pos]
	var op string
	for _, o := range []string{">=", "<=", "!=", "=", ">", "<"} {
		if p.eat(o) {
			op = o
			break
		}
	}
	if prop == "" || op == "" {
		return nil, fmt.Errorf("expected a condition such as id=1 at offset %d", start)
	}
	value, err := p.value()
	if err != nil {
		return nil, err
	}
	switch prop {
	case "id":
		if op != "=" && op != "!=" {
			return nil, fmt.Errorf("id supports = and !=")
		}
		id, err := strconv.ParseInt(value, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("id must be an integer, got %s", quoteShort(value))
		}
		return func(wh *Webhook) bool { return (wh.ID == id) == (op == "=") }, nil
	case "createdAt", "updatedAt":
		if op == "=" || op == "!=" {
			return nil, fmt.Errorf("%s supports >, <, >= and <=", prop)
		}
		t, err := time.Parse(time.RFC3339Nano, value)
		if err != nil {
			return nil, fmt.Errorf("%s needs an RFC 3339 time such as 2026-01-01T00:00:00Z, got %s", prop, quoteShort(value))
		}
		return func(wh *Webhook) bool {
			v := wh.createdAt
			if prop == "updatedAt" {
				v = wh.updatedAt
				if v.IsZero() {
					return false
				}
			}
			v = v.Truncate(time.Millisecond)
			switch op {
			case ">":
				return v.After(t)
			case "<":
				return v.Before(t)
			case ">=":
				return !v.Before(t)
			default: // "<="
				return !v.After(t)
			}
		}, nil
	}
	return nil, fmt.Errorf("unknown property %s (id, createdAt and updatedAt can be filtered)", quoteShort(prop))
}

// value reads a bare value (up to a space, &, | or )) or a double-quoted one
// with backslash escapes.
func (p *filterParser) value() (string, error) {
	p.space()
	if p.pos < len(p.src) && p.src[p.pos] == '"' {
		var b strings.Builder
		for p.pos++; p.pos < len(p.src); p.pos++ {
			c := p.src[p.pos]
			switch {
			case c == '\\' && p.pos+1 < len(p.src):
				p.pos++
				b.WriteByte(p.src[p.pos])
			case c == '"':
				p.pos++
				return b.String(), nil
			default:
				b.WriteByte(c)
			}
		}
		return "", fmt.Errorf("unterminated quoted value")
	}
	start := p.pos
	for p.pos < len(p.src) && !strings.ContainsRune(" \t\r\n&|()", rune(p.src[p.pos])) {
		p.pos++
	}
	if p.pos == start {
		return "", fmt.Errorf("missing value at offset %d", start)
	}
	return p.src[start:p.pos], nil
}
