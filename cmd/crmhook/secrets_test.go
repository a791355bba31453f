package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/crmhook/crmhook"
	"github.com/crmhook/crmhook/config"
	"github.com/crmhook/crmhook/stdwebhooks"
	"github.com/crmhook/crmhook/store/sqlite"
	"github.com/crmhook/crmhook/subscription"

	"github.com/crmhook/crmhook/sim/affinitysim"
)

const (
	secretsRotAffSecret    = "cli-rot-affinity-path-secret-0123456789"
	secretsRotManualSecret = "cli-rot-manual-path-secret-0123456789ab"
	secretsRotStdSecret    = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
)

// secretsRotWorld is a config file with an Affinity source whose
// subscription lives on the simulator, an Affinity source without a
// subscription block (rotated by hand), a Standard Webhooks source and an
// Attio source without a subscription block; public_url answers Affinity's
// probes.
type secretsRotWorld struct {
	cfgPath, dbPath string
	hooksURL        string
	aff             *affinitysim.Server
}

func newSecretsRotWorld(t *testing.T) *secretsRotWorld {
	t.Helper()
	w := &secretsRotWorld{}
	var err error
	if w.aff, err = affinitysim.New(affinitysim.Config{}); err != nil {
		t.Fatal(err)
	}
	affSrv := httptest.NewServer(w.aff)
	t.Cleanup(affSrv.Close)
	t.Cleanup(w.aff.Close)
	hooks := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
	}))
	t.Cleanup(hooks.Close)
	w.hooksURL = hooks.URL

	dir := t.TempDir()
	w.dbPath = filepath.Join(dir, "data", "crmhook.db")
	w.cfgPath = filepath.Join(dir, "crmhook.yaml")
	cfg := `listen: 127.0.0.1:0
admin: {listen: "off"}
watchdog: off
store: sqlite://` + w.dbPath + `
public_url: ` + hooks.URL + `
sources:
  - name: aff
    provider: affinity
    secrets: [` + secretsRotAffSecret + `]
    subscription:
      api_key: ${AFFINITY_API_KEY}
      api_base_url: ` + affSrv.URL + `
      events: [person.created]
  - name: aff-manual
    provider: affinity
    secrets: [` + secretsRotManualSecret + `]
  - name: std
    provider: standard-webhooks
    secrets: [` + secretsRotStdSecret + `]
  - name: attio-manual
    provider: attio
    secrets: [attio-signing-secret]
`
	if err := os.WriteFile(w.cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return w
}

// run runs one crmhook command in-process.
func (w *secretsRotWorld) run(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errb bytes.Buffer
	env := map[string]string{"AFFINITY_API_KEY": affinitysim.DefaultAdminKey}
	root := newCLI(&out, &errb, func(k string) string { return env[k] }).rootCmd()
	root.SetArgs(args)
	err = root.ExecuteContext(context.Background())
	return out.String(), errb.String(), err
}

// rotate runs `crmhook secrets rotate SOURCE -c FILE --settle 0 --grace 1h`
// and returns its output lines and the window its RetireAt must fall in.
func (w *secretsRotWorld) rotate(t *testing.T, source string) (lines []string, from, to time.Time, err error) {
	t.Helper()
	from = time.Now().Add(time.Hour).Truncate(time.Second)
	out, errOut, err := w.run(t, "secrets", "rotate", source, "-c", w.cfgPath, "--settle", "0", "--grace", "1h")
	to = time.Now().Add(time.Hour)
	if errOut != "" {
		t.Errorf("rotate %s wrote to stderr: %s", source, errOut)
	}
	return strings.Split(strings.TrimSuffix(out, "\n"), "\n"), from, to, err
}

