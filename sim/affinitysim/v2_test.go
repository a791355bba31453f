package affinitysim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/crmhook/crmhook/internal/clocktest"
)

var (
	adminV2 = bearer(DefaultAdminKey) // user 1, admin
	userV2  = bearer(DefaultUserKey)  // user 2
)

// v2ErrEntry is one entry of a v2 error answer.
type v2ErrEntry struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Param   string `json:"param"`
}

// v2ErrorOf returns the single entry of a v2 error answer, failing the test
// unless the answer has exactly that shape.
func v2ErrorOf(t *testing.T, r response) v2ErrEntry {
	t.Helper()
	body := decode[struct {
		Errors []v2ErrEntry `json:"errors"`
	}](t, r)
	if len(body.Errors) != 1 || body.Errors[0].Code == "" || body.Errors[0].Message == "" {
		t.Fatalf("error body %s, want one {code, message, param?}", r.Body)
	}
	return body.Errors[0]
}

// wantV2Error checks status, code and param of a v2 error answer.
func wantV2Error(t *testing.T, r response, status int, code, param string) v2ErrEntry {
	t.Helper()
	wantStatus(t, r, status)
	e := v2ErrorOf(t, r)
	if e.Code != code || e.Param != param {
		t.Fatalf("error %+v, want code %q param %q", e, code, param)
	}
	if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		t.Errorf("error Content-Type %q", r.Header.Get("Content-Type"))
	}
	return e
}

// v2Hook is the v2 webhook object with every key it must carry.
type v2Hook struct {
	ID            int64               `json:"id"`
	URL           string              `json:"url"`
	Subscriptions []string            `json:"subscriptions"`
	Status        string              `json:"status"`
	Creator       *struct{ ID int64 } `json:"creator"`
	CreatedAt     time.Time           `json:"createdAt"`
	UpdatedAt     *time.Time          `json:"updatedAt"`
}

func createV2(t *testing.T, a auth, base, target string, subs ...string) v2Hook {
	t.Helper()
	if subs == nil {
		subs = []string{}
	}
	r := call(t, a, http.MethodPost, base+"/v2/webhooks", map[string]any{"url": target, "subscriptions": subs})
	wantStatus(t, r, http.StatusCreated)
	return decode[v2Hook](t, r)
}

func getV2(t *testing.T, a auth, base string, id int64) v2Hook {
	t.Helper()
	r := call(t, a, http.MethodGet, fmt.Sprintf("%s/v2/webhooks/%d", base, id), nil)
	wantStatus(t, r, http.StatusOK)
	return decode[v2Hook](t, r)
}

func updateV2(t *testing.T, a auth, base string, id int64, body any) response {
	t.Helper()
	return call(t, a, http.MethodPost, fmt.Sprintf("%s/v2/webhooks/%d", base, id), body)
}

