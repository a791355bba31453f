package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/crmhook/crmhook"
	"github.com/crmhook/crmhook/internal/admin"
	"github.com/crmhook/crmhook/store/sqlite"
)

// TestConsoleInABrowser drives the admin console in headless Chromium
// against a real `crmhook serve` process on a real SQLite store: sign-in,
// an event arriving and opened, a dead letter replayed once its sink is
// back, a rejection released, a POST without the CSRF token refused, and
// the console absent from the public listener and closed without a
// session. With UPDATE_SCREENSHOTS=1 it saves docs/screenshots/overview.png
// and event.png.
//
// The browser is CHROMIUM_PATH, else /usr/bin/chromium, else chromium or
// chromium-browser on the PATH; without one the test is skipped, or fails
// when CI=true.
func TestConsoleInABrowser(t *testing.T) {
	browserPath := findChromium(t)
	dir := t.TempDir()
	now := time.Now()

	// A store with an hour of history (received, delivered, a short sink
	// outage that left dead letters) and the watchdog's view of two
	// subscriptions, so that the overview has something to draw.
	seedConsoleHistory(t, filepath.Join(dir, "crmhook.db"), now)

	sink := newSink(t)
	var goneKey atomic.Pointer[string] // the dedupe key the sink refuses for good (410)
	sink.setBehaviour(func(key string, _ int) reply {
		if k := goneKey.Load(); k != nil && *k == key {
			return reply{status: http.StatusGone, body: "gone"}
		}
		return reply{status: http.StatusOK}
	})
	cfgPath := filepath.Join(dir, "crmhook.yaml")
	if err := os.WriteFile(cfgPath, []byte(configYAML(cfgOpts{dataDir: dir, sinkURL: sink.srv.URL})), 0o600); err != nil {
		t.Fatal(err)
	}
	logs := &lockedBuffer{}
	p := startProc(t, cfgPath, logs)
	hookURL := p.hook + "/hooks/aff/" + pathSecret
	ui := p.admin + "/ui"

	// The console is not on the public listener, and closed without a session.
	plain := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }, Timeout: 10 * time.Second}
	for _, path := range []string{"/ui/", "/ui/login", "/ui/events", "/ui/static/ui.css"} {
		if code := statusOf(t, plain, "GET", p.hook+path, nil); code != http.StatusNotFound {
			t.Errorf("public listener GET %s: %d, want 404", path, code)
		}
	}
	if code := statusOf(t, plain, "POST", p.hook+"/ui/login", url.Values{"token": {adminToken}}); code != http.StatusNotFound {
		t.Errorf("public listener POST /ui/login: %d, want 404", code)
	}
	res, err := plain.Get(ui + "/events")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusSeeOther || !strings.HasPrefix(res.Header.Get("Location"), "/ui/login") {
		t.Errorf("GET /ui/events without a session: %d to %q, want a redirect to the sign-in page", res.StatusCode, res.Header.Get("Location"))
	}
	if code := statusOf(t, plain, "POST", ui+"/dead/replay", url.Values{"sink": {"hook"}, "all": {"1"}}); code != http.StatusUnauthorized {
		t.Errorf("POST /ui/dead/replay without a session: %d, want 401", code)
	}

	ctx := newBrowser(t, browserPath)
	step := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		if err := chromedp.Do(sctx, actions...); err != nil {
			t.Fatalf("%s: %v\n%s", what, err, pageText(ctx))
		}
	}
	load := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		resp, err := chromedp.RunResponse(sctx, actions...)
		if err != nil {
			t.Fatalf("%s: %v\n%s", what, err, pageText(ctx))
		}
		if resp.Status != http.StatusOK {
			t.Fatalf("%s: HTTP %d\n%s", what, resp.Status, pageText(ctx))
		}
	}

	// Sign in: the console sends the browser to its sign-in page; a wrong
	// token is refused, the right one opens the overview.
	step("open the console", chromedp.Navigate(ui+"/"), chromedp.WaitVisible(chromedp.ID("token")))
	if loc := location(t, ctx); !strings.Contains(loc, "/ui/login") {
		t.Fatalf("without a session the console shows %s, want the sign-in page", loc)
	}
	step("type a wrong token", chromedp.SendKeys(chromedp.ID("token"), "not-the-token"))
	resp, err := chromedp.RunResponse(ctx, chromedp.Submit(chromedp.ID("token")))
	if err != nil || resp.Status != http.StatusUnauthorized || !strings.Contains(pageText(ctx), "That token is not right") {
		t.Fatalf("wrong token: %v %v\n%s", resp, err, pageText(ctx))
	}
	step("type the token", chromedp.SendKeys(chromedp.ID("token"), adminToken))
	load("sign in", chromedp.Submit(chromedp.ID("token")))
	if text := pageText(ctx); !strings.Contains(text, "Overview") || !strings.Contains(text, "Last hour") {
		t.Fatalf("after sign-in:\n%s", text)
	}

	// An event arrives: posted to the public listener, listed on reload.
	body, key := affinityEvent(1, time.Now())
	if code, _ := post(http.DefaultClient, hookURL, body, nil); code != http.StatusOK {
		t.Fatalf("post an event: %d", code)
	}
	id := eventIDByKey(t, p.admin, key)
	load("events", chromedp.Navigate(ui+"/events"))
	if !exists(t, ctx, fmt.Sprintf(`a[href="/ui/events/%s"]`, id)) {
		t.Fatalf("the new event %s is not listed:\n%s", id, pageText(ctx))
	}

	// Open it; its delivery reaches the sink; the payload shows on a click.
	load("open the event", chromedp.Click(chromedp.CSS(fmt.Sprintf(`a.strong[href="/ui/events/%s"]`, id))))
	sink.waitDelivered(t, []string{key}, 10*time.Second)
	load("reload the event", chromedp.Reload())
	text := pageText(ctx)
	for _, want := range []string{"person.created", key, "hook", "delivered"} {
		if !strings.Contains(text, want) {
			t.Errorf("event page lacks %q:\n%s", want, text)
		}
	}
	if visible(t, ctx, ".payload pre") {
		t.Errorf("the payload shows before a click")
	}
	step("show the payload", chromedp.Click(chromedp.CSS(".payload summary")), chromedp.WaitVisible(chromedp.CSS(".payload pre")))
	if !strings.Contains(pageText(ctx), `"primary_email": "`+piiEmail+`"`) {
		t.Errorf("the payload is not shown pretty-printed:\n%s", pageText(ctx))
	}
	screenshot(t, ctx, "event.png")

	// A dead letter: the sink answers 410 for this event, so its delivery
	// is dead at once; the sink recovers; the console replays it.
	body2, key2 := affinityEvent(2, time.Now())
	goneKey.Store(&key2)
	if code, _ := post(http.DefaultClient, hookURL, body2, nil); code != http.StatusOK {
		t.Fatalf("post the event that dies: %d", code)
	}
	id2 := eventIDByKey(t, p.admin, key2)
	var deadID int64
	eventually(t, 10*time.Second, "the 410 makes a dead letter", func() bool {
		var ds deliveriesAnswer
		adminCall(t, p.admin, "GET", "/api/deliveries?state=dead&event_id="+id2, "", &ds)
		if len(ds.Deliveries) == 1 {
			deadID = ds.Deliveries[0].ID
		}
		return deadID != 0
	})
	goneKey.Store(nil) // the sink is back
	load("dead letters", chromedp.Navigate(ui+"/dead?sink=hook"))
	box := fmt.Sprintf(`input[name="delivery"][value="%d"]`, deadID)
	if !exists(t, ctx, box) {
		t.Fatalf("dead letter %d is not listed:\n%s", deadID, pageText(ctx))
	}
	step("select the dead letter", chromedp.Click(chromedp.CSS(box)))
	load("replay the selection", chromedp.Click(chromedp.CSS(`#replay-selected button[type="submit"]`)))
	if text := pageText(ctx); !strings.Contains(text, "Replayed 1 dead letter to hook") {
		t.Errorf("after the replay the page says:\n%s", text)
	}
	sink.waitDelivered(t, []string{key2}, 10*time.Second)
	eventually(t, 10*time.Second, "the replayed delivery is delivered", func() bool {
		var ds deliveriesAnswer
		adminCall(t, p.admin, "GET", "/api/deliveries?event_id="+id2, "", &ds)
		return len(ds.Deliveries) == 1 && ds.Deliveries[0].State == crmhook.StateDelivered
	})

	// A rejection: an Affinity delivery older than the replay window is
	// refused (400) and kept; the console releases it, and it is delivered.
	old := time.Now().Add(-13 * time.Hour)
	body3, key3 := affinityEvent(3, old)
	if code, _ := post(http.DefaultClient, hookURL, body3, nil); code != http.StatusBadRequest {
		t.Fatalf("post a too-old event: %d, want 400", code)
	}
	var rejs struct {
		Rejections []admin.RejectionJSON `json:"rejections"`
	}
	adminCall(t, p.admin, "GET", "/api/rejections?released=false", "", &rejs)
	if len(rejs.Rejections) != 1 {
		t.Fatalf("rejections: %+v", rejs)
	}
	rid := rejs.Rejections[0].ID
	load("overview", chromedp.Navigate(ui+"/"))
	screenshot(t, ctx, "overview.png")
	load("rejections", chromedp.Navigate(ui+"/rejections"))
	release := fmt.Sprintf(`form[action="/ui/rejections/%d/release"] button`, rid)
	if !exists(t, ctx, release) || !strings.Contains(pageText(ctx), "old") {
		t.Fatalf("rejection %d is not listed with its reason:\n%s", rid, pageText(ctx))
	}

	// A POST without the CSRF token, from the signed-in page: 403.
	for _, action := range []string{fmt.Sprintf("/ui/rejections/%d/release", rid), "/ui/dead/replay", "/ui/logout"} {
		code, err := chromedp.Run(ctx, chromedp.Evaluate[int](
			`fetch(`+jsString(action)+`, {method: "POST", headers: {"Content-Type": "application/x-www-form-urlencoded"}, body: "sink=hook&all=1"}).then(r => r.status)`,
			chromedp.EvalAwaitPromise))
		if err != nil || code != http.StatusForbidden {
			t.Errorf("POST %s without the CSRF token: %d %v, want 403", action, code, err)
		}
	}

	load("release the rejection", chromedp.Click(chromedp.CSS(release)))
	if text := pageText(ctx); !strings.Contains(text, fmt.Sprintf("Released rejection %d", rid)) {
		t.Errorf("after the release the page says:\n%s", text)
	}
	sink.waitDelivered(t, []string{key3}, 10*time.Second)

	// Sign out: the console is closed again.
	load("sign out", chromedp.Click(chromedp.CSS(`form.signout button`)))
	load("the overview after signing out", chromedp.Navigate(ui+"/"))
	if loc := location(t, ctx); !strings.Contains(loc, "/ui/login") {
		t.Errorf("after sign-out the console shows %s, want the sign-in page", loc)
	}

	// What the console did is in the log, as admin/ui actions, and no
	// payload or secret is.
	if code := p.signal(t, syscall.SIGTERM); code != 0 {
		t.Errorf("crmhook serve exited %d after SIGTERM", code)
	}
	all := logs.String()
	for _, want := range []string{`"action":"replay"`, `"action":"release"`, `"action":"sign-in"`, `"component":"admin/ui"`} {
		if !strings.Contains(all, want) {
			t.Errorf("the log lacks %s", want)
		}
	}
	assertNoLeaks(t, "console", all)
}

