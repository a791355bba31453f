package admin

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/hex"
	"errors"
	"html/template"
	"io/fs"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"path"
	"strings"
	"sync/atomic"
	"time"

	"github.com/crmhook/crmhook"
	"github.com/crmhook/crmhook/store/console"
)

// The console: server-rendered HTML pages under /ui/ on the admin listener,
// behind a sign-in with the admin token. Every page reads and acts without
// JavaScript; the one small script (static/ui.js) only adds "select all" to
// the dead letters and a confirmation before replaying all of a sink's.
// Every action is a POST form carrying the session's CSRF token, and runs
// the same code as the JSON API (actions.go).

//go:embed templates/*.html
var templateFiles embed.FS

//go:embed static
var staticFiles embed.FS

// contentSecurityPolicy allows the console's own stylesheet, script and
// forms, and nothing else: no inline script or style, no frames, no other
// origin.
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"object-src 'none'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// maxFormBytes bounds a console form (a selection of dead letters is the
// largest).
const maxFormBytes = 64 << 10

type ui struct {
	m          *Server
	log        *slog.Logger
	sessions   *sessions
	pages      map[string]*template.Template
	assets     map[string]asset
	token      [32]byte // SHA-256 of the admin token
	tokenSet   bool
	loginDelay time.Duration
	// refusals lets one wrong token wait out its delay at a time, so that
	// guesses cannot go faster than one a delay however many connections
	// make them; waiting holds at most maxRefusalsWaiting of them.
	refusals        chan struct{}
	refusalsWaiting atomic.Int32
	// reader is the store's console reads; nil when it has none (a store
	// wrapped by a test, say): the pages then show what crmhook.Store gives.
	reader console.Reader
}

type asset struct {
	body        []byte
	contentType string
	version     string // a hash of body, for the URL: a new build is a new URL
}

func newUI(m *Server) *ui {
	u := &ui{
		m:          m,
		log:        m.UILogger,
		sessions:   newSessions(m.Now, m.SessionTTL),
		token:      sha256.Sum256([]byte(m.Token)),
		tokenSet:   m.Token != "",
		loginDelay: m.LoginDelay,
		pages:      map[string]*template.Template{},
		assets:     map[string]asset{},
		refusals:   make(chan struct{}, 1),
	}
	if u.log == nil {
		u.log = m.Logger.With("component", "admin/ui")
	}
	if u.sessions.ttl <= 0 {
		u.sessions.ttl = DefaultSessionTTL
	}
	if u.loginDelay <= 0 {
		u.loginDelay = DefaultLoginDelay
	}
	u.reader, _ = m.Store.(console.Reader)
	entries, _ := fs.ReadDir(staticFiles, "static")
	for _, e := range entries {
		body, _ := fs.ReadFile(staticFiles, "static/"+e.Name())
		sum := sha256.Sum256(body)
		u.assets[e.Name()] = asset{body: body, contentType: mime.TypeByExtension(path.Ext(e.Name())), version: hex.EncodeToString(sum[:6])}
	}
	funcs := u.funcs()
	for _, name := range []string{"login", "overview", "events", "event", "dead", "rejections", "subscriptions", "message"} {
		u.pages[name] = template.Must(template.New("").Funcs(funcs).ParseFS(templateFiles, "templates/layout.html", "templates/"+name+".html"))
	}
	return u
}

// handler routes /ui/.
func (u *ui) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ui/login", u.loginPage)
	mux.HandleFunc("POST /ui/login", u.login)
	mux.HandleFunc("POST /ui/logout", u.action(u.logout))
	mux.HandleFunc("GET /ui/static/{name}", u.static)
	mux.HandleFunc("GET /ui/{$}", u.page(u.overview))
	mux.HandleFunc("GET /ui/events", u.page(u.events))
	mux.HandleFunc("GET /ui/events/{id}", u.page(u.event))
	mux.HandleFunc("POST /ui/events/{id}/replay", u.action(u.replayEvent))
	mux.HandleFunc("GET /ui/dead", u.page(u.deadLetters))
	mux.HandleFunc("POST /ui/dead/replay", u.action(u.replayDead))
	mux.HandleFunc("GET /ui/rejections", u.page(u.rejections))
	mux.HandleFunc("POST /ui/rejections/{id}/release", u.action(u.releaseRejection))
	mux.HandleFunc("GET /ui/subscriptions", u.page(u.subscriptions))
	mux.HandleFunc("/ui/", u.notFound)
	// Cross-origin POSTs (by Sec-Fetch-Site or Origin) are refused before
	// any handler runs; the CSRF token and SameSite=Strict stand behind.
	return securityHeaders(http.NewCrossOriginProtection().Handler(mux))
}