func TestV2AuthIsBearerOnlyAndErrorsAreV2Shaped(t *testing.T) {
	_, base := setup(t, Config{})
	for _, tc := range []struct {
		name string
		a    auth
	}{
		{"basic with a valid key", basic(DefaultAdminKey)},
		{"no key", noAuth},
		{"unknown bearer key", bearer("nope")},
	} {
		r := call(t, tc.a, http.MethodGet, base+"/v2/webhooks", nil)
		e := wantV2Error(t, r, http.StatusUnauthorized, "authentication", "")
		if !strings.HasPrefix(r.Header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("%s: WWW-Authenticate %q", tc.name, r.Header.Get("WWW-Authenticate"))
		}
		if tc.name == "basic with a valid key" && !strings.Contains(e.Message, "bearer") {
			t.Errorf("basic: message %q should say v2 wants bearer", e.Message)
		}
		if r.Header.Get("X-Ratelimit-Limit-User") != "" {
			t.Errorf("%s: rate-limit headers on a refused request", tc.name)
		}
	}
	// V1 still takes Basic on the same server.
	wantStatus(t, call(t, basic(DefaultAdminKey), http.MethodGet, base+"/webhook", nil), http.StatusOK)

	r := call(t, adminV2, http.MethodGet, base+"/v2/webhooks", nil)
	wantStatus(t, r, http.StatusOK)
	for _, h := range []string{"x-ratelimit-limit-user", "x-ratelimit-limit-user-remaining", "x-ratelimit-limit-user-reset",
		"x-ratelimit-limit-org", "x-ratelimit-limit-org-remaining", "x-ratelimit-limit-org-reset"} {
		if r.Header.Get(h) == "" {
			t.Errorf("missing %s", h)
		}
	}
	if string(r.Body) != `{"data":[],"pagination":{"nextUrl":null,"prevUrl":null}}`+"\n" {
		t.Errorf("empty list = %s", r.Body)
	}

	wantV2Error(t, call(t, adminV2, http.MethodGet, base+"/v2/persons", nil), http.StatusNotFound, "not-found", "")
	wantV2Error(t, call(t, adminV2, http.MethodGet, base+"/v2/webhooks/1001", nil), http.StatusNotFound, "not-found", "")
	wantV2Error(t, call(t, adminV2, http.MethodGet, base+"/v2/webhooks/abc", nil), http.StatusBadRequest, "validation", "webhookId")
	r = call(t, adminV2, http.MethodPut, base+"/v2/webhooks/1001", map[string]any{})
	wantV2Error(t, r, http.StatusMethodNotAllowed, "method-not-allowed", "")
	if r.Header.Get("Allow") != "GET, POST, DELETE" {
		t.Errorf("Allow %q", r.Header.Get("Allow"))
	}
}