// findChromium locates the browser, or skips (fails under CI=true).
func findChromium(t *testing.T) string {
	t.Helper()
	candidates := []string{os.Getenv("CHROMIUM_PATH"), "/usr/bin/chromium"}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			candidates = append(candidates, p)
		}
	}
	for _, c := range candidates {
		if c == "" {
			continue
		}
		if fi, err := os.Stat(c); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return c
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("no Chromium: set CHROMIUM_PATH or install chromium (CI=true needs the browser test)")
	}
	t.Skip("no Chromium (set CHROMIUM_PATH, or install chromium)")
	return ""
}

// newBrowser starts headless Chromium with a profile of its own, and ends
// it with the test.
func newBrowser(t *testing.T, path string) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.Flag("force-color-profile", "srgb"),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1360, 900),
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	// The first Do starts the browser, bound to ctx (no timeout).
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1360, 900, chromedp.EmulateScale(2))); err != nil {
		t.Fatalf("start Chromium (%s): %v", path, err)
	}
	return ctx
}

func pageText(ctx context.Context) string {
	tctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	s, err := chromedp.Run(tctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
	if err != nil {
		return "(page text unavailable: " + err.Error() + ")"
	}
	return s
}

func location(t *testing.T, ctx context.Context) string {
	t.Helper()
	loc, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func exists(t *testing.T, ctx context.Context, css string) bool {
	t.Helper()
	ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.querySelector(`+jsString(css)+`) !== null`))
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

func visible(t *testing.T, ctx context.Context, css string) bool {
	t.Helper()
	ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](
		`(() => { const e = document.querySelector(`+jsString(css)+`); return !!e && e.checkVisibility({visibilityProperty: true, contentVisibilityAuto: true}); })()`))
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// screenshot saves the page to docs/screenshots/name when
// UPDATE_SCREENSHOTS=1.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	if os.Getenv("UPDATE_SCREENSHOTS") != "1" {
		return
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	dir := filepath.Join("..", "docs", "screenshots")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("saved %s (%d bytes)", filepath.Join(dir, name), len(png))
}

// statusOf sends a request (a form when form is not nil) and returns its status.
func statusOf(t *testing.T, c *http.Client, method, u string, form url.Values) int {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	res, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res.StatusCode
}

// eventIDByKey finds the id of the stored event with dedupe key through
// the admin API.
func eventIDByKey(t *testing.T, adminURL, key string) string {
	t.Helper()
	var id string
	eventually(t, 10*time.Second, "the event is stored", func() bool {
		var evs struct {
			Events []admin.EventJSON `json:"events"`
		}
		adminCall(t, adminURL, "GET", "/api/events?source=aff&limit=20", "", &evs)
		for _, ev := range evs.Events {
			if ev.DedupeKey == key {
				id = ev.ID
			}
		}
		return id != ""
	})
	return id
}

// seedConsoleHistory fills the store at dbPath, before crmhook opens it,
// with the hour before now: events every minute, delivered within
// seconds, but for a five-minute outage of the sink whose failures were
// given up (dead letters); and what a watchdog saw of two subscriptions.
// The store's clock is moved along, so that the deliveries' times are
// those of the story.
func seedConsoleHistory(t *testing.T, dbPath string, now time.Time) {
	t.Helper()
	ctx := context.Background()
	var mu sync.Mutex
	clock := now.Add(-61 * time.Minute)
	setClock := func(c time.Time) { mu.Lock(); clock = c; mu.Unlock() }
	st, err := sqlite.Open(ctx, sqlite.Config{Path: dbPath, Now: func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	types := []string{"person.created", "person.updated", "organization.updated", "opportunity.created", "list_entry.created", "note.created"}
	for m := 60; m >= 1; m-- {
		start := now.Truncate(time.Minute).Add(-time.Duration(m) * time.Minute)
		n := 16 + int(8*math.Sin(float64(m)/6.5)) + (m*7)%5
		setClock(start)
		var wg sync.WaitGroup
		for i := range n {
			source, provider := "aff", crmhook.ProviderAffinity
			if i%3 == 0 {
				source, provider = "attio", crmhook.ProviderAttio
			}
			typ := types[(i+m)%len(types)]
			ne := crmhook.NewEvent{
				Event: crmhook.Event{
					ID: crmhook.NewEventID(), Source: source, Provider: provider, Type: typ,
					DedupeKey:  fmt.Sprintf("%s:seed-%d-%d", source, m, i),
					OccurredAt: start.Add(time.Duration(i) * 50 * time.Second / time.Duration(n)).Add(-time.Second),
					ReceivedAt: start.Add(time.Duration(i) * 50 * time.Second / time.Duration(n)),
					Payload:    json.RawMessage(fmt.Sprintf(`{"type":%q,"body":{"id":%d},"sent_at":%d}`, typ, 9000+m*100+i, start.Unix())),
				},
				Sinks:       []string{"hook"},
				DedupeUntil: now.Add(time.Hour),
			}
			wg.Go(func() {
				if _, err := st.Insert(ctx, ne); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		setClock(start.Add(55 * time.Second))
		cs, err := st.Claim(ctx, crmhook.ClaimParams{Owner: "seed", Limit: 1000, Lease: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		outage := m >= 22 && m <= 26
		for i, c := range cs {
			if outage && i%5 < 2 {
				err = st.Kill(ctx, c, "HTTP 503 Service Unavailable: gave up after 12 attempts")
			} else {
				err = st.Complete(ctx, c)
			}
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	setClock(now)
	for _, s := range []crmhook.SubscriptionState{
		{Source: "aff", SubscriptionID: "1001", Status: "active", LastCheckedAt: now.Add(-2 * time.Minute), LastHealthyAt: now.Add(-2 * time.Minute)},
		{Source: "attio", SubscriptionID: "6c1e2f0a-attio-webhook", Status: "degraded", LastCheckedAt: now.Add(-2 * time.Minute), LastHealthyAt: now.Add(-47 * time.Minute)},
	} {
		if err := st.PutSubscriptionState(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.RecordGap(ctx, crmhook.Gap{Source: "aff", SubscriptionID: "1001", From: now.Add(-27 * time.Hour), To: now.Add(-25*time.Hour - 20*time.Minute), RecordedAt: now.Add(-25 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
}
