package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/crmhook/crmhook/attio"
	"github.com/crmhook/crmhook/sim/attiosim"
)

// simAttioSyncBuffer is a bytes.Buffer safe to write from the simulator's
// goroutines while the test reads it.
type simAttioSyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *simAttioSyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *simAttioSyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

var simAttioListenLine = regexp.MustCompile(`attio simulator listening on (http://\S+)`)

// simAttioRunning is `crmhook sim attio` running in-process.
type simAttioRunning struct {
	url    string
	stdout *simAttioSyncBuffer
	stderr *simAttioSyncBuffer
	cancel context.CancelFunc
	done   chan error
}

// startSimAttio runs `crmhook sim attio --addr 127.0.0.1:0 args…` and waits
// for it to print where it listens. It is stopped when the test ends.
func startSimAttio(t *testing.T, args ...string) *simAttioRunning {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &simAttioRunning{
		stdout: &simAttioSyncBuffer{},
		stderr: &simAttioSyncBuffer{},
		cancel: cancel,
		done:   make(chan error, 1),
	}
	go func() {
		r.done <- newCLI(r.stdout, r.stderr, func(string) string { return "" }).
			run(ctx, append([]string{"sim", "attio", "--addr", "127.0.0.1:0"}, args...))
	}()
	t.Cleanup(func() { r.stop(t) })

	deadline := time.Now().Add(10 * time.Second)
	for {
		if m := simAttioListenLine.FindStringSubmatch(r.stdout.String()); m != nil {
			r.url = m[1]
			return r
		}
		select {
		case err := <-r.done:
			r.done <- err
			t.Fatalf("sim attio exited before listening: %v; stderr: %s", err, r.stderr.String())
		case <-time.After(5 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("sim attio printed no listen line; stdout: %q", r.stdout.String())
		}
	}
}

// stop cancels the command's context and returns what it returned.
func (r *simAttioRunning) stop(t *testing.T) error {
	t.Helper()
	r.cancel()
	select {
	case err := <-r.done:
		r.done <- err // stop may be called again by the cleanup
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("sim attio did not stop within 10s of its context being cancelled")
		return nil
	}
}

// runSimAttioCLI runs one crmhook command line to completion.
func runSimAttioCLI(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out, errb bytes.Buffer
	err = newCLI(&out, &errb, func(string) string { return "" }).run(ctx, args)
	return out.String(), errb.String(), err
}

// simAttioReceiver is a local webhook receiver that records every delivery.
type simAttioReceiver struct {
	srv *httptest.Server
	mu  sync.Mutex
	got []simAttioReceived
}

type simAttioReceived struct {
	header http.Header
	body   []byte
}

func newSimAttioReceiver(t *testing.T) *simAttioReceiver {
	rc := &simAttioReceiver{}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		rc.got = append(rc.got, simAttioReceived{header: r.Header.Clone(), body: body})
		rc.mu.Unlock()
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *simAttioReceiver) received() []simAttioReceived {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]simAttioReceived(nil), rc.got...)
}