func TestV2LifecycleSharesTheV1Store(t *testing.T) {
	clock := clocktest.New(time.Date(2026, 5, 10, 12, 0, 0, 0, time.UTC))
	sim, base := setup(t, Config{Now: clock.Now})
	tg := newTarget(t, nil)
	other := newTarget(t, nil)

	// Create: 201, every key present, creator and createdAt set, updatedAt null.
	r := call(t, adminV2, http.MethodPost, base+"/v2/webhooks",
		map[string]any{"url": tg.url(), "subscriptions": []string{"person.created", "smart_interaction_value.updated", "person.created"}})
	wantStatus(t, r, http.StatusCreated)
	want := fmt.Sprintf(`{"id":1001,"url":%q,"subscriptions":["person.created","smart_interaction_value.updated"],"status":"active",`+
		`"creator":{"id":1},"createdAt":"2026-05-10T12:00:00Z","updatedAt":null}`+"\n", tg.url())
	if string(r.Body) != want {
		t.Errorf("create answered\n%s\nwant\n%s", r.Body, want)
	}
	// The test delivery is V1's sample.webhook envelope.
	probes := tg.requests(ProbeType)
	wantProbe := fmt.Sprintf(`{"type":"sample.webhook","body":{"test":true},"sent_at":%d}`, clock.Now().Unix())
	if len(probes) != 1 || string(probes[0].Body) != wantProbe {
		t.Fatalf("probes %v, want one %s", probes, wantProbe)
	}

	// The same subscription through V1.
	v1 := decode[Webhook](t, call(t, admin, http.MethodGet, base+"/webhook/1001", nil))
	if !equalWebhook(v1, Webhook{ID: 1001, WebhookURL: tg.url(), Subscriptions: []string{"person.created", "smart_interaction_value.updated"}, CreatedBy: 1}) {
		t.Errorf("V1 view %+v", v1)
	}
	if got := sim.Webhooks(); len(got) != 1 || got[0].ID != 1001 {
		t.Errorf("Webhooks() = %+v", got)
	}

	// V1 disables it: v2 shows status disabled and the update time.
	clock.Set(clock.Now().Add(time.Minute))
	wantStatus(t, call(t, admin, http.MethodPut, base+"/webhook/1001", map[string]any{"disabled": true}), http.StatusOK)
	h := getV2(t, adminV2, base, 1001)
	if h.Status != "disabled" || h.UpdatedAt == nil || !h.UpdatedAt.Equal(clock.Now()) || !h.CreatedAt.Equal(clock.Now().Add(-time.Minute)) {
		t.Errorf("after V1 disable: %+v", h)
	}

	// v2 changes the URL of the disabled webhook: no test delivery.
	clock.Set(clock.Now().Add(time.Minute))
	r = updateV2(t, adminV2, base, 1001, map[string]any{"url": other.url()})
	wantStatus(t, r, http.StatusNoContent)
	if len(r.Body) != 0 || len(other.requests("")) != 0 {
		t.Errorf("update answered %q; the disabled webhook's new URL got %d requests", r.Body, len(other.requests("")))
	}
	// v2 activates it: probed at the new URL; V1 sees it enabled.
	wantStatus(t, updateV2(t, adminV2, base, 1001, map[string]any{"status": "active"}), http.StatusNoContent)
	if n := len(other.requests(ProbeType)); n != 1 {
		t.Errorf("activation probes = %d, want 1", n)
	}
	v1 = decode[Webhook](t, call(t, admin, http.MethodGet, base+"/webhook/1001", nil))
	if v1.Disabled || v1.WebhookURL != other.url() {
		t.Errorf("V1 after v2 activation %+v", v1)
	}
	// Subscriptions only: no probe; an empty list means every event.
	wantStatus(t, updateV2(t, adminV2, base, 1001, map[string]any{"subscriptions": []string{}}), http.StatusNoContent)
	if n := len(other.requests(ProbeType)); n != 1 {
		t.Errorf("probes after a subscriptions change = %d, want 1", n)
	}
	if h := getV2(t, adminV2, base, 1001); h.Subscriptions == nil || len(h.Subscriptions) != 0 || h.Status != "active" {
		t.Errorf("after subscriptions change %+v", h)
	}
	// Status active on an active webhook: no probe, nothing changes.
	before := getV2(t, adminV2, base, 1001).UpdatedAt
	clock.Set(clock.Now().Add(time.Minute))
	wantStatus(t, updateV2(t, adminV2, base, 1001, map[string]any{"status": "active"}), http.StatusNoContent)
	if n := len(other.requests(ProbeType)); n != 1 || !getV2(t, adminV2, base, 1001).UpdatedAt.Equal(*before) {
		t.Errorf("no-op activation: probes %d, updatedAt moved", n)
	}

	// Events reach it as V1 deliveries.
	res, err := sim.Trigger(t.Context(), "note.created", nil)
	if err != nil || len(res.Deliveries) != 1 || !res.Deliveries[0].OK || res.Deliveries[0].SubscriptionID != 1001 {
		t.Fatalf("trigger: %+v %v", res, err)
	}

	// Delete through v2: 204, gone for V1 too.
	r = call(t, adminV2, http.MethodDelete, base+"/v2/webhooks/1001", nil)
	wantStatus(t, r, http.StatusNoContent)
	wantStatus(t, call(t, admin, http.MethodGet, base+"/webhook/1001", nil), http.StatusNotFound)
	wantV2Error(t, call(t, adminV2, http.MethodDelete, base+"/v2/webhooks/1001", nil), http.StatusNotFound, "not-found", "")
}

