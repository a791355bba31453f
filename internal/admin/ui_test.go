package admin_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/crmhook/crmhook"
	"github.com/crmhook/crmhook/internal/admin"
	"github.com/crmhook/crmhook/store/sqlite"
)

// The console, over HTTP against a real SQLite store: sign-in, sessions,
// CSRF, headers, every page, every action, and what the log says of them.

const consoleToken = "console-test-token-0123456789abcdef"

// syncBuffer collects log lines from the handlers' goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}
func (b *syncBuffer) String() string { b.mu.Lock(); defer b.mu.Unlock(); return b.b.String() }

// storeReleaser releases into the store, as the receiver does.
type storeReleaser struct{ st crmhook.Store }

func (r storeReleaser) Release(ctx context.Context, id int64) (crmhook.InsertResult, error) {
	return r.st.ReleaseRejection(ctx, id, []string{"svc"}, time.Now().Add(time.Hour))
}

type consoleEnv struct {
	t      *testing.T
	st     *sqlite.Store
	srv    *httptest.Server
	logs   *syncBuffer
	notify chan struct{}
	now    time.Time
	mu     sync.Mutex
}

func (e *consoleEnv) clock() time.Time { e.mu.Lock(); defer e.mu.Unlock(); return e.now }
func (e *consoleEnv) advance(d time.Duration) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.now = e.now.Add(d)
}

func newConsole(t *testing.T, st crmhook.Store) *consoleEnv {
	t.Helper()
	sq, _ := st.(*sqlite.Store)
	e := &consoleEnv{t: t, st: sq, logs: &syncBuffer{}, notify: make(chan struct{}, 100), now: time.Now()}
	m := &admin.Server{
		Store: st, Releaser: storeReleaser{st}, Sinks: []string{"svc", "audit"}, Token: consoleToken,
		Now: e.clock, Logger: slog.New(slog.NewJSONHandler(e.logs, nil)).With("component", "admin"),
		Notify: func() { e.notify <- struct{}{} }, LoginDelay: 300 * time.Millisecond,
	}
	if cs, ok := st.(crmhook.ControlStore); ok {
		m.Control = cs
	}
	e.srv = httptest.NewServer(m.Handler())
	t.Cleanup(e.srv.Close)
	return e
}

// browser is a cookie-keeping client that does not follow redirects.
type browser struct {
	e *consoleEnv
	c *http.Client
}

