package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/crmhook/crmhook"
	"github.com/crmhook/crmhook/affinity"
	"github.com/crmhook/crmhook/attio"
	"github.com/crmhook/crmhook/config"
	"github.com/crmhook/crmhook/internal/embedded"
	"github.com/crmhook/crmhook/sim/attiosim"
	"github.com/crmhook/crmhook/stdwebhooks"
	"github.com/google/uuid"
	"github.com/spf13/cobra"
	"golang.org/x/time/rate"
)

// sendProvider is what `crmhook send` assumes of a provider when not told:
// the event type, and the source and secret of the no-config run.
type sendProvider struct {
	eventType string
	source    string
	secret    func(embedded.Secrets) string
}

var sendProviders = map[crmhook.Provider]sendProvider{
	crmhook.ProviderAffinity:         {"person.created", embedded.Affinity, func(s embedded.Secrets) string { return s.AffinityPath }},
	crmhook.ProviderAttio:            {"record.created", embedded.Attio, func(s embedded.Secrets) string { return s.Attio }},
	crmhook.ProviderStandardWebhooks: {"contact.created", embedded.Webhooks, func(s embedded.Secrets) string { return s.Webhooks }},
}

// sendOptions is what `crmhook send` fires, where, and how much of it.
type sendOptions struct {
	provider, eventType, file, url, source, secret, dataDir string
	count, concurrency                                      int
	rate                                                    float64
	asJSON                                                  bool
}

// SendReport summarises a `crmhook send` run.
type SendReport struct {
	Sent        int            `json:"sent"`
	Statuses    map[string]int `json:"statuses"` // "200": n, "error": n
	Seconds     float64        `json:"seconds"`
	PerSecond   float64        `json:"per_second"`
	LatencyP50  float64        `json:"latency_p50_ms"`
	LatencyP99  float64        `json:"latency_p99_ms"`
	LatencyMax  float64        `json:"latency_max_ms"`
	FirstStatus int            `json:"first_status"`
}

