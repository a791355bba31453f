package admin

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"sync"
	"time"
)

// Sessions of the console. A session id is 32 random bytes, sent only in
// an HttpOnly, SameSite=Strict cookie scoped to /ui and kept in this
// process's memory (a restart signs everyone out); each session has its own
// CSRF token, which every form that changes something carries. Sessions
// expire SessionTTL after sign-in; at most maxSessions live at once, the
// oldest giving way.

const (
	sessionCookie = "crmhook_console"
	// DefaultSessionTTL is how long a sign-in lasts.
	DefaultSessionTTL = 12 * time.Hour
	// DefaultLoginDelay is how long a wrong token waits for its answer.
	DefaultLoginDelay = 750 * time.Millisecond
	maxSessions       = 256
)

type session struct {
	id      string
	csrf    string
	expires time.Time
	flash   *flash // shown once, by the next page
}

// flash is the outcome of an action, shown on the page it redirects to.
type flash struct {
	OK   bool
	Text string
}

type sessions struct {
	mu  sync.Mutex
	now func() time.Time
	ttl time.Duration
	m   map[[32]byte]*session // by the id's SHA-256: lookups never compare ids byte by byte
}

func newSessions(now func() time.Time, ttl time.Duration) *sessions {
	return &sessions{now: now, ttl: ttl, m: map[[32]byte]*session{}}
}

func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand never fails on Linux; it panics if it could
	return base64.RawURLEncoding.EncodeToString(b)
}

// create starts a session, dropping expired ones and, when full, the one
// that expires first.
func (ss *sessions) create() *session {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	now := ss.now()
	for k, s := range ss.m {
		if !now.Before(s.expires) {
			delete(ss.m, k)
		}
	}
	if len(ss.m) >= maxSessions {
		var oldest [32]byte
		var first time.Time
		for k, s := range ss.m {
			if first.IsZero() || s.expires.Before(first) {
				oldest, first = k, s.expires
			}
		}
		delete(ss.m, oldest)
	}
	s := &session{id: randomToken(), csrf: randomToken(), expires: now.Add(ss.ttl)}
	ss.m[sha256.Sum256([]byte(s.id))] = s
	return s
}

// get returns the request's live session, nil when it has none.
func (ss *sessions) get(r *http.Request) *session {
	c, err := r.Cookie(sessionCookie)
	if err != nil || c.Value == "" {
		return nil
	}
	key := sha256.Sum256([]byte(c.Value))
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s := ss.m[key]
	if s == nil {
		return nil
	}
	if !ss.now().Before(s.expires) {
		delete(ss.m, key)
		return nil
	}
	return s
}

func (ss *sessions) delete(s *session) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	delete(ss.m, sha256.Sum256([]byte(s.id)))
}

// setFlash keeps f for the session's next page.
func (ss *sessions) setFlash(s *session, f flash) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s.flash = &f
}

// takeFlash returns the session's flash once.
func (ss *sessions) takeFlash(s *session) *flash {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	f := s.flash
	s.flash = nil
	return f
}

// checkCSRF reports whether the form's token is the session's.
func (s *session) checkCSRF(token string) bool {
	return token != "" && subtle.ConstantTimeCompare([]byte(token), []byte(s.csrf)) == 1
}

// setCookie gives the browser the session's cookie (Secure over TLS).
func setSessionCookie(w http.ResponseWriter, r *http.Request, s *session, ttl time.Duration) {
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookie, Value: s.id, Path: "/ui",
		MaxAge: int(ttl.Seconds()), HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil,
	})
}

func clearSessionCookie(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookie, Value: "", Path: "/ui",
		MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil,
	})
}
