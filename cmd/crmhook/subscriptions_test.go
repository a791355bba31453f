package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/crmhook/crmhook"
	"github.com/crmhook/crmhook/store/sqlite"
	"github.com/crmhook/crmhook/subscription"

	"github.com/crmhook/crmhook/sim/affinitysim"
	"github.com/crmhook/crmhook/sim/attiosim"
)

const (
	subsV1Secret = "cli-v1-path-secret-0123456789abcdefgh"
	subsV2Secret = "cli-v2-path-secret-0123456789abcdefgh"
)

// subsWorld is a config file declaring an Affinity V1, an Affinity v2 and an
// Attio subscription against the simulators, with a receiver at public_url
// that answers Affinity's probes.
type subsWorld struct {
	cfgPath, dbPath string
	affURL          string
	aff             *affinitysim.Server
	att             *attiosim.Server
}

func newSubsWorld(t *testing.T) *subsWorld {
	t.Helper()
	w := &subsWorld{}
	var err error
	if w.aff, err = affinitysim.New(affinitysim.Config{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.aff.Close)
	affSrv := httptest.NewServer(w.aff)
	t.Cleanup(affSrv.Close)
	w.affURL = affSrv.URL
	if w.att, err = attiosim.New(attiosim.Config{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.att.Close)
	attSrv := httptest.NewServer(w.att)
	t.Cleanup(attSrv.Close)
	hooks := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
	}))
	t.Cleanup(hooks.Close)

	dir := t.TempDir()
	w.dbPath = filepath.Join(dir, "data", "crmhook.db")
	w.cfgPath = filepath.Join(dir, "crmhook.yaml")
	cfg := `listen: 127.0.0.1:0
admin: {listen: "off"}
watchdog: off
store: sqlite://` + w.dbPath + `
public_url: ` + hooks.URL + `
sources:
  - name: aff-v1
    provider: affinity
    secrets: [${V1_SECRET}]
    subscription:
      api_key: ${AFFINITY_API_KEY}
      api_base_url: ` + affSrv.URL + `
      events: [person.created]
  - name: aff-v2
    provider: affinity
    secrets: [` + subsV2Secret + `]
    subscription:
      api: v2
      api_key: ${AFFINITY_API_KEY}
      api_base_url: ` + affSrv.URL + `
  - name: attio
    provider: attio
    secrets: [attio-config-secret]
    subscription:
      api_key: ${ATTIO_API_KEY}
      api_base_url: ` + attSrv.URL + `/v2
      events:
        - type: list-entry.created
          filter: {"$and": [{"field": "id.list_id", "operator": "equals", "value": "deals"}]}
`
	if err := os.WriteFile(w.cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return w
}

var subsEnv = map[string]string{
	"V1_SECRET":        subsV1Secret,
	"AFFINITY_API_KEY": affinitysim.DefaultAdminKey,
	"ATTIO_API_KEY":    attiosim.DefaultToken,
}

// runSubsCLI runs one command in-process with stdin.
func runSubsCLI(t *testing.T, stdin io.Reader, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errb bytes.Buffer
	root := newCLI(&out, &errb, func(k string) string { return subsEnv[k] }).rootCmd()
	root.SetIn(stdin)
	root.SetArgs(args)
	err = root.ExecuteContext(context.Background())
	return out.String(), errb.String(), err
}