func TestV2RequestBodies(t *testing.T) {
	sim, base := setup(t, Config{})
	tg := newTarget(t, nil)
	u := tg.url()
	for _, tc := range []struct {
		name        string
		body        string
		ct          string
		status      int
		code, param string
	}{
		{"missing url", `{"subscriptions":[]}`, "application/json", 400, "validation", "url"},
		{"missing subscriptions", `{"url":"` + u + `"}`, "application/json", 400, "validation", "subscriptions"},
		{"unknown key", `{"url":"` + u + `","subscriptions":[],"disabled":false}`, "application/json", 400, "validation", "disabled"},
		{"V1 key", `{"webhook_url":"` + u + `","subscriptions":[]}`, "application/json", 400, "validation", "webhook_url"},
		{"null url", `{"url":null,"subscriptions":[]}`, "application/json", 400, "validation", "url"},
		{"url not a string", `{"url":5,"subscriptions":[]}`, "application/json", 400, "validation", "url"},
		{"subscriptions not a list", `{"url":"` + u + `","subscriptions":"person.created"}`, "application/json", 400, "validation", "subscriptions"},
		{"unknown event type", `{"url":"` + u + `","subscriptions":["person.exploded"]}`, "application/json", 400, "validation", "subscriptions"},
		{"relative url", `{"url":"/hooks","subscriptions":[]}`, "application/json", 400, "validation", "url"},
		{"credentials in url", `{"url":"http://user:pass@127.0.0.1/x","subscriptions":[]}`, "application/json", 400, "validation", "url"},
		{"not an object", `["url"]`, "application/json", 400, "bad-request", ""},
		{"not JSON", `url=x`, "application/json", 400, "bad-request", ""},
		{"empty", ``, "application/json", 400, "bad-request", ""},
		{"form encoded", `url=x&subscriptions=`, "application/x-www-form-urlencoded", 415, "bad-request", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := call(t, adminV2, http.MethodPost, base+"/v2/webhooks", tc.body, tc.ct)
			e := wantV2Error(t, r, tc.status, tc.code, tc.param)
			if strings.Contains(e.Message, "pass@") || strings.Contains(e.Message, "s3cr3t") {
				t.Errorf("message quotes the URL: %q", e.Message)
			}
		})
	}
	if n := len(sim.Webhooks()); n != 0 || len(tg.requests("")) != 0 {
		t.Errorf("refused bodies created %d webhooks and sent %d probes", n, len(tg.requests("")))
	}
	// Update bodies: only status, url and subscriptions.
	h := createV2(t, adminV2, base, u)
	for _, body := range []string{`{"disabled":true}`, `{"status":"paused"}`, `{"status":null}`} {
		r := updateV2(t, adminV2, base, h.ID, body)
		wantStatus(t, r, http.StatusBadRequest)
		if e := v2ErrorOf(t, r); e.Code != "validation" || e.Param == "" {
			t.Errorf("%s: %+v", body, e)
		}
	}
	// An empty object changes nothing.
	wantStatus(t, updateV2(t, adminV2, base, h.ID, `{}`), http.StatusNoContent)
	if got := getV2(t, adminV2, base, h.ID); got.UpdatedAt != nil {
		t.Errorf("empty update set updatedAt %v", got.UpdatedAt)
	}
}

func TestV2URLRules(t *testing.T) {
	_, base := setup(t, Config{MaxSubscriptions: 10})
	good := newTarget(t, nil)
	failing := newTarget(t, func(string, int) int { return http.StatusInternalServerError })

	// A failing test delivery refuses the create.
	r := call(t, adminV2, http.MethodPost, base+"/v2/webhooks", map[string]any{"url": failing.url(), "subscriptions": []string{}})
	e := wantV2Error(t, r, http.StatusBadRequest, "validation", "url")
	if !strings.Contains(e.Message, "test delivery") || !strings.Contains(e.Message, "500") {
		t.Errorf("message %q", e.Message)
	}

	// URLs are unique in the instance, V1 subscriptions included, and
	// checked before any test delivery.
	createWebhook(t, user2, base, good.url()) // V1, user 2
	probes := len(good.requests(ProbeType))
	r = call(t, adminV2, http.MethodPost, base+"/v2/webhooks", map[string]any{"url": good.url(), "subscriptions": []string{}})
	if e := wantV2Error(t, r, http.StatusBadRequest, "validation", "url"); !strings.Contains(e.Message, "already used") {
		t.Errorf("duplicate message %q", e.Message)
	}
	if len(good.requests(ProbeType)) != probes {
		t.Error("a duplicate URL was probed")
	}
	second := good.srv.URL + "/hooks/affinity/second"
	h := createV2(t, adminV2, base, second)
	wantV2Error(t, updateV2(t, adminV2, base, h.ID, map[string]any{"url": good.url()}), http.StatusBadRequest, "validation", "url")
	wantV2Error(t, updateV2(t, adminV2, base, h.ID, map[string]any{"url": "https://a:b@example.com/x"}), http.StatusBadRequest, "validation", "url")
	// Re-sending its own URL is not a duplicate.
	wantStatus(t, updateV2(t, adminV2, base, h.ID, map[string]any{"url": second}), http.StatusNoContent)

	// An active webhook moved to a failing URL: refused, unchanged.
	wantV2Error(t, updateV2(t, adminV2, base, h.ID, map[string]any{"url": failing.url()}), http.StatusBadRequest, "validation", "url")
	if got := getV2(t, adminV2, base, h.ID); got.URL != second || got.Status != "active" || got.UpdatedAt != nil {
		t.Errorf("after a failed move: %+v", got)
	}
	// Moved and disabled in one request: no test delivery.
	n := len(failing.requests(""))
	wantStatus(t, updateV2(t, adminV2, base, h.ID, map[string]any{"url": failing.url(), "status": "disabled"}), http.StatusNoContent)
	if len(failing.requests("")) != n {
		t.Error("a webhook being disabled was probed")
	}
	// Re-activating it at the failing URL: refused, stays disabled.
	wantV2Error(t, updateV2(t, adminV2, base, h.ID, map[string]any{"status": "active"}), http.StatusBadRequest, "validation", "url")
	if got := getV2(t, adminV2, base, h.ID); got.Status != "disabled" || got.URL != failing.url() {
		t.Errorf("after a failed activation: %+v", got)
	}
	failing.setRespond(func(string, int) int { return http.StatusOK })
	wantStatus(t, updateV2(t, adminV2, base, h.ID, map[string]any{"status": "active"}), http.StatusNoContent)
	if got := getV2(t, adminV2, base, h.ID); got.Status != "active" {
		t.Errorf("after activation: %+v", got)
	}
}

