package e2e

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/crmhook/crmhook"
	"github.com/crmhook/crmhook/internal/app"
)

func (h *harness) storedEvents() []crmhook.Event {
	h.t.Helper()
	evs, err := h.run.m.Store.ListEvents(context.Background(), crmhook.EventFilter{Limit: 100000})
	if err != nil {
		h.t.Fatal(err)
	}
	return evs
}

// rawConn dials the public listener for requests written by hand.
func rawConn(t *testing.T, base string) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// serverHangsUp reads until the server closes the connection, and fails if
// the client's own deadline comes first. It returns the answer's status
// line, if the server wrote one.
func serverHangsUp(t *testing.T, conn net.Conn) string {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(15 * time.Second))
	r := bufio.NewReader(conn)
	first := ""
	for {
		line, err := r.ReadString('\n')
		if first == "" {
			first = strings.TrimSpace(line)
		}
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("the server kept a stalled connection open for 15s (read so far: %q)", first)
			}
			return first
		}
	}
}

// TestPublicListener checks the server settings of the public listener: it
// cuts off slow clients, refuses huge headers and serves only /hooks/.
func TestPublicListener(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil, cfgOpts{}, func(m *app.Main) {
		m.ServerTimeouts = app.ServerTimeouts{ReadHeader: 300 * time.Millisecond, Read: time.Second}
	})
	hookURL := h.run.hook + "/hooks/aff/" + pathSecret

	t.Run("serves nothing but hooks", func(t *testing.T) {
		for _, p := range []string{"/", "/metrics", "/healthz", "/readyz", "/api/events", "/api/stats", "/api/deliveries", "/debug/pprof/", "/hooks"} {
			for _, method := range []string{"GET", "POST"} {
				req, _ := http.NewRequest(method, h.run.hook+p, nil)
				req.Header.Set("Authorization", "Bearer "+adminToken)
				res, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				res.Body.Close()
				if res.StatusCode != http.StatusNotFound {
					t.Errorf("public %s %s: status %d, want 404", method, p, res.StatusCode)
				}
			}
		}
		// The same paths do exist, on the admin listener.
		for _, p := range []string{"/healthz", "/readyz", "/metrics"} {
			res, err := http.Get(h.run.admin + p)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != http.StatusOK {
				t.Errorf("admin GET %s: status %d, want 200", p, res.StatusCode)
			}
		}
	})

	t.Run("slow headers are cut off", func(t *testing.T) {
		conn := rawConn(t, h.run.hook)
		fmt.Fprintf(conn, "POST /hooks/aff/%s HTTP/1.1\r\nHost: x\r\nContent-Type: appl", pathSecret)
		if status := serverHangsUp(t, conn); strings.Contains(status, " 200 ") {
			t.Errorf("a request with unfinished headers was answered %q", status)
		}
	})

	t.Run("slow body is cut off", func(t *testing.T) {
		before := len(h.storedEvents())
		body, _ := affinityEvent(9001, time.Now())
		conn := rawConn(t, h.run.hook)
		fmt.Fprintf(conn, "POST /hooks/aff/%s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", pathSecret, len(body))
		conn.Write(body[:len(body)/2]) // …and the rest never comes
		if status := serverHangsUp(t, conn); strings.Contains(status, " 200 ") {
			t.Errorf("a half-sent body was answered %q", status)
		}
		if n := len(h.storedEvents()); n != before {
			t.Errorf("a half-sent body stored an event")
		}
	})

	t.Run("huge headers get 431", func(t *testing.T) {
		body, _ := affinityEvent(9002, time.Now())
		hdr := http.Header{"X-Padding": {strings.Repeat("a", app.PublicMaxHeaderBytes+8192)}}
		status, _ := post(http.DefaultClient, hookURL, body, hdr)
		if status != http.StatusRequestHeaderFieldsTooLarge {
			t.Errorf("headers over %d bytes: status %d, want 431", app.PublicMaxHeaderBytes, status)
		}
	})

	t.Run("require_https refuses plain HTTP", func(t *testing.T) {
		body, _ := affinityEvent(9003, time.Now())
		for _, hdr := range []http.Header{nil, {"X-Forwarded-Proto": {"https"}}} {
			// No trusted proxies are configured: the header proves nothing.
			if status, _ := post(http.DefaultClient, h.run.hook+"/hooks/secure/"+pathSecret, body, hdr); status != http.StatusForbidden {
				t.Errorf("plain HTTP to a require_https source (headers %v): status %d, want 403", hdr, status)
			}
		}
	})

	t.Run("admin API needs its token", func(t *testing.T) {
		for name, auth := range map[string]string{
			"no token":           "",
			"wrong token":        "Bearer " + adminToken + "x",
			"token prefix":       "Bearer " + adminToken[:len(adminToken)-1],
			"basic auth":         "Basic " + adminToken,
			"token without type": adminToken,
			"lower-case scheme":  "bearer x" + adminToken,
		} {
			for _, p := range []string{"/api/events", "/api/stats", "/api/deliveries?state=dead"} {
				req, _ := http.NewRequest("GET", h.run.admin+p, nil)
				if auth != "" {
					req.Header.Set("Authorization", auth)
				}
				res, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				res.Body.Close()
				if res.StatusCode != http.StatusUnauthorized {
					t.Errorf("%s: GET %s: status %d, want 401", name, p, res.StatusCode)
				}
			}
		}
		req, _ := http.NewRequest("POST", h.run.admin+"/api/replay", strings.NewReader(`{"all":true}`))
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusUnauthorized {
			t.Errorf("POST /api/replay without a token: status %d, want 401", res.StatusCode)
		}
		if code := adminCall(t, h.run.admin, "GET", "/api/stats", "", nil); code != http.StatusOK {
			t.Errorf("GET /api/stats with the token: status %d, want 200", code)
		}
	})

	// Only what went through the hooks route with good input is stored.
	if t.Failed() {
		return
	}
	if n := len(h.storedEvents()); n != 0 {
		t.Errorf("%d events stored by bad input, want none", n)
	}
}