func TestSubscriptionsCLIPlanApplyStatus(t *testing.T) {
	w := newSubsWorld(t)
	var outputs []string
	run := func(stdin io.Reader, args ...string) (string, error) {
		t.Helper()
		out, errOut, err := runSubsCLI(t, stdin, args...)
		outputs = append(outputs, out, errOut)
		if err != nil {
			outputs = append(outputs, err.Error())
		}
		return out, err
	}

	out, err := run(nil, "subscriptions", "plan", "-c", w.cfgPath)
	if err != nil {
		t.Fatalf("plan: %v", err)
	}
	for _, want := range []string{"SOURCE", "ACTION", "ID", "STATUS", "CHANGES", "aff-v1", "create", "missing", "events: +person.created", "events: all", "events: +list-entry.created", "Plan: 3 to create."} {
		if !strings.Contains(out, want) {
			t.Errorf("plan output lacks %q:\n%s", want, out)
		}
	}
	out, err = run(nil, "subscriptions", "plan", "--config", w.cfgPath, "--json")
	var p subscription.Plan
	if err != nil || json.Unmarshal([]byte(out), &p) != nil || len(p.Steps) != 3 || p.Steps[0].Action != subscription.ActionCreate || p.Steps[0].Status != subscription.StatusMissing {
		t.Fatalf("plan --json: %v\n%s", err, out)
	}

	// Without --yes and without a terminal: refused, one line, nothing done.
	_, err = run(strings.NewReader("yes\n"), "subscriptions", "apply", "-c", w.cfgPath)
	if err == nil || strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), "--yes") {
		t.Fatalf("apply without --yes: %v", err)
	}
	if len(w.aff.Webhooks())+len(w.att.Webhooks()) != 0 {
		t.Fatal("apply without --yes changed something")
	}

	out, err = run(nil, "subscriptions", "apply", "-c", w.cfgPath, "--yes")
	if err != nil {
		t.Fatalf("apply --yes: %v\n%s", err, out)
	}
	if n := strings.Count(out, ": created "); n != 3 {
		t.Fatalf("apply output names %d creations, want 3:\n%s", n, out)
	}
	if len(w.aff.Webhooks()) != 2 || len(w.att.Webhooks()) != 1 {
		t.Fatalf("after apply: %d Affinity, %d Attio", len(w.aff.Webhooks()), len(w.att.Webhooks()))
	}
	out, err = run(nil, "subscriptions", "apply", "-c", w.cfgPath)
	if err != nil || !strings.Contains(out, "No changes") {
		t.Fatalf("second apply (nothing to confirm): %v\n%s", err, out)
	}
	out, err = run(nil, "subscriptions", "plan", "-c", w.cfgPath)
	if err != nil || !strings.Contains(out, "No changes") || strings.Count(out, " ok ") != 3 {
		t.Fatalf("plan after apply: %v\n%s", err, out)
	}

	// A gap the watchdog recorded shows in the status.
	st, err := sqlite.Open(context.Background(), sqlite.Config{Path: w.dbPath})
	if err != nil {
		t.Fatal(err)
	}
	from := time.Date(2030, 1, 2, 3, 0, 0, 0, time.UTC)
	_, err = st.RecordGap(context.Background(), crmhook.Gap{Source: "aff-v1", SubscriptionID: "1001", From: from, To: from.Add(time.Hour), RecordedAt: from.Add(time.Hour)})
	st.Close()
	if err != nil {
		t.Fatal(err)
	}

	out, err = run(nil, "subscriptions", "status", "-c", w.cfgPath)
	if err != nil {
		t.Fatalf("status: %v", err)
	}
	for _, want := range []string{"LAST CHECK", "LAST EVENT", "GAPS", "aff-v1", "aff-v2", "attio", "active", w.att.Webhooks()[0].ID.WebhookID, "1 (last 2030-01-02T03:00:00Z–2030-01-02T04:00:00Z)"} {
		if !strings.Contains(out, want) {
			t.Errorf("status output lacks %q:\n%s", want, out)
		}
	}
	out, err = run(nil, "subscriptions", "status", "-c", w.cfgPath, "--json")
	var rows []struct {
		Source         string              `json:"source"`
		SubscriptionID string              `json:"subscription_id"`
		Status         subscription.Status `json:"status"`
		Gaps           []struct {
			SubscriptionID string    `json:"subscription_id"`
			From           time.Time `json:"from"`
			To             time.Time `json:"to"`
		} `json:"gaps"`
	}
	if err != nil || json.Unmarshal([]byte(out), &rows) != nil || len(rows) != 3 {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
	for _, r := range rows {
		if r.Status != subscription.StatusActive || r.SubscriptionID == "" || r.Gaps == nil {
			t.Errorf("status row %+v", r)
		}
	}
	if g := rows[0].Gaps; rows[0].Source != "aff-v1" || len(g) != 1 || !g[0].From.Equal(from) || g[0].SubscriptionID != "1001" {
		t.Errorf("aff-v1 gaps %+v", rows[0])
	}

	// Nothing printed holds a secret: the path secrets, or the Attio
	// secret apply stored.
	st, err = sqlite.Open(context.Background(), sqlite.Config{Path: w.dbPath})
	if err != nil {
		t.Fatal(err)
	}
	stored, err := st.ListSecrets(context.Background(), "attio")
	st.Close()
	if err != nil || len(stored) != 1 {
		t.Fatalf("stored attio secrets: %d %v", len(stored), err)
	}
	all := strings.Join(outputs, "\n")
	for _, secret := range []string{subsV1Secret, subsV2Secret, stored[0].Secret, affinitysim.DefaultAdminKey, attiosim.DefaultToken} {
		if strings.Contains(all, secret) {
			t.Errorf("a secret was printed (%.6s…)", secret)
		}
	}
}

