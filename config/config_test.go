package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/crmhook/crmhook"
	"github.com/crmhook/crmhook/receiver"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

const secret32 = "abcdefghijklmnopqrstuvwxyz012345"

func TestParseExpandsEnvAndDefaults(t *testing.T) {
	yml := `
listen: 0.0.0.0:9000
sources:
  - name: affinity
    provider: affinity
    secrets: ["${AFF_SECRET}"]
  - name: attio
    provider: attio
    secrets: ["${ATTIO_SECRET}", "${OLD:-fallback-secret}"]
    body_limit: 64KiB
sinks:
  - name: out
    type: file
    path: "-"
    types: ["person.*"]
`
	c, err := Parse([]byte(yml), env(map[string]string{"AFF_SECRET": secret32, "ATTIO_SECRET": "s3cr#t: {x}"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Sources[0].Secrets[0] != secret32 {
		t.Errorf("affinity secret = %q", c.Sources[0].Secrets[0])
	}
	// A value with YAML-special characters stays data.
	if got := c.Sources[1].Secrets; got[0] != "s3cr#t: {x}" || got[1] != "fallback-secret" {
		t.Errorf("attio secrets = %q", got)
	}
	if c.Sources[1].BodyLimit != 64<<10 {
		t.Errorf("body_limit = %d", c.Sources[1].BodyLimit)
	}
	if c.Sources[0].BodyLimit != DefaultBodyLimit || c.Sources[0].ReplayWindow.MaxAge != 12*time.Hour {
		t.Errorf("affinity defaults: %+v", c.Sources[0])
	}
	if c.Sources[1].ReplayWindow.MaxAge != 5*time.Minute {
		t.Errorf("attio replay default: %+v", c.Sources[1].ReplayWindow)
	}
	if c.Listen != "0.0.0.0:9000" || c.Admin.Listen != DefaultAdminListen || c.Store != "sqlite://.crmhook/crmhook.db" {
		t.Errorf("listeners/store: %q %q %q", c.Listen, c.Admin.Listen, c.Store)
	}
	if c.Sinks[0].Concurrency != 4 || !c.Sinks[0].Filter().Match(&crmhook.Event{Type: "person.created"}) {
		t.Errorf("sink defaults: %+v", c.Sinks[0])
	}
}

func TestParseErrorsNameTheField(t *testing.T) {
	cases := []struct {
		name, yml, want string
		env             map[string]string
	}{
		{"unset env", `sources: [{name: a, provider: affinity, secrets: ["${NOPE}"]}]`, "NOPE is not set", nil},
		{"unknown key", "sources: []\nlisten_addr: x\n", "field listen_addr not found", nil},
		{"short path secret", `sources: [{name: a, provider: affinity, secrets: ["short"]}]`, "sources[0].secrets[0]: path secret is 5 characters", nil},
		{"non url-safe", `sources: [{name: a, provider: affinity, secrets: ["` + secret32 + `/"]}]`, "sources[0].secrets[0]: path secret must use only URL-safe", nil},
		{"no sources", `listen: 127.0.0.1:1`, "sources: at least one source", nil},
		{"bad provider", `sources: [{name: a, provider: hubspot, secrets: [x]}]`, `sources[0].provider: "hubspot"`, nil},
		{"dedupe shorter than replay", "dedupe_window: 1h\nsources: [{name: a, provider: affinity, secrets: [\"" + secret32 + "\"]}]", "dedupe_window: 1h0m0s must be longer than sources[0].replay_window.max_age (12h0m0s)", nil},
		{"duplicate source", "sources: [{name: a, provider: attio, secrets: [x]}, {name: a, provider: attio, secrets: [y]}]", `sources[1].name: duplicate source name "a"`, nil},
		{"bad cidr", "sources: [{name: a, provider: attio, secrets: [x], allow_ips: [10.0.0.0/33]}]", "sources[0].allow_ips[0]", nil},
		{"bad sink type", "sources: [{name: a, provider: attio, secrets: [x]}]\nsinks: [{name: s, type: kafka}]", `sinks[0].type: "kafka"`, nil},
		{"http sink without url", "sources: [{name: a, provider: attio, secrets: [x]}]\nsinks: [{name: s, type: http}]", "sinks[0].url", nil},
		{"timeout vs lease", "delivery: {lease: 10s}\nsources: [{name: a, provider: attio, secrets: [x]}]\nsinks: [{name: s, type: http, url: 'http://x', timeout: 9s}]", "sinks[0].timeout", nil},
		{"bad size", "sources: [{name: a, provider: attio, secrets: [x], body_limit: 1TB}]", "invalid size", nil},
		{"bad store", "store: mysql://u:pw@h/db\nsources: [{name: a, provider: attio, secrets: [x]}]", "store: unsupported store URL scheme", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yml), env(tc.env))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v\nwant it to contain %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "pw@") {
				t.Fatalf("error leaks a password: %v", err)
			}
		})
	}
}