func (e *consoleEnv) browser() *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{e: e, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

type answer struct {
	status int
	header http.Header
	body   string
}

func (b *browser) do(method, path string, form url.Values, hdr ...string) answer {
	b.e.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, b.e.srv.URL+path, body)
	if err != nil {
		b.e.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := b.c.Do(req)
	if err != nil {
		b.e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	return answer{res.StatusCode, res.Header, string(raw)}
}

func (b *browser) get(path string) answer { b.e.t.Helper(); return b.do("GET", path, nil) }

func (b *browser) post(path string, form url.Values) answer {
	b.e.t.Helper()
	return b.do("POST", path, form)
}

func (b *browser) signIn() {
	b.e.t.Helper()
	a := b.post("/ui/login", url.Values{"token": {consoleToken}, "next": {"/ui/"}})
	if a.status != http.StatusSeeOther || a.header.Get("Location") != "/ui/" {
		b.e.t.Fatalf("sign-in: %d to %q", a.status, a.header.Get("Location"))
	}
}

var csrfRe = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrf is the session's token, from a page's forms.
func (b *browser) csrf() string {
	b.e.t.Helper()
	m := csrfRe.FindStringSubmatch(b.get("/ui/").body)
	if m == nil {
		b.e.t.Fatal("no CSRF token on the overview")
	}
	return m[1]
}

func openConsoleStore(t *testing.T) *sqlite.Store { t.Helper(); return openStore(t) }

// seed stores events: n for source aff to svc (delivered), one dead to svc
// (and delivered to audit), one pending, and one rejection.
type seeded struct {
	delivered []string
	dead      string
	deadKey   string
	pending   string
	rejection int64
}

func seed(t *testing.T, st *sqlite.Store, n int) seeded {
	t.Helper()
	ctx := t.Context()
	var s seeded
	ins := func(source, typ string, sinks ...string) crmhook.NewEvent {
		ne := crmhook.NewEvent{Event: crmhook.Event{ID: crmhook.NewEventID(), Source: source, Provider: crmhook.ProviderAffinity, Type: typ,
			DedupeKey: source + ":" + crmhook.NewEventID(), ReceivedAt: time.Now(),
			Payload: json.RawMessage(`{"type":"` + typ + `","body":{"first_name":"Ada","note":"<script>alert(1)</script>"}}`)},
			Sinks: sinks, DedupeUntil: time.Now().Add(time.Hour)}
		if _, err := st.Insert(ctx, ne); err != nil {
			t.Fatal(err)
		}
		return ne
	}
	for i := range n {
		ne := ins("aff", []string{"person.created", "organization.updated"}[i%2], "svc")
		s.delivered = append(s.delivered, ne.Event.ID)
	}
	dead := ins("attio", "record.created", "svc", "audit")
	s.dead, s.deadKey = dead.Event.ID, dead.Event.DedupeKey
	cs, err := st.Claim(ctx, crmhook.ClaimParams{Owner: "t", Limit: 1000, Lease: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		if c.Delivery.EventID == s.dead && c.Delivery.Sink == "svc" {
			err = st.Kill(ctx, c, "HTTP 410 Gone")
		} else {
			err = st.Complete(ctx, c)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	s.pending = ins("aff", "person.deleted", "svc").Event.ID
	rid, err := st.Reject(ctx, crmhook.Rejection{Event: crmhook.Event{Source: "aff", Provider: crmhook.ProviderAffinity, Type: "person.updated",
		DedupeKey: "aff:old", ReceivedAt: time.Now(), OccurredAt: time.Now().Add(-13 * time.Hour), Payload: json.RawMessage(`{"old":true}`)},
		Reason: "sent_at is 13h0m0s old; the window is 12h0m0s"})
	if err != nil {
		t.Fatal(err)
	}
	s.rejection = rid
	return s
}

var securityHeaders = map[string]string{
	"Content-Security-Policy": "default-src 'self'",
	"X-Frame-Options":         "DENY",
	"X-Content-Type-Options":  "nosniff",
	"Referrer-Policy":         "no-referrer",
	"Cache-Control":           "no-store",
}

func checkHeaders(t *testing.T, what string, a answer) {
	t.Helper()
	for k, v := range securityHeaders {
		if got := a.header.Get(k); !strings.Contains(got, v) {
			t.Errorf("%s: %s = %q, want %q", what, k, got, v)
		}
	}
	if csp := a.header.Get("Content-Security-Policy"); strings.Contains(csp, "unsafe-inline") || !strings.Contains(csp, "script-src 'self'") {
		t.Errorf("%s: CSP %q allows inline script or has no script-src", what, csp)
	}
}

func TestConsoleSignInSessionsAndHeaders(t *testing.T) {
	e := newConsole(t, openConsoleStore(t))
	b := e.browser()

	// Without a session: pages go to the sign-in page, and back after it.
	a := b.get("/ui/events?state=dead")
	if a.status != http.StatusSeeOther || a.header.Get("Location") != "/ui/login?next="+url.QueryEscape("/ui/events?state=dead") {
		t.Fatalf("page without a session: %d to %q", a.status, a.header.Get("Location"))
	}
	checkHeaders(t, "redirect to sign-in", a)
	if a := b.get("/ui"); a.status != http.StatusSeeOther || a.header.Get("Location") != "/ui/" {
		t.Errorf("/ui: %d to %q", a.status, a.header.Get("Location"))
	}
	login := b.get("/ui/login")
	if login.status != 200 || !strings.Contains(login.body, `type="password"`) {
		t.Fatalf("sign-in page: %d", login.status)
	}
	checkHeaders(t, "sign-in page", login)
	if strings.Contains(login.body, "<script>") || regexp.MustCompile(`<script[^>]*>[^<]`).MatchString(login.body) || strings.Contains(login.body, "style=") {
		t.Errorf("sign-in page has inline script or style")
	}

	// Wrong tokens: slow, and answered identically.
	var bodies []string
	for _, tok := range []string{"", "nope", consoleToken + "x", strings.Repeat("a", 5000)} {
		start := time.Now()
		a := b.post("/ui/login", url.Values{"token": {tok}, "next": {"/ui/"}})
		if took := time.Since(start); took < 300*time.Millisecond {
			t.Errorf("wrong token %q answered in %v, before the fixed delay", tok[:min(len(tok), 10)], took)
		}
		if a.status != http.StatusUnauthorized || a.header.Get("Set-Cookie") != "" {
			t.Errorf("wrong token: %d, cookie %q", a.status, a.header.Get("Set-Cookie"))
		}
		bodies = append(bodies, a.body)
	}
	for _, body := range bodies[1:] {
		if body != bodies[0] {
			t.Errorf("wrong tokens are answered differently")
		}
	}
	if !strings.Contains(bodies[0], "That token is not right") {
		t.Errorf("wrong token: no message")
	}
	// Wrong tokens wait their turn: guesses from many connections go no
	// faster than one a delay.
	start := time.Now()
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			if a := e.browser().post("/ui/login", url.Values{"token": {"guess"}}); a.status != http.StatusUnauthorized {
				t.Errorf("concurrent wrong token: %d", a.status)
			}
		})
	}
	wg.Wait()
	if took := time.Since(start); took < 900*time.Millisecond {
		t.Errorf("3 concurrent wrong tokens answered within %v: not one delay each", took)
	}

	// The right token: a session cookie, HttpOnly and SameSite=Strict.
	a = b.post("/ui/login", url.Values{"token": {consoleToken}, "next": {"/ui/dead"}})
	if a.status != http.StatusSeeOther || a.header.Get("Location") != "/ui/dead" {
		t.Fatalf("sign-in: %d to %q", a.status, a.header.Get("Location"))
	}
	cookie := a.header.Get("Set-Cookie")
	for _, want := range []string{"crmhook_console=", "Path=/ui", "HttpOnly", "SameSite=Strict", "Max-Age=43200"} {
		if !strings.Contains(cookie, want) {
			t.Errorf("session cookie %q lacks %s", cookie, want)
		}
	}
	if a := b.post("/ui/login", url.Values{"token": {consoleToken}, "next": {"https://evil.example/"}}); a.header.Get("Location") != "/ui/" {
		t.Errorf("sign-in with a foreign next goes to %q, want /ui/", a.header.Get("Location"))
	}

	// Every page, with its headers.
	for _, p := range []string{"/ui/", "/ui/events", "/ui/dead", "/ui/rejections", "/ui/subscriptions"} {
		a := b.get(p)
		if a.status != 200 || !strings.Contains(a.body, "Sign out") {
			t.Errorf("%s: %d", p, a.status)
		}
		checkHeaders(t, p, a)
		if regexp.MustCompile(`<script[^>]*>[^<]|\son[a-z]+="|style="`).MatchString(a.body) {
			t.Errorf("%s has inline script, an event handler attribute or a style attribute", p)
		}
	}
	if a := b.get("/ui/nope"); a.status != 404 {
		t.Errorf("unknown page: %d", a.status)
	} else {
		checkHeaders(t, "404", a)
	}
	css := b.get("/ui/static/ui.css")
	if css.status != 200 || !strings.HasPrefix(css.header.Get("Content-Type"), "text/css") || css.header.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("stylesheet: %d %q", css.status, css.header.Get("Content-Type"))
	}

	// Sign-out needs the CSRF token, and ends the session.
	csrf := b.csrf()
	if a := b.post("/ui/logout", url.Values{}); a.status != http.StatusForbidden {
		t.Errorf("sign-out without the CSRF token: %d, want 403", a.status)
	}
	if a := b.post("/ui/logout", url.Values{"csrf": {csrf}}); a.status != http.StatusSeeOther || a.header.Get("Location") != "/ui/login" {
		t.Errorf("sign-out: %d to %q", a.status, a.header.Get("Location"))
	}
	if a := b.get("/ui/"); a.status != http.StatusSeeOther {
		t.Errorf("after sign-out: %d, want a redirect to sign in", a.status)
	}
	if !strings.Contains(e.logs.String(), `"component":"admin/ui"`) || !strings.Contains(e.logs.String(), `"action":"sign-out"`) {
		t.Errorf("sign-in and sign-out are not logged with component admin/ui:\n%s", e.logs.String())
	}
	if strings.Contains(e.logs.String(), consoleToken) {
		t.Errorf("the token is in the log")
	}
}

func TestConsoleSessionExpires(t *testing.T) {
	e := newConsole(t, openConsoleStore(t))
	b := e.browser()
	b.signIn()
	if a := b.get("/ui/"); a.status != 200 {
		t.Fatalf("signed in: %d", a.status)
	}
	e.advance(admin.DefaultSessionTTL + time.Second)
	if a := b.get("/ui/"); a.status != http.StatusSeeOther {
		t.Errorf("after %v: %d, want a redirect to sign in", admin.DefaultSessionTTL, a.status)
	}
}

func TestConsoleRefusesForgedPosts(t *testing.T) {
	st := openConsoleStore(t)
	sd := seed(t, st, 1)
	e := newConsole(t, st)
	anon := e.browser()
	if a := anon.post("/ui/rejections/1/release", url.Values{"csrf": {"x"}}); a.status != http.StatusUnauthorized {
		t.Errorf("POST without a session: %d, want 401", a.status)
	}
	b := e.browser()
	b.signIn()
	csrf := b.csrf()
	path := fmt.Sprintf("/ui/rejections/%d/release", sd.rejection)
	if a := b.post(path, url.Values{}); a.status != http.StatusForbidden {
		t.Errorf("POST without the CSRF token: %d, want 403", a.status)
	}
	if a := b.post(path, url.Values{"csrf": {csrf + "x"}}); a.status != http.StatusForbidden {
		t.Errorf("POST with a wrong CSRF token: %d, want 403", a.status)
	}
	other := e.browser()
	other.signIn()
	if a := other.post(path, url.Values{"csrf": {csrf}}); a.status != http.StatusForbidden {
		t.Errorf("POST with another session's CSRF token: %d, want 403", a.status)
	}
	if a := b.do("POST", path, url.Values{"csrf": {csrf}}, "Sec-Fetch-Site", "cross-site", "Origin", "https://evil.example"); a.status != http.StatusForbidden {
		t.Errorf("cross-site POST with the token: %d, want 403", a.status)
	}
	if rs, _ := st.ListRejections(t.Context(), crmhook.RejectionFilter{ID: sd.rejection}); len(rs) != 1 || !rs[0].ReleasedAt.IsZero() {
		t.Fatalf("a refused POST released the rejection")
	}
	if a := b.post(path, url.Values{"csrf": {csrf}}); a.status != http.StatusSeeOther {
		t.Errorf("POST with the token: %d, want 303", a.status)
	}
}

func TestConsolePagesShowTheStore(t *testing.T) {
	st := openConsoleStore(t)
	sd := seed(t, st, 3)
	now := time.Now()
	if err := st.PutSubscriptionState(t.Context(), crmhook.SubscriptionState{Source: "aff", SubscriptionID: "1001", Status: "disabled", LastCheckedAt: now}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.RecordGap(t.Context(), crmhook.Gap{Source: "aff", SubscriptionID: "1001", From: now.Add(-90 * time.Minute), To: now}); err != nil {
		t.Fatal(err)
	}
	e := newConsole(t, st)
	b := e.browser()
	b.signIn()

	ov := b.get("/ui/").body
	for _, want := range []string{"<svg", `class="line-delivered"`, "Last hour", ">svc<", ">audit<", "1001", "badge-sub-disabled", "1 h 30 min lost"} {
		if !strings.Contains(ov, want) {
			t.Errorf("overview lacks %q", want)
		}
	}

	// Events: newest first, filters, paging by "Older →".
	ev := b.get("/ui/events").body
	if !strings.Contains(ev, sd.pending) || !strings.Contains(ev, sd.dead) || strings.Index(ev, sd.pending) > strings.Index(ev, sd.dead) {
		t.Errorf("events page does not list the newest first")
	}
	dead := b.get("/ui/events?state=dead").body
	if !strings.Contains(dead, sd.dead) || strings.Contains(dead, sd.pending) || strings.Contains(dead, sd.delivered[0]) {
		t.Errorf("state=dead lists the wrong events")
	}
	typ := b.get("/ui/events?type=" + url.QueryEscape("person.*") + "&source=aff").body
	if !strings.Contains(typ, sd.pending) || !strings.Contains(typ, sd.delivered[0]) || strings.Contains(typ, sd.delivered[1]) {
		t.Errorf("type=person.* lists the wrong events")
	}
	if a := b.get("/ui/events?state=bogus"); a.status != 400 {
		t.Errorf("state=bogus: %d", a.status)
	}
	if a := b.get("/ui/events?since=yesterday"); a.status != 400 || !strings.Contains(a.body, "Since") {
		t.Errorf("since=yesterday: %d", a.status)
	}

	// Search: by id and by dedupe key, straight to the event.
	for _, q := range []string{sd.dead, sd.deadKey} {
		a := b.get("/ui/events?q=" + url.QueryEscape(q))
		if a.status != http.StatusSeeOther || a.header.Get("Location") != "/ui/events/"+sd.dead {
			t.Errorf("search %q: %d to %q", q, a.status, a.header.Get("Location"))
		}
	}
	if a := b.get("/ui/events?q=nothing-like-it"); a.status != 200 || !strings.Contains(a.body, "No event has the id or the dedupe key") {
		t.Errorf("search for nothing: %d", a.status)
	}

	// An event: metadata, deliveries, the payload escaped and behind a click.
	page := b.get("/ui/events/" + sd.dead).body
	for _, want := range []string{sd.deadKey, "HTTP 410 Gone", "badge-dead", "badge-delivered", "<details", "&lt;script&gt;alert(1)&lt;/script&gt;", "Replay to all sinks"} {
		if !strings.Contains(page, want) {
			t.Errorf("event page lacks %q", want)
		}
	}
	if strings.Contains(page, "<script>alert") || strings.Contains(page, "<details open") {
		t.Errorf("event page shows the payload unescaped or open")
	}
	if a := b.get("/ui/events/no-such-event"); a.status != 404 {
		t.Errorf("unknown event: %d", a.status)
	}

	dl := b.get("/ui/dead").body
	if !strings.Contains(dl, `name="delivery"`) || !strings.Contains(dl, "HTTP 410 Gone") || !strings.Contains(dl, "Replay selected") {
		t.Errorf("dead letters page lacks its dead letter")
	}
	rj := b.get("/ui/rejections").body
	if !strings.Contains(rj, "13h0m0s old") || !strings.Contains(rj, fmt.Sprintf("/ui/rejections/%d/release", sd.rejection)) {
		t.Errorf("rejections page lacks the rejection")
	}
	sub := b.get("/ui/subscriptions").body
	if !strings.Contains(sub, "1001") || !strings.Contains(sub, "1 h 30 min") {
		t.Errorf("subscriptions page lacks the subscription or its gap")
	}
}

func TestConsolePagingFollowsTheCursor(t *testing.T) {
	st := openConsoleStore(t)
	sd := seed(t, st, 120)
	e := newConsole(t, st)
	b := e.browser()
	b.signIn()
	seen := map[string]bool{}
	link := regexp.MustCompile(`href="(/ui/events\?[^"]*before=[^"]+)" rel="next"`)
	ids := regexp.MustCompile(`href="/ui/events/([0-9a-f-]{36})" title`)
	path := "/ui/events?source=aff"
	for pages := 0; path != ""; pages++ {
		if pages > 5 {
			t.Fatal("more pages than events")
		}
		body := b.get(path).body
		for _, m := range ids.FindAllStringSubmatch(body, -1) {
			if seen[m[1]] {
				t.Errorf("event %s listed twice", m[1])
			}
			seen[m[1]] = true
		}
		path = ""
		if m := link.FindStringSubmatch(body); m != nil {
			path = strings.ReplaceAll(m[1], "&amp;", "&")
		}
	}
	if len(seen) != 121 || !seen[sd.pending] || !seen[sd.delivered[0]] {
		t.Errorf("paging listed %d events of source aff, want 121", len(seen))
	}
}

func TestConsoleActionsShareTheAPIsCode(t *testing.T) {
	st := openConsoleStore(t)
	sd := seed(t, st, 2)
	e := newConsole(t, st)
	b := e.browser()
	b.signIn()
	csrf := b.csrf()
	ctx := t.Context()
	state := func(id, sink string) crmhook.DeliveryState {
		_, ds, err := st.GetEvent(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range ds {
			if d.Sink == sink {
				return d.State
			}
		}
		return ""
	}

	// Replay of an event to one sink; an unknown sink is refused as the API refuses it.
	a := b.post("/ui/events/"+sd.delivered[0]+"/replay", url.Values{"csrf": {csrf}, "sink": {"nope"}})
	if a.status != http.StatusSeeOther || !strings.Contains(b.get("/ui/events/"+sd.delivered[0]).body, "no sink is named &#34;nope&#34;") {
		t.Errorf("replay to an unknown sink: %d, not explained", a.status)
	}
	a = b.post("/ui/events/"+sd.delivered[0]+"/replay", url.Values{"csrf": {csrf}, "sink": {"svc"}})
	if a.status != http.StatusSeeOther || a.header.Get("Location") != "/ui/events/"+sd.delivered[0] {
		t.Fatalf("replay an event: %d to %q", a.status, a.header.Get("Location"))
	}
	if got := state(sd.delivered[0], "svc"); got != crmhook.StatePending {
		t.Errorf("replayed delivery is %s, want pending", got)
	}
	if page := b.get(a.header.Get("Location")).body; !strings.Contains(page, "Replayed 1 delivery to svc") {
		t.Errorf("the event page does not say what the replay did")
	}
	select {
	case <-e.notify:
	default:
		t.Errorf("a replay did not wake the dispatcher")
	}

	// Dead letters: the selected ones, in one POST.
	dl, err := st.ListDeliveries(ctx, crmhook.DeliveryFilter{State: crmhook.StateDead})
	if err != nil || len(dl) != 1 {
		t.Fatalf("dead letters: %v %v", dl, err)
	}
	if a := b.post("/ui/dead/replay", url.Values{"csrf": {csrf}, "sink": {"svc"}}); a.status != http.StatusSeeOther ||
		!strings.Contains(b.get(a.header.Get("Location")).body, "Nothing selected") {
		t.Errorf("replay of nothing selected: %d", a.status)
	}
	a = b.post("/ui/dead/replay", url.Values{"csrf": {csrf}, "sink": {"svc"}, "delivery": {fmt.Sprint(dl[0].ID)}})
	if a.status != http.StatusSeeOther || state(sd.dead, "svc") != crmhook.StatePending || state(sd.dead, "audit") != crmhook.StateDelivered {
		t.Errorf("replay of a selected dead letter: %d; svc %s, audit %s", a.status, state(sd.dead, "svc"), state(sd.dead, "audit"))
	}

	// Release of a rejection, then a second time: a conflict, explained.
	a = b.post(fmt.Sprintf("/ui/rejections/%d/release", sd.rejection), url.Values{"csrf": {csrf}})
	if a.status != http.StatusSeeOther || !strings.Contains(b.get("/ui/rejections").body, "Released rejection") {
		t.Errorf("release: %d", a.status)
	}
	a = b.post(fmt.Sprintf("/ui/rejections/%d/release", sd.rejection), url.Values{"csrf": {csrf}})
	if a.status != http.StatusSeeOther || !strings.Contains(b.get("/ui/rejections").body, "already released") {
		t.Errorf("second release: %d", a.status)
	}

	// The log: each action once, with component admin/ui, ids and counts, no payload.
	logs := e.logs.String()
	for _, want := range []string{
		`"component":"admin/ui","action":"replay","count":1,"state":"","sink":"svc","source":"","event_id":"` + sd.delivered[0] + `"`,
		`"component":"admin/ui","action":"replay","count":1,"state":"dead","sink":"svc","source":"","event_id":"","delivery_ids":[` + fmt.Sprint(dl[0].ID) + `]`,
		fmt.Sprintf(`"component":"admin/ui","action":"release","rejection_id":%d`, sd.rejection),
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %s:\n%s", want, logs)
		}
	}
	if strings.Contains(logs, "Ada") || strings.Contains(logs, "alert(1)") {
		t.Errorf("a payload reached the log")
	}

	// The API replays through the same code: the same refusal, ids too.
	var out map[string]any
	if code := apiCall(t, e, "POST", "/api/replay", `{"state":"pending","sink":"svc"}`, &out); code != 400 {
		t.Errorf("API replay of pending: %d", code)
	}
	if code := apiCall(t, e, "POST", "/api/replay", `{"delivery_ids":[`+fmt.Sprint(dl[0].ID)+`]}`, &out); code != 200 || out["replayed"] != float64(0) {
		t.Errorf("API replay by id of a pending delivery: %d %v", code, out)
	}
}

func apiCall(t *testing.T, e *consoleEnv, method, path, body string, out any) int {
	t.Helper()
	req, _ := http.NewRequest(method, e.srv.URL+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+consoleToken)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	_ = json.NewDecoder(res.Body).Decode(out)
	return res.StatusCode
}

// A store that lost its disk: the pages say so without its internals. It
// offers only crmhook.Store's methods (no console reads), as a store
// wrapped by other code does.
type failingStore struct{ crmhook.Store }

func (failingStore) Stats(context.Context) (crmhook.Stats, error) {
	return crmhook.Stats{}, fmt.Errorf("sqlite: stats: disk I/O error at /var/lib/crmhook/crmhook.db: %w", crmhook.ErrUnavailable)
}

func TestConsoleStoreFailureIsA503WithoutInternals(t *testing.T) {
	e := newConsole(t, failingStore{openConsoleStore(t)})
	b := e.browser()
	b.signIn()
	a := b.get("/ui/")
	if a.status != http.StatusServiceUnavailable || strings.Contains(a.body, "disk I/O") || strings.Contains(a.body, "/var/lib") {
		t.Errorf("overview on a failing store: %d %s", a.status, a.body)
	}
	// A wrapped store offers no console reads: the events page still
	// lists, through ListEvents.
	if a := b.get("/ui/events"); a.status != 200 || !strings.Contains(a.body, "does not offer the console") {
		t.Errorf("events on a store without console reads: %d", a.status)
	}
}