func TestSubscriptionsCLIApplyAsksOnATerminal(t *testing.T) {
	w := newSubsWorld(t)
	defer func(f func(io.Reader) bool) { stdinIsTerminal = f }(stdinIsTerminal)
	stdinIsTerminal = func(io.Reader) bool { return true }

	out, _, err := runSubsCLI(t, strings.NewReader("n\n"), "subscriptions", "apply", "-c", w.cfgPath)
	if err == nil || !strings.Contains(err.Error(), "cancelled") || !strings.Contains(out, "Apply these changes? [y/N]") {
		t.Fatalf("answered no: %v\n%s", err, out)
	}
	if len(w.aff.Webhooks())+len(w.att.Webhooks()) != 0 {
		t.Fatal("a cancelled apply changed something")
	}
	out, _, err = runSubsCLI(t, strings.NewReader("yes\n"), "subscriptions", "apply", "-c", w.cfgPath, "--prune")
	if err != nil || strings.Count(out, ": created ") != 3 {
		t.Fatalf("answered yes: %v\n%s", err, out)
	}
}

func TestSubscriptionsCLIErrors(t *testing.T) {
	w := newSubsWorld(t)
	// No config: one line saying how to give one.
	_, _, err := runSubsCLI(t, nil, "subscriptions", "plan", "-c", filepath.Join(t.TempDir(), "missing.yaml"))
	if err == nil || strings.Contains(err.Error(), "\n") {
		t.Fatalf("missing config: %v", err)
	}
	// Affinity is full: apply refuses in one line naming what exists.
	hooks := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer hooks.Close()
	c := &http.Client{}
	for _, path := range []string{"/one", "/two", "/three"} {
		body := strings.NewReader(`{"webhook_url":"` + hooks.URL + path + `"}`)
		req, _ := http.NewRequest(http.MethodPost, w.affURL+"/webhook/subscribe", body)
		req.SetBasicAuth("", affinitysim.DefaultAdminKey)
		req.Header.Set("Content-Type", "application/json")
		resp, err := c.Do(req)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("create a subscription: %v %v", err, resp)
		}
		resp.Body.Close()
	}
	out, _, err := runSubsCLI(t, nil, "subscriptions", "apply", "-c", w.cfgPath, "--yes")
	if err == nil || strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), "allows 3") || !strings.Contains(err.Error(), "/three") {
		t.Fatalf("apply over the limit: %v", err)
	}
	if strings.Contains(out, ": created ") || len(w.aff.Webhooks()) != 3 || len(w.att.Webhooks()) != 0 {
		t.Fatalf("apply over the limit changed something:\n%s", out)
	}
}