// secrets reads the source's stored secrets from the config's store.
func (w *secretsRotWorld) secrets(t *testing.T, source string) []crmhook.SourceSecret {
	t.Helper()
	st, err := sqlite.Open(context.Background(), sqlite.Config{Path: w.dbPath})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	s, err := st.ListSecrets(context.Background(), source)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// secretsRotActive returns the one active stored secret.
func secretsRotActive(t *testing.T, stored []crmhook.SourceSecret) string {
	t.Helper()
	var active []string
	for _, s := range stored {
		if s.State == crmhook.SecretActive {
			active = append(active, s.Secret)
		}
	}
	if len(active) != 1 {
		t.Fatalf("%d active stored secrets, want the new one", len(active))
	}
	return active[0]
}

// secretsRotRetire checks the last line, "The old secret stays accepted
// until T.", and returns T.
func secretsRotRetire(t *testing.T, line string, from, to time.Time) string {
	t.Helper()
	ts, ok := strings.CutPrefix(line, "The old secret stays accepted until ")
	ts, dot := strings.CutSuffix(ts, ".")
	at, err := time.Parse(time.RFC3339, ts)
	if !ok || !dot || err != nil || at.Before(from) || at.After(to) {
		t.Errorf("last line %q: want the retirement an hour from now (%s to %s)", line, from.Format(time.RFC3339), to.Format(time.RFC3339))
	}
	return ts
}

func TestSecretsRotateCLI(t *testing.T) {
	w := newSecretsRotWorld(t)
	if out, _, err := w.run(t, "subscriptions", "apply", "-c", w.cfgPath, "--yes"); err != nil || strings.Count(out, ": created ") != 1 {
		t.Fatalf("apply: %v\n%s", err, out)
	}
	var printed []string

	t.Run("affinity with a subscription", func(t *testing.T) {
		lines, from, to, err := w.rotate(t, "aff")
		printed = append(printed, lines...)
		if err != nil {
			t.Fatalf("rotate: %v", err)
		}
		newSecret := secretsRotActive(t, w.secrets(t, "aff"))
		newURL := w.hooksURL + "/hooks/aff/" + newSecret
		whs := w.aff.Webhooks()
		if len(whs) != 1 || whs[0].WebhookURL != newURL {
			t.Fatalf("at Affinity: %d subscriptions, want one moved to the new secret's URL", len(whs))
		}
		want := "aff's Affinity subscription now points at " + subscription.RedactURL(newURL) + "."
		if len(lines) != 2 || lines[0] != want || !strings.HasSuffix(lines[0], "/hooks/aff/….") {
			t.Fatalf("output %q, want %q and the retirement", lines, want)
		}
		secretsRotRetire(t, lines[1], from, to)
		for _, p := range w.aff.Probes() {
			if !p.OK {
				t.Errorf("probe of %s answered %d", subscription.RedactURL(p.URL), p.StatusCode)
			}
		}
	})

	t.Run("standard webhooks", func(t *testing.T) {
		lines, from, to, err := w.rotate(t, "std")
		printed = append(printed, lines...)
		if err != nil {
			t.Fatalf("rotate: %v", err)
		}
		stored := w.secrets(t, "std")
		newSecret := secretsRotActive(t, stored)
		if len(lines) != 3 || lines[0] != "New signing secret of std (shown once; give it to the sender's operator):" || lines[1] != "  "+newSecret {
			t.Fatalf("output %q, want the new secret printed once", lines)
		}
		if !strings.HasPrefix(newSecret, stdwebhooks.SecretPrefix) || newSecret == secretsRotStdSecret {
			t.Errorf("the new secret is not a fresh whsec_ secret")
		}
		retire := secretsRotRetire(t, lines[2], from, to)
		for _, s := range stored {
			if at, _ := time.Parse(time.RFC3339, retire); s.State == crmhook.SecretRetiring && (s.Secret != secretsRotStdSecret || !s.RetireAt.Truncate(time.Second).Equal(at)) {
				t.Errorf("retiring %v at %v, want the config's secret at %s", s, s.RetireAt, retire)
			}
		}
	})

	t.Run("affinity without a subscription block", func(t *testing.T) {
		lines, from, to, err := w.rotate(t, "aff-manual")
		if err != nil {
			t.Fatalf("rotate: %v", err)
		}
		newSecret := secretsRotActive(t, w.secrets(t, "aff-manual"))
		if len(lines) != 3 {
			t.Fatalf("output %q, want the new hook URL and the retirement", lines)
		}
		retire := secretsRotRetire(t, lines[2], from, to)
		if want := "New hook URL of aff-manual (move the Affinity subscription to it before " + retire + "):"; lines[0] != want {
			t.Errorf("first line %q, want %q", lines[0], want)
		}
		// The operator needs the whole URL: it is printed with its secret.
		if want := "  " + w.hooksURL + "/hooks/aff-manual/" + newSecret; lines[1] != want || len(newSecret) < config.MinPathSecretLen {
			t.Errorf("second line %q, want the new secret's hook URL", lines[1])
		}
		if n := len(w.aff.Webhooks()); n != 1 {
			t.Errorf("a manual rotation changed Affinity: %d subscriptions", n)
		}
	})

	t.Run("errors", func(t *testing.T) {
		for _, tc := range []struct{ source, want string }{
			{"nope", `no source "nope"`},
			{"attio-manual", "declare the source's subscription"},
		} {
			out, _, err := w.run(t, "secrets", "rotate", tc.source, "-c", w.cfgPath, "--settle", "0", "--grace", "1h")
			if err == nil || strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), tc.want) || out != "" {
				t.Errorf("rotate %s: %v (stdout %q), want one line saying %q", tc.source, err, out, tc.want)
			}
		}
		if s := w.secrets(t, "attio-manual"); len(s) != 0 {
			t.Errorf("a refused Attio rotation stored %d secrets", len(s))
		}
		out, _, err := w.run(t, "secrets", "rotate", "std", "-c", w.cfgPath, "--grace", "0s")
		if err == nil || strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), "grace") || out != "" {
			t.Errorf("rotate with no grace: %v (stdout %q)", err, out)
		}
	})

	// Nothing printed for an Affinity source with a subscription holds a
	// path secret, old or new.
	all := strings.Join(printed, "\n")
	for _, s := range append([]string{secretsRotAffSecret, affinitysim.DefaultAdminKey}, func() []string {
		var v []string
		for _, s := range w.secrets(t, "aff") {
			v = append(v, s.Secret)
		}
		return v
	}()...) {
		if strings.Contains(all, s) {
			t.Errorf("a secret was printed (%.6s…)", s)
		}
	}
}