func TestV2LimitIsSharedWithV1(t *testing.T) {
	sim, base := setup(t, Config{})
	tg := newTarget(t, nil)
	createWebhook(t, admin, base, tg.url()+"/1")
	createWebhook(t, user2, base, tg.url()+"/2")
	createV2(t, userV2, base, tg.url()+"/3")
	probes := len(tg.requests(ProbeType))

	r := call(t, adminV2, http.MethodPost, base+"/v2/webhooks", map[string]any{"url": tg.url() + "/4", "subscriptions": []string{}})
	wantV2Error(t, r, http.StatusBadRequest, "bad-request", "")
	wantStatus(t, call(t, admin, http.MethodPost, base+"/webhook/subscribe", map[string]any{"webhook_url": tg.url() + "/4"}), http.StatusUnprocessableEntity)
	if len(tg.requests(ProbeType)) != probes || len(sim.Webhooks()) != 3 {
		t.Error("a create over the limit probed or created")
	}
	// Freed through v2, usable through V1.
	wantStatus(t, call(t, adminV2, http.MethodDelete, base+"/v2/webhooks/1003", nil), http.StatusNoContent)
	createWebhook(t, admin, base, tg.url()+"/4")
}

func TestV2Visibility(t *testing.T) {
	_, base := setup(t, Config{})
	tg := newTarget(t, nil)
	mine := createV2(t, adminV2, base, tg.url()+"/admin")
	theirs := createV2(t, userV2, base, tg.url()+"/user")
	if mine.Creator == nil || mine.Creator.ID != 1 || theirs.Creator == nil || theirs.Creator.ID != 2 {
		t.Fatalf("creators %+v %+v", mine.Creator, theirs.Creator)
	}
	// The user sees, changes and deletes only their own: the admin's is 404.
	path := fmt.Sprintf("%s/v2/webhooks/%d", base, mine.ID)
	wantV2Error(t, call(t, userV2, http.MethodGet, path, nil), http.StatusNotFound, "not-found", "")
	wantV2Error(t, updateV2(t, userV2, base, mine.ID, map[string]any{"status": "disabled"}), http.StatusNotFound, "not-found", "")
	wantV2Error(t, call(t, userV2, http.MethodDelete, path, nil), http.StatusNotFound, "not-found", "")
	list := decode[struct{ Data []v2Hook }](t, call(t, userV2, http.MethodGet, base+"/v2/webhooks", nil))
	if len(list.Data) != 1 || list.Data[0].ID != theirs.ID {
		t.Errorf("user's list %+v", list.Data)
	}
	// The admin manages every webhook (V1 would refuse an update by a non-creator).
	list = decode[struct{ Data []v2Hook }](t, call(t, adminV2, http.MethodGet, base+"/v2/webhooks", nil))
	if len(list.Data) != 2 {
		t.Errorf("admin's list %+v", list.Data)
	}
	wantStatus(t, updateV2(t, adminV2, base, theirs.ID, map[string]any{"status": "disabled"}), http.StatusNoContent)
	wantStatus(t, call(t, adminV2, http.MethodDelete, fmt.Sprintf("%s/v2/webhooks/%d", base, theirs.ID), nil), http.StatusNoContent)
}