func TestDollarEscape(t *testing.T) {
	c, err := Parse([]byte(`sources: [{name: a, provider: attio, secrets: ["pa$$word"]}]`), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.Sources[0].Secrets[0] != "pa$word" {
		t.Fatalf("got %q", c.Sources[0].Secrets[0])
	}
}

func TestParseByteSize(t *testing.T) {
	for in, want := range map[string]ByteSize{"1048576": 1 << 20, "1MiB": 1 << 20, "512 KiB": 512 << 10, "2MB": 2e6, "10B": 10} {
		if got, err := ParseByteSize(in); err != nil || got != want {
			t.Errorf("%q = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "-1", "1.5MiB", "lots", "99999999GiB"} {
		if _, err := ParseByteSize(in); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
}

// TestReplayWindow covers, for each provider kind: both sides set, only one
// set (the other keeps its own default), off (two spellings), defaults, and
// the refusals: a zero or negative side, and off together with a side.
func TestReplayWindow(t *testing.T) {
	secrets := map[crmhook.Provider]string{
		crmhook.ProviderAffinity:         secret32,
		crmhook.ProviderAttio:            "attio-signing-secret",
		crmhook.ProviderStandardWebhooks: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
	}
	for _, p := range []crmhook.Provider{crmhook.ProviderAffinity, crmhook.ProviderAttio, crmhook.ProviderStandardWebhooks} {
		def := receiver.DefaultReplayWindow(p)
		for _, tc := range []struct {
			name, window string
			want         ReplayWindow
			err          string
		}{
			{name: "defaults", window: "", want: ReplayWindow{MaxAge: def.MaxAge, MaxFuture: def.MaxFuture}},
			{name: "both set", window: "{max_age: 1h, max_future: 30s}", want: ReplayWindow{MaxAge: time.Hour, MaxFuture: 30 * time.Second}},
			{name: "only max_future", window: "{max_future: 1m}", want: ReplayWindow{MaxAge: def.MaxAge, MaxFuture: time.Minute}},
			{name: "only max_age", window: "{max_age: 2h}", want: ReplayWindow{MaxAge: 2 * time.Hour, MaxFuture: def.MaxFuture}},
			{name: "disabled", window: "{disabled: true}", want: ReplayWindow{Disabled: true}},
			{name: "off", window: "off", want: ReplayWindow{Disabled: true}},
			{name: "zero is not off", window: "{max_age: 0s}", err: "replay_window.max_age must be positive"},
			{name: "negative", window: "{max_future: -1m}", err: "replay_window.max_future must be positive"},
			{name: "off and a side", window: "{disabled: true, max_age: 1h}", err: "choose one"},
			{name: "a word", window: "never", err: "neither off nor a mapping"},
		} {
			t.Run(string(p)+"/"+tc.name, func(t *testing.T) {
				yml := "sources:\n  - {name: s, provider: " + string(p) + ", secrets: [\"" + secrets[p] + "\"]"
				if tc.window != "" {
					yml += ", replay_window: " + tc.window
				}
				yml += "}\n"
				c, err := Parse([]byte(yml), env(nil))
				if tc.err != "" {
					if err == nil || !strings.Contains(err.Error(), tc.err) {
						t.Fatalf("err = %v, want one containing %q", err, tc.err)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				if got := c.Sources[0].ReplayWindow; got != tc.want {
					t.Errorf("replay_window = %+v, want %+v", got, tc.want)
				}
			})
		}
	}
}

// TestDeliveryGiveUpAfterAlias: the retry budget's key is give_up_after; the
// old max_age still works and is reported deprecated; both at once is an error.
func TestDeliveryGiveUpAfterAlias(t *testing.T) {
	src := "sources:\n  - {name: s, provider: affinity, secrets: [\"" + secret32 + "\"]}\n"
	c, err := Parse([]byte(src+"delivery: {give_up_after: 5h}\n"), env(nil))
	if err != nil || c.Delivery.GiveUpAfter != 5*time.Hour || len(c.Deprecations) != 0 {
		t.Fatalf("give_up_after: %+v %v %v", c.Delivery, c.Deprecations, err)
	}
	c, err = Parse([]byte(src+"delivery: {max_age: 6h, max_attempts: 3}\n"), env(nil))
	if err != nil || c.Delivery.GiveUpAfter != 6*time.Hour || c.Delivery.MaxAttempts != 3 {
		t.Fatalf("max_age alias: %+v %v", c.Delivery, err)
	}
	if len(c.Deprecations) != 1 || !strings.Contains(c.Deprecations[0], "give_up_after") {
		t.Errorf("deprecations = %q", c.Deprecations)
	}
	if _, err := Parse([]byte(src+"delivery: {max_age: 6h, give_up_after: 5h}\n"), env(nil)); err == nil || !strings.Contains(err.Error(), "set only give_up_after") {
		t.Errorf("both keys: %v", err)
	}
	c, err = Parse([]byte(src), env(nil))
	if err != nil || c.Delivery.GiveUpAfter != 72*time.Hour {
		t.Errorf("default give_up_after: %+v %v", c.Delivery, err)
	}
}

func TestAffinityRefusesPathSecrets(t *testing.T) {
	yml := "sources:\n  - {name: a, provider: affinity, secrets: [\"" + secret32 + "\"], path_secrets: [\"" + secret32 + "\"]}\n"
	if _, err := Parse([]byte(yml), env(nil)); err == nil || !strings.Contains(err.Error(), "sources[0].path_secrets") {
		t.Fatalf("err = %v, want one naming sources[0].path_secrets", err)
	}
}

func TestParseStoreURL(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want StoreURL
		err  string
	}{
		{in: "sqlite://.crmhook/crmhook.db", want: StoreURL{Driver: "sqlite", Path: ".crmhook/crmhook.db"}},
		{in: "sqlite:///var/lib/crmhook/c.db", want: StoreURL{Driver: "sqlite", Path: "/var/lib/crmhook/c.db"}},
		{in: "sqlite:c.db", want: StoreURL{Driver: "sqlite", Path: "c.db"}},
		{in: "/tmp/plain.db", want: StoreURL{Driver: "sqlite", Path: "/tmp/plain.db"}},
		{in: "postgres://u:pw@db:5432/crmhook?sslmode=disable", want: StoreURL{Driver: "postgres", URL: "postgres://u:pw@db:5432/crmhook?sslmode=disable"}},
		{in: "postgresql://db/crmhook", want: StoreURL{Driver: "postgres", URL: "postgresql://db/crmhook"}},
		{in: "mysql://u:hunter2@db/x", err: "unsupported store URL scheme"},
		{in: "sqlite://", err: "names no file"},
		{in: "", err: "no store URL"},
	} {
		got, err := ParseStoreURL(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) || strings.Contains(err.Error(), "hunter2") {
				t.Errorf("%q: err %v, want %q without the password", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%q: %+v %v, want %+v", tc.in, got, err, tc.want)
		}
	}
}

// TestSubscriptionBlock reads the documented example and refuses what a
// provider would refuse, naming the field.
func TestSubscriptionBlock(t *testing.T) {
	yml := `
public_url: https://hooks.example.com/
watchdog: {interval: 5m, repair: true}
sources:
  - name: affinity
    provider: affinity
    secrets: [${AFFINITY_PATH_SECRET}]
    subscription: {api: v2, events: [person.created, organization.merged], api_key: ${AFFINITY_API_KEY}}
  - name: aff-v1
    provider: affinity
    secrets: [${AFFINITY_PATH_SECRET}]
    subscription: {api_key: k}
  - name: attio
    provider: attio
    secrets: [s]
    subscription:
      api_key: ${ATTIO_API_KEY}
      api_base_url: http://127.0.0.1:7702/v2
      events:
        - record.created
        - {type: list-entry.created, filter: {$and: [{field: id.list_id, operator: equals, value: "l-1"}]}}
`
	c, err := Parse([]byte(yml), env(map[string]string{"AFFINITY_PATH_SECRET": secret32, "AFFINITY_API_KEY": "ak", "ATTIO_API_KEY": "tk"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.PublicURL != "https://hooks.example.com" || c.HookURL("affinity", "p") != "https://hooks.example.com/hooks/affinity/p" || c.HookURL("attio", "") != "https://hooks.example.com/hooks/attio" {
		t.Errorf("public URL %q, hook URLs %q", c.PublicURL, c.HookURL("affinity", "p"))
	}
	if c.Watchdog.Interval != 5*time.Minute || !c.Watchdog.Repairs() || c.Watchdog.Off {
		t.Errorf("watchdog %+v", c.Watchdog)
	}
	aff := c.Sources[0].Subscription
	if aff.API != "v2" || aff.APIKey != "ak" || len(aff.Events) != 2 || aff.Events[1].Type != "organization.merged" {
		t.Errorf("affinity subscription %+v", aff)
	}
	if c.Sources[1].Subscription.API != "v1" || len(c.Sources[1].Subscription.Events) != 0 {
		t.Errorf("affinity v1 default, all events: %+v", c.Sources[1].Subscription)
	}
	at := c.Sources[2].Subscription
	if len(at.Events) != 2 || at.Events[0].Filter != nil || at.Events[1].Type != "list-entry.created" ||
		string(at.Events[1].Filter) != `{"$and":[{"field":"id.list_id","operator":"equals","value":"l-1"}]}` {
		t.Errorf("attio subscription %+v %s", at, at.Events[1].Filter)
	}

	for _, tc := range []struct{ yml, field string }{
		{"sources:\n  - {name: a, provider: affinity, secrets: [\"" + secret32 + "\"], subscription: {api_key: k}}\n", "public_url"},
		{"public_url: https://h\nsources:\n  - {name: a, provider: affinity, secrets: [\"" + secret32 + "\"], subscription: {api: v3, api_key: k}}\n", "sources[0].subscription.api"},
		{"public_url: https://h\nsources:\n  - {name: a, provider: affinity, secrets: [\"" + secret32 + "\"], subscription: {}}\n", "sources[0].subscription.api_key"},
		{"public_url: https://h\nsources:\n  - {name: a, provider: attio, secrets: [s], subscription: {api_key: k}}\n", "sources[0].subscription.events"},
		{"public_url: https://h\nsources:\n  - {name: a, provider: attio, secrets: [s], subscription: {api_key: k, events: [{type: record.created, filter: {$xor: []}}]}}\n", "sources[0].subscription.events[0].filter"},
		{"public_url: https://h\nsources:\n  - {name: a, provider: standard-webhooks, secrets: [s], subscription: {api_key: k}}\n", "sources[0].subscription"},
		{"public_url: ftp://h\nsources:\n  - {name: a, provider: attio, secrets: [s]}\n", "public_url"},
		{"watchdog: {interval: 10ms}\nsources:\n  - {name: a, provider: attio, secrets: [s]}\n", "watchdog.interval"},
	} {
		if _, err := Parse([]byte(tc.yml), env(nil)); err == nil || !strings.Contains(err.Error(), tc.field+":") {
			t.Errorf("%s: err = %v, want one naming %s", tc.yml, err, tc.field)
		}
	}
	c, err = Parse([]byte("watchdog: off\nsources:\n  - {name: a, provider: attio, secrets: [s]}\n"), env(nil))
	if err != nil || !c.Watchdog.Off || c.Watchdog.Interval != 0 {
		t.Errorf("watchdog: off: %+v %v", c.Watchdog, err)
	}
}

// TestDocumentedConfigsParse parses every YAML block of the README and the
// docs that holds a sources list, with every ${VAR} set: a config copied
// from the docs must work, flow sequences like `secrets: [${SECRET}]`
// included.
func TestDocumentedConfigsParse(t *testing.T) {
	files, _ := filepath.Glob("../docs/*.md")
	files = append(files, "../README.md")
	getenv := func(k string) string {
		if strings.Contains(k, "WHSEC") {
			return "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
		}
		return strings.Repeat("x", 40)
	}
	n := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, block := range strings.Split(string(b), "```yaml")[1:] {
			block = block[:strings.Index(block, "```")]
			if !strings.Contains(block, "sources:") {
				continue
			}
			n++
			if _, err := Parse([]byte(block), getenv); err != nil {
				t.Errorf("%s: a documented config does not parse: %v\n%s", f, err, block)
			}
		}
	}
	if n == 0 {
		t.Fatal("no documented config found")
	}
}

func TestEnvReferencesInFlowSequencesAndComments(t *testing.T) {
	yml := "# ${UNSET_IN_COMMENT} is never expanded\nsources:\n  - {name: a, provider: attio, secrets: [${S1}, \"pre-${S2}-post\", $$literal]}\n"
	c, err := Parse([]byte(yml), env(map[string]string{"S1": "one: {two}", "S2": "mid"}))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Sources[0].Secrets; len(got) != 3 || got[0] != "one: {two}" || got[1] != "pre-mid-post" || got[2] != "$literal" {
		t.Errorf("secrets %q", got)
	}
	if _, err := Parse([]byte("sources:\n  - {name: a, provider: attio, secrets: [${NOPE}]}\n"), env(nil)); err == nil || !strings.Contains(err.Error(), "NOPE is not set") {
		t.Errorf("unset variable: %v", err)
	}
}

func TestSourceNameCrmhookIsReserved(t *testing.T) {
	if _, err := Parse([]byte("sources:\n  - {name: crmhook, provider: attio, secrets: [s]}\n"), env(nil)); err == nil || !strings.Contains(err.Error(), "reserved") {
		t.Fatalf("err = %v, want the name reserved", err)
	}
}