// selfSigned writes a certificate for 127.0.0.1 and its key, and returns
// their paths and a pool that trusts it.
func selfSigned(t *testing.T) (certPath, keyPath string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "crmhook e2e"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certPath, keyPath = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certPath, keyPath, pool
}

// TestTLSListener serves the public listener with a self-signed certificate.
func TestTLSListener(t *testing.T) {
	t.Parallel()
	certPath, keyPath, pool := selfSigned(t)
	h := newHarness(t, nil, cfgOpts{tlsCert: certPath, tlsKey: keyPath}, nil)
	if !strings.HasPrefix(h.run.hook, "https://") {
		t.Fatalf("hook URL %q is not https", h.run.hook)
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	t.Cleanup(client.CloseIdleConnections)

	var keys []string
	for i, path := range []string{"/hooks/aff/" + pathSecret, "/hooks/secure/" + pathSecret} {
		body, key := affinityEvent(int64(100+i), time.Now())
		key = strings.Replace(key, "aff:", strings.SplitN(path, "/", 4)[2]+":", 1) // the source prefixes the dedupe key
		if status, _ := post(client, h.run.hook+path, body, nil); status != http.StatusOK {
			t.Fatalf("POST %s over TLS: status %d, want 200", strings.SplitN(path, "/", 4)[2], status)
		}
		keys = append(keys, key)
	}
	h.sink.waitDelivered(t, keys, 10*time.Second)

	// Plain HTTP to the TLS port gets no further than the TLS layer.
	plain := "http://" + strings.TrimPrefix(h.run.hook, "https://")
	body, _ := affinityEvent(200, time.Now())
	if status, _ := post(http.DefaultClient, plain+"/hooks/aff/"+pathSecret, body, nil); status == http.StatusOK {
		t.Errorf("plain HTTP to the TLS listener was acknowledged")
	}
	// A client that does not trust the certificate fails the handshake.
	if status, _ := post(&http.Client{}, h.run.hook+"/hooks/aff/"+pathSecret, body, nil); status != 0 {
		t.Errorf("an untrusted certificate was accepted (status %d)", status)
	}
	if n := len(h.storedEvents()); n != len(keys) {
		t.Errorf("%d events stored, want the %d sent over TLS", n, len(keys))
	}
}