type v2Page struct {
	Data       []v2Hook `json:"data"`
	Pagination struct {
		NextURL    *string `json:"nextUrl"`
		PrevURL    *string `json:"prevUrl"`
		TotalCount *int    `json:"totalCount"`
	} `json:"pagination"`
}

func ids(p v2Page) []int64 {
	out := []int64{}
	for _, h := range p.Data {
		out = append(out, h.ID)
	}
	return out
}

func TestV2ListPagingAndFilter(t *testing.T) {
	clock := clocktest.New(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	_, base := setup(t, Config{Now: clock.Now, MaxSubscriptions: 10})
	tg := newTarget(t, nil)
	for i := range 5 {
		clock.Set(time.Date(2026, 1, 1+i, 0, 0, 0, 0, time.UTC))
		createV2(t, adminV2, base, fmt.Sprintf("%s/%d", tg.url(), i))
	}
	// Webhook 1002 updated on 2026-02-01.
	clock.Set(time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC))
	wantStatus(t, updateV2(t, adminV2, base, 1002, map[string]any{"subscriptions": []string{"note.created"}}), http.StatusNoContent)

	page := decode[v2Page](t, call(t, adminV2, http.MethodGet, base+"/v2/webhooks?limit=2&totalCount=true", nil))
	if !slices.Equal(ids(page), []int64{1001, 1002}) || page.Pagination.PrevURL != nil || page.Pagination.NextURL == nil ||
		page.Pagination.TotalCount == nil || *page.Pagination.TotalCount != 5 {
		t.Fatalf("first page %+v", page)
	}
	// nextUrl is absolute, on the host the client used, and keeps limit and totalCount.
	next, err := url.Parse(*page.Pagination.NextURL)
	if err != nil || next.Scheme+"://"+next.Host != base || next.Path != "/v2/webhooks" ||
		next.Query().Get("limit") != "2" || next.Query().Get("totalCount") != "true" || next.Query().Get("cursor") == "" {
		t.Fatalf("nextUrl %s", *page.Pagination.NextURL)
	}
	page = decode[v2Page](t, call(t, adminV2, http.MethodGet, *page.Pagination.NextURL, nil))
	if !slices.Equal(ids(page), []int64{1003, 1004}) || page.Pagination.PrevURL == nil || page.Pagination.NextURL == nil {
		t.Fatalf("second page %+v", page)
	}
	last := decode[v2Page](t, call(t, adminV2, http.MethodGet, *page.Pagination.NextURL, nil))
	if !slices.Equal(ids(last), []int64{1005}) || last.Pagination.NextURL != nil || last.Pagination.PrevURL == nil {
		t.Fatalf("last page %+v", last)
	}
	back := decode[v2Page](t, call(t, adminV2, http.MethodGet, *last.Pagination.PrevURL, nil))
	if !slices.Equal(ids(back), []int64{1003, 1004}) {
		t.Errorf("prevUrl of the last page gave %v", ids(back))
	}
	back = decode[v2Page](t, call(t, adminV2, http.MethodGet, *back.Pagination.PrevURL, nil))
	if !slices.Equal(ids(back), []int64{1001, 1002}) || back.Pagination.PrevURL != nil {
		t.Errorf("prevUrl of the second page gave %+v", back)
	}

	for _, tc := range []struct {
		filter string
		want   []int64
	}{
		{"id=1001|id=1003", []int64{1001, 1003}},
		{"id != 1001 & id != 1002", []int64{1003, 1004, 1005}},
		{"createdAt>=2026-01-03T00:00:00Z", []int64{1003, 1004, 1005}},
		{`createdAt < "2026-01-02T00:00:00Z" | updatedAt >= 2026-01-15T00:00:00Z`, []int64{1001, 1002}},
		{"updatedAt<2026-03-01T00:00:00Z", []int64{1002}},
		{"!(id=1001 | id=1002) & createdAt<=2026-01-04T00:00:00Z", []int64{1003, 1004}},
	} {
		p := decode[v2Page](t, call(t, adminV2, http.MethodGet, base+"/v2/webhooks?filter="+url.QueryEscape(tc.filter), nil))
		if !slices.Equal(ids(p), tc.want) {
			t.Errorf("filter %q gave %v, want %v", tc.filter, ids(p), tc.want)
		}
	}

	for _, tc := range []struct{ query, param string }{
		{"limit=0", "limit"}, {"limit=101", "limit"}, {"limit=x", "limit"},
		{"cursor=not-a-cursor", "cursor"}, {"totalCount=maybe", "totalCount"},
		{"filter=" + url.QueryEscape("status=active"), "filter"},
		{"filter=" + url.QueryEscape("id>3"), "filter"},
		{"filter=" + url.QueryEscape("createdAt>yesterday"), "filter"},
		{"filter=" + url.QueryEscape("(id=1"), "filter"},
	} {
		r := call(t, adminV2, http.MethodGet, base+"/v2/webhooks?"+tc.query, nil)
		wantV2Error(t, r, http.StatusBadRequest, "validation", tc.param)
	}
	if p := decode[v2Page](t, call(t, adminV2, http.MethodGet, base+"/v2/webhooks?limit=100", nil)); len(p.Data) != 5 {
		t.Errorf("limit=100 gave %d", len(p.Data))
	}
}