// securityHeaders sets what every console answer carries: pages show
// payloads, so none is cached, framed, sniffed or referred.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("X-Frame-Options", "DENY")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Cross-Origin-Resource-Policy", "same-origin")
		h.Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r)
	})
}

// page wraps a page that needs a session: without one, the browser goes to
// the sign-in page, and back here after it.
func (u *ui) page(fn func(w http.ResponseWriter, r *http.Request, s *session)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s := u.sessions.get(r)
		if s == nil {
			http.Redirect(w, r, "/ui/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			return
		}
		fn(w, r, s)
	}
}

// action wraps a POST that changes something: 401 without a session, 403
// without the session's CSRF token.
func (u *ui) action(fn func(w http.ResponseWriter, r *http.Request, s *session)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s := u.sessions.get(r)
		if s == nil {
			u.message(w, r, nil, http.StatusUnauthorized, "Signed out", "Your session has ended: sign in again, then repeat what you did.")
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
		if err := r.ParseForm(); err != nil {
			u.message(w, r, s, http.StatusBadRequest, "Bad request", "The form could not be read.")
			return
		}
		if !s.checkCSRF(r.PostForm.Get("csrf")) {
			u.log.Warn("admin/ui: refused a form without its CSRF token", "path", r.URL.Path)
			u.message(w, r, s, http.StatusForbidden, "Refused", "The form did not carry this session's token. Reload the page and try again.")
			return
		}
		fn(w, r, s)
	}
}

// pageData is what every template gets.
type pageData struct {
	Title    string
	Nav      string // the active tab
	Signed   bool
	CSRF     string
	Flash    *flash
	Now      time.Time
	Degraded bool // the store offers no console reads
	Data     any
}