// The newcomer's path: start the simulator, create a filtered webhook with
// the CLI as its ready-made line suggests, trigger matching and
// non-matching events, and check that only the matching ones arrive, signed
// with the secret the create command printed.
func TestSimAttioCLINewcomerFlow(t *testing.T) {
	sim := startSimAttio(t)
	out := sim.stdout.String()
	for _, want := range []string{
		"API root: " + sim.url + "/v2",
		"token:    " + attiosim.DefaultToken,
		"crmhook attio webhooks create --base-url " + sim.url + "/v2 --api-key " + attiosim.DefaultToken,
		"crmhook sim attio trigger record.created --sim-url " + sim.url,
	} {
		if !strings.Contains(out, want) {
			t.Fatalf("startup output lacks %q:\n%s", want, out)
		}
	}

	rc := newSimAttioReceiver(t)
	target := rc.srv.URL + "/hooks/attio"
	stdout, stderr, err := runSimAttioCLI(t, "attio", "webhooks", "create",
		"--base-url", sim.url+"/v2", "--api-key", attiosim.DefaultToken,
		"--url", target, "--event", "list-entry.created",
		"--where", "id.list_id="+attiosim.SampleListID, "--json")
	if err != nil {
		t.Fatalf("create: %v\n%s", err, stderr)
	}
	var created attio.Webhook
	if err := json.Unmarshal([]byte(stdout), &created); err != nil {
		t.Fatalf("create --json printed %q: %v", stdout, err)
	}
	if created.Secret == "" || created.Subscriptions[0].Filter.String() != "id.list_id="+attiosim.SampleListID {
		t.Fatalf("created = %+v", created)
	}

	// Matching: the sample list-entry.created is on the sample list.
	stdout, _, err = runSimAttioCLI(t, "sim", "attio", "trigger", "list-entry.created", "--sim-url", sim.url)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stdout, "sent to 1 webhook(s)") || !strings.Contains(stdout, created.ID.WebhookID) || !strings.Contains(stdout, "delivered") {
		t.Fatalf("matching trigger printed:\n%s", stdout)
	}
	// Not matching: another list, given as a merge patch in a file.
	otherList := filepath.Join(t.TempDir(), "other-list.json")
	if err := os.WriteFile(otherList, []byte(`{"id":{"list_id":"5e1b8a3c-0000-4000-8000-00000000beef"}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	stdout, _, err = runSimAttioCLI(t, "sim", "attio", "trigger", "list-entry.created", "--event", otherList, "--sim-url", sim.url)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stdout, "nothing was sent") {
		t.Fatalf("non-matching trigger printed:\n%s", stdout)
	}
	// Not subscribed at all.
	if stdout, _, err = runSimAttioCLI(t, "sim", "attio", "trigger", "record.created", "--sim-url", sim.url); err != nil || !strings.Contains(stdout, "nothing was sent") {
		t.Fatalf("unsubscribed trigger: %v\n%s", err, stdout)
	}

	got := rc.received() // each trigger waited for its first attempt
	if len(got) != 1 {
		t.Fatalf("receiver got %d deliveries, want only the matching one", len(got))
	}
	if err := attio.Verify(got[0].body, got[0].header, []string{created.Secret}); err != nil {
		t.Fatalf("delivery does not verify with the secret from create: %v", err)
	}
	d, err := attio.ParseDelivery(got[0].body)
	if err != nil {
		t.Fatal(err)
	}
	entry, err := attio.DecodeID[attio.ListEntryID](d.Events[0])
	if err != nil {
		t.Fatal(err)
	}
	if d.WebhookID != created.ID.WebhookID || entry.ListID != attiosim.SampleListID {
		t.Fatalf("delivered %s for webhook %s", got[0].body, d.WebhookID)
	}

	// The delivery log shows the attempt, without secret or target URL.
	stdout, _, err = runSimAttioCLI(t, "sim", "attio", "deliveries", "--sim-url", sim.url)
	if err != nil {
		t.Fatal(err)
	}
	key := got[0].header.Get(attio.HeaderIdempotencyKey)
	if !strings.Contains(stdout, "IDEMPOTENCY-KEY") || !strings.Contains(stdout, key) || !strings.Contains(stdout, "list-entry.created") {
		t.Fatalf("deliveries printed:\n%s", stdout)
	}
	stdout, _, err = runSimAttioCLI(t, "sim", "attio", "deliveries", "--json", "--sim-url", sim.url)
	if err != nil {
		t.Fatal(err)
	}
	var log []attiosim.Delivery
	if err := json.Unmarshal([]byte(stdout), &log); err != nil || len(log) != 1 || log[0].IdempotencyKey != key || !log[0].OK {
		t.Fatalf("deliveries --json = %s (%v)", stdout, err)
	}
	if strings.Contains(stdout, created.Secret) || strings.Contains(stdout, target) {
		t.Fatal("the delivery log shows the secret or the target URL")
	}
	if strings.Contains(sim.stderr.String(), created.Secret) {
		t.Fatal("the simulator logged the secret")
	}

	if err := sim.stop(t); err != nil {
		t.Fatalf("sim attio returned %v on cancel, want nil", err)
	}
}

func TestSimAttioCLITokenAndTimeScale(t *testing.T) {
	sim := startSimAttio(t, "--token", "my-local-token", "--time-scale", "1e6")
	if !strings.Contains(sim.stdout.String(), "--api-key my-local-token") {
		t.Fatalf("startup output does not use the token:\n%s", sim.stdout.String())
	}
	// The default token is refused; the given one works.
	_, _, err := runSimAttioCLI(t, "attio", "webhooks", "list", "--base-url", sim.url+"/v2", "--api-key", attiosim.DefaultToken)
	if !errors.Is(err, attio.ErrUnauthorized) {
		t.Fatalf("default token: %v, want ErrUnauthorized", err)
	}

	var failing http.HandlerFunc = func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusInternalServerError) }
	down := httptest.NewServer(failing)
	t.Cleanup(down.Close)
	if _, stderr, err := runSimAttioCLI(t, "attio", "webhooks", "create", "--base-url", sim.url+"/v2", "--api-key", "my-local-token",
		"--url", down.URL, "--event", "task.created"); err != nil {
		t.Fatalf("create: %v\n%s", err, stderr)
	}
	stdout, _, err := runSimAttioCLI(t, "sim", "attio", "trigger", "task.created", "--sim-url", sim.url)
	if err != nil || !strings.Contains(stdout, "failed, will retry") {
		t.Fatalf("trigger to a failing receiver: %v\n%s", err, stdout)
	}
	// At 1e6 the ~3 day schedule takes about a quarter of a second: poll
	// the log until the webhook has been given up on.
	deadline := time.Now().Add(15 * time.Second)
	for {
		stdout, _, err = runSimAttioCLI(t, "sim", "attio", "deliveries", "--sim-url", sim.url)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(stdout, "gave up") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no give-up in the log:\n%s", stdout)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := strings.Count(stdout, "task.created"); n != 11 {
		t.Fatalf("log has %d attempts, want 11:\n%s", n, stdout)
	}
	// Degraded; or already inactive if this machine took over 0.6 real
	// seconds (7 simulated days) to get here. The exact transition is
	// tested with a frozen clock in package attiosim.
	stdout, _, err = runSimAttioCLI(t, "attio", "webhooks", "list", "--base-url", sim.url+"/v2", "--api-key", "my-local-token")
	if err != nil || !(strings.Contains(stdout, "degraded") || strings.Contains(stdout, "inactive")) {
		t.Fatalf("list after give-up: %v\n%s", err, stdout)
	}
}