func TestV2RateLimitIsOneBudgetWithV1(t *testing.T) {
	clock := clocktest.New(time.Date(2026, 5, 10, 12, 0, 10, 0, time.UTC))
	_, base := setup(t, Config{Now: clock.Now, RateLimitPerMinute: 2})
	wantStatus(t, call(t, admin, http.MethodGet, base+"/webhook", nil), http.StatusOK)
	r := call(t, adminV2, http.MethodGet, base+"/v2/webhooks", nil)
	wantStatus(t, r, http.StatusOK)
	if r.Header.Get("x-ratelimit-limit-user-remaining") != "0" {
		t.Errorf("remaining %q after one V1 and one v2 call", r.Header.Get("x-ratelimit-limit-user-remaining"))
	}
	r = call(t, adminV2, http.MethodGet, base+"/v2/webhooks", nil)
	wantV2Error(t, r, http.StatusTooManyRequests, "rate-limit", "")
	if r.Header.Get("Retry-After") != "50" {
		t.Errorf("Retry-After %q, want 50", r.Header.Get("Retry-After"))
	}
	// Another user's budget is their own.
	wantStatus(t, call(t, userV2, http.MethodGet, base+"/v2/webhooks", nil), http.StatusOK)
}

// The v2 webhook JSON is what the SDK decodes; keep the wire keys exact.
func TestV2WebhookJSONKeys(t *testing.T) {
	wh := &Webhook{ID: 1, WebhookURL: "https://x.test/h", Subscriptions: []string{}, Disabled: true,
		createdAt: time.Date(2026, 1, 2, 3, 4, 5, 600e6, time.FixedZone("x", 3600))}
	b, err := json.Marshal(wh.v2View())
	if err != nil {
		t.Fatal(err)
	}
	want := `{"id":1,"url":"https://x.test/h","subscriptions":[],"status":"disabled","creator":null,"createdAt":"2026-01-02T02:04:05.6Z","updatedAt":null}`
	if string(b) != want {
		t.Errorf("got  %s\nwant %s", b, want)
	}
}