// render writes a page, all or nothing: a template error is a 500, never
// half a page.
func (u *ui) render(w http.ResponseWriter, s *session, status int, name, title, nav string, data any) {
	pd := pageData{Title: title, Nav: nav, Now: u.m.Now(), Data: data, Degraded: u.reader == nil}
	if s != nil {
		pd.Signed, pd.CSRF, pd.Flash = true, s.csrf, u.sessions.takeFlash(s)
	}
	var buf bytes.Buffer
	if err := u.pages[name].ExecuteTemplate(&buf, "layout", pd); err != nil {
		u.log.Error("admin/ui: render", "page", name, "err", err)
		http.Error(w, "the page could not be rendered", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

type messageData struct {
	Heading, Text string
}

func (u *ui) message(w http.ResponseWriter, _ *http.Request, s *session, status int, heading, text string) {
	u.render(w, s, status, "message", heading, "", messageData{heading, text})
}

func (u *ui) notFound(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/ui" {
		http.Redirect(w, r, "/ui/", http.StatusSeeOther)
		return
	}
	u.message(w, r, u.sessions.get(r), http.StatusNotFound, "Not found", "There is no such page.")
}

// fail answers a store error: not found is a 404 page; a timeout or an
// unavailable store a 503 whose text names no internals (the log has them).
func (u *ui) fail(w http.ResponseWriter, r *http.Request, s *session, err error) {
	switch {
	case errors.Is(err, crmhook.ErrNotFound):
		u.message(w, r, s, http.StatusNotFound, "Not found", "There is no such item: it may have been removed by retention.")
	default:
		u.log.Warn("admin/ui: store error", "path", r.URL.Path, "err", err)
		w.Header().Set("Retry-After", "5")
		u.message(w, r, s, http.StatusServiceUnavailable, "Store unavailable", "The store did not answer. Try again in a moment.")
	}
}

// redirectWith ends an action: the outcome is shown once by the page the
// browser goes to (POST, redirect, GET).
func (u *ui) redirectWith(w http.ResponseWriter, r *http.Request, s *session, to string, f flash) {
	u.sessions.setFlash(s, f)
	http.Redirect(w, r, to, http.StatusSeeOther)
}

func (u *ui) static(w http.ResponseWriter, r *http.Request) {
	a, ok := u.assets[r.PathValue("name")]
	if !ok {
		u.notFound(w, r)
		return
	}
	w.Header().Set("Content-Type", a.contentType)
	// Versioned URLs: the content of one URL never changes.
	w.Header().Set("Cache-Control", "public, max-age=86400")
	_, _ = w.Write(a.body)
}

// assetURL is the versioned URL of a static file.
func (u *ui) assetURL(name string) string {
	return "/ui/static/" + name + "?v=" + u.assets[name].version
}

// --- Sign-in ---

type loginData struct {
	Next  string
	Wrong bool
}

func (u *ui) loginPage(w http.ResponseWriter, r *http.Request) {
	next := safeNext(r.URL.Query().Get("next"))
	if u.sessions.get(r) != nil {
		http.Redirect(w, r, next, http.StatusSeeOther)
		return
	}
	u.render(w, nil, http.StatusOK, "login", "Sign in", "", loginData{Next: next})
}

// maxRefusalsWaiting bounds the wrong tokens queued for their answer;
// more are told to come back later at once.
const maxRefusalsWaiting = 32

// login checks the admin token in constant time. A wrong one is answered
// after a fixed delay and always the same way, whatever was wrong with it;
// wrong ones wait their turn, one delay each.
func (u *ui) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	_ = r.ParseForm()
	next := safeNext(r.PostForm.Get("next"))
	got := sha256.Sum256([]byte(r.PostForm.Get("token")))
	if !u.tokenSet || subtle.ConstantTimeCompare(got[:], u.token[:]) != 1 {
		u.log.Warn("admin/ui: sign-in refused", "action", "sign-in", "remote", r.RemoteAddr)
		if !u.refuseSlowly(r) {
			w.Header().Set("Retry-After", "5")
			u.message(w, r, nil, http.StatusTooManyRequests, "Too many attempts", "Too many sign-in attempts at once: try again in a moment.")
			return
		}
		u.render(w, nil, http.StatusUnauthorized, "login", "Sign in", "", loginData{Next: next, Wrong: true})
		return
	}
	s := u.sessions.create()
	setSessionCookie(w, r, s, u.sessions.ttl)
	u.log.Info("admin/ui: signed in", "action", "sign-in", "remote", r.RemoteAddr)
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// refuseSlowly waits for the refusals' turn, then the login delay. It
// reports false when too many wait already, or the request ended.
func (u *ui) refuseSlowly(r *http.Request) bool {
	if u.refusalsWaiting.Add(1) > maxRefusalsWaiting {
		u.refusalsWaiting.Add(-1)
		return false
	}
	defer u.refusalsWaiting.Add(-1)
	select {
	case u.refusals <- struct{}{}:
	case <-r.Context().Done():
		return false
	}
	defer func() { <-u.refusals }()
	t := time.NewTimer(u.loginDelay)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.Context().Done():
		return false
	}
}

func (u *ui) logout(w http.ResponseWriter, r *http.Request, s *session) {
	u.sessions.delete(s)
	clearSessionCookie(w, r)
	u.log.Info("admin/ui: signed out", "action", "sign-out", "remote", r.RemoteAddr)
	http.Redirect(w, r, "/ui/login", http.StatusSeeOther)
}

// safeNext keeps a redirect after sign-in inside the console.
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/ui/") || strings.HasPrefix(next, "/ui/login") ||
		strings.Contains(next, "//") || strings.ContainsAny(next, "\\\r\n") {
		return "/ui/"
	}
	return next
}