func (c *cli) sendCmd() *cobra.Command {
	var o sendOptions
	cmd := &cobra.Command{
		Use:   "send",
		Short: "Fire a sample (or given) event at a receiver, signed or secret-pathed as its provider does",
		Long: `Send one event, or --count of them at --rate per second, to a crmhook receiver
(or any endpoint), the way the provider would: Affinity with the secret in the
path, Attio with Attio-Signature and an Idempotency-Key, Standard Webhooks with
webhook-id/-timestamp/-signature. Without --secret it uses the secrets the
no-config run kept in --data-dir. Each event of a --count run is unique (a
fresh id), so none is dropped as a redelivery.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.eventType == "" {
				o.eventType = sendProviders[crmhook.Provider(o.provider)].eventType
			}
			rep, err := c.send(cmd.Context(), o)
			if err != nil {
				return err
			}
			if o.asJSON {
				return writeJSON(c.stdout, rep)
			}
			keys := make([]string, 0, len(rep.Statuses))
			for k := range rep.Statuses {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			var parts []string
			for _, k := range keys {
				parts = append(parts, fmt.Sprintf("%s×%d", k, rep.Statuses[k]))
			}
			if rep.Sent == 1 {
				fmt.Fprintf(c.stdout, "sent 1 %s %s event: HTTP %s in %.1f ms\n", o.provider, o.eventType, strings.Join(keys, ""), rep.LatencyMax)
			} else {
				fmt.Fprintf(c.stdout, "sent %d events in %.2fs (%.0f/s): %s; latency p50 %.2f ms, p99 %.2f ms, max %.2f ms\n",
					rep.Sent, rep.Seconds, rep.PerSecond, strings.Join(parts, " "), rep.LatencyP50, rep.LatencyP99, rep.LatencyMax)
			}
			if rep.Statuses["200"]+rep.Statuses["202"] != rep.Sent {
				return fmt.Errorf("send: %d of %d events were not accepted", rep.Sent-rep.Statuses["200"]-rep.Statuses["202"], rep.Sent)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.provider, "provider", "p", "affinity", "affinity, attio or standard-webhooks")
	f.StringVarP(&o.eventType, "type", "t", "", "event type (default person.created / record.created / contact.created)")
	f.StringVarP(&o.file, "file", "f", "", "send this file's JSON instead of a sample (Affinity: the whole {type,body,sent_at}; Attio: one event or a whole delivery)")
	f.StringVar(&o.url, "url", "http://127.0.0.1:8080", "the receiver's base URL, or a full hook URL (…/hooks/<source>[/<secret>])")
	f.StringVar(&o.source, "source", "", "source name in the hook path (default: the provider's source of the no-config run)")
	f.StringVar(&o.secret, "secret", "", "path secret (affinity) or signing secret (attio, standard-webhooks); default: from --data-dir")
	f.StringVar(&o.dataDir, "data-dir", config.DefaultDataDir, "data directory of the no-config run (for its secrets)")
	f.IntVarP(&o.count, "count", "n", 1, "how many events to send")
	f.Float64Var(&o.rate, "rate", 0, "events per second (0: as fast as --concurrency allows)")
	f.IntVar(&o.concurrency, "concurrency", 1, "requests in flight at once")
	addJSONFlag(cmd, &o.asJSON)
	return cmd
}

// send runs the whole load and reports.
func (c *cli) send(ctx context.Context, o sendOptions) (SendReport, error) {
	if o.count < 1 || o.concurrency < 1 || o.rate < 0 {
		return SendReport{}, fmt.Errorf("send: --count and --concurrency must be at least 1, --rate not negative")
	}
	prov := crmhook.Provider(o.provider)
	var fileBody []byte
	if o.file != "" {
		b, err := os.ReadFile(o.file)
		if err != nil {
			return SendReport{}, fmt.Errorf("send: %w", err)
		}
		if !json.Valid(b) {
			return SendReport{}, fmt.Errorf("send: %s is not valid JSON", o.file)
		}
		fileBody = b
	}
	target, secret, err := c.sendTarget(o, prov)
	if err != nil {
		return SendReport{}, err
	}
	build, err := requestBuilder(prov, o.eventType, fileBody, target, secret)
	if err != nil {
		return SendReport{}, err
	}

	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: o.concurrency, MaxConnsPerHost: o.concurrency}}
	var limiter *rate.Limiter
	if o.rate > 0 {
		limiter = rate.NewLimiter(rate.Limit(o.rate), 1)
	}
	var next atomic.Int64
	var mu sync.Mutex
	statuses := map[string]int{}
	lat := make([]time.Duration, 0, o.count)
	var first atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	for range o.concurrency {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= o.count || ctx.Err() != nil {
					return
				}
				if limiter != nil && limiter.Wait(ctx) != nil {
					return
				}
				req, err := build(ctx, i)
				if err != nil {
					return
				}
				t0 := time.Now()
				resp, err := hc.Do(req)
				took := time.Since(t0)
				key := "error"
				if err == nil {
					key = strconv.Itoa(resp.StatusCode)
					first.CompareAndSwap(0, int64(resp.StatusCode))
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				mu.Lock()
				statuses[key]++
				lat = append(lat, took)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if len(lat) == 0 {
		return SendReport{}, fmt.Errorf("send: nothing sent: %w", context.Cause(ctx))
	}
	slices.Sort(lat)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	pct := func(p float64) time.Duration { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
	if statuses["error"] == len(lat) {
		return SendReport{}, fmt.Errorf("send: could not reach %s (is crmhook serve running?)", redactHookURL(target))
	}
	return SendReport{Sent: len(lat), Statuses: statuses, Seconds: elapsed.Seconds(), PerSecond: float64(len(lat)) / elapsed.Seconds(),
		LatencyP50: ms(pct(0.50)), LatencyP99: ms(pct(0.99)), LatencyMax: ms(lat[len(lat)-1]), FirstStatus: int(first.Load())}, nil
}

// sendTarget resolves the hook URL and the secret to use.
func (c *cli) sendTarget(o sendOptions, prov crmhook.Provider) (target, secret string, err error) {
	secret = o.secret
	source := o.source
	defaults, known := sendProviders[prov]
	if source == "" {
		if !known {
			return "", "", fmt.Errorf("send: unknown provider %q (want affinity, attio or standard-webhooks)", o.provider)
		}
		source = defaults.source
	}
	full := strings.Contains(o.url, "/hooks/")
	if secret == "" && !(full && prov == crmhook.ProviderAffinity) {
		s, lerr := embedded.LoadSecrets(o.dataDir)
		if lerr != nil {
			return "", "", fmt.Errorf("send: no --secret given and no secrets kept in %s (run crmhook serve once without a config, or pass --secret)", o.dataDir)
		}
		if known {
			secret = defaults.secret(s)
		}
	}
	if full {
		return o.url, secret, nil
	}
	target = strings.TrimRight(o.url, "/") + "/hooks/" + source
	if prov == crmhook.ProviderAffinity {
		target += "/" + secret
	}
	return target, secret, nil
}

// requestBuilder returns a function that builds the i-th request.
func requestBuilder(prov crmhook.Provider, eventType string, fileBody []byte, target, secret string) (func(context.Context, int) (*http.Request, error), error) {
	newReq := func(ctx context.Context, body []byte) (*http.Request, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
		if err != nil {
			return nil, fmt.Errorf("send: %w", err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("User-Agent", "crmhook-send")
		return req, nil
	}
	switch prov {
	case crmhook.ProviderAffinity:
		t := affinity.EventType(eventType)
		sample := affinity.SampleBody(t)
		if fileBody == nil && sample == nil {
			return nil, fmt.Errorf("send: no Affinity sample for %q; pass --file", eventType)
		}
		return func(ctx context.Context, i int) (*http.Request, error) {
			body := fileBody
			if body == nil {
				// A unique id per event: identical bodies in one second are
				// one event to the receiver's dedupe.
				body = affinity.NewEnvelope(t, withID(sample, i), time.Now())
			}
			return newReq(ctx, body)
		}, nil
	case crmhook.ProviderAttio:
		var event json.RawMessage
		if fileBody == nil {
			ev, err := attiosim.SampleEvent(eventType, "")
			if err != nil {
				return nil, fmt.Errorf("send: %w", err)
			}
			event = ev
		}
		return func(ctx context.Context, i int) (*http.Request, error) {
			body := fileBody
			if body == nil || !bytes.Contains(body, []byte(`"events"`)) {
				ev := event
				if fileBody != nil {
					ev = fileBody
				}
				body, _ = json.Marshal(map[string]any{"webhook_id": uuid.NewString(), "events": []json.RawMessage{ev}})
			}
			req, err := newReq(ctx, body)
			if err != nil {
				return nil, err
			}
			attio.SignRequestHeaders(req.Header, body, secret)
			req.Header.Set("Idempotency-Key", uuid.NewString())
			return req, nil
		}, nil
	case crmhook.ProviderStandardWebhooks:
		signer, err := stdwebhooks.NewSigner(secret)
		if err != nil {
			return nil, fmt.Errorf("send: --secret: %w", err)
		}
		return func(ctx context.Context, i int) (*http.Request, error) {
			body := fileBody
			if body == nil {
				body, _ = json.Marshal(map[string]any{"type": eventType, "timestamp": time.Now().UTC().Format(time.RFC3339),
					"data": map[string]any{"id": i + 1, "email": "jane.doe@example.com"}})
			}
			req, err := newReq(ctx, body)
			if err != nil {
				return nil, err
			}
			signer.SetHeaders(req.Header, "msg_"+uuid.NewString(), time.Now(), body)
			return req, nil
		}, nil
	}
	return nil, fmt.Errorf("send: unknown provider %q (want affinity, attio or standard-webhooks)", prov)
}

// withID gives a sample body a distinct "id" for the i-th event.
func withID(body json.RawMessage, i int) json.RawMessage {
	var m map[string]json.RawMessage
	if json.Unmarshal(body, &m) != nil {
		return body
	}
	m["id"] = json.RawMessage(strconv.Itoa(1_000_000 + i))
	b, err := json.Marshal(m)
	if err != nil {
		return body
	}
	return b
}

// redactHookURL hides a path secret in messages.
func redactHookURL(u string) string {
	if i := strings.Index(u, "/hooks/"); i >= 0 {
		rest := u[i+len("/hooks/"):]
		if j := strings.Index(rest, "/"); j >= 0 {
			return u[:i] + "/hooks/" + rest[:j] + "/…"
		}
	}
	return u
}
