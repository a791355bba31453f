package receiver

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/crmhook/crmhook"
	"github.com/crmhook/crmhook/affinity"
	"github.com/crmhook/crmhook/attio"
	"github.com/crmhook/crmhook/stdwebhooks"
)

// An adapter authenticates and parses one provider's deliveries. Its errors
// wrap errUnauthorized (401), errStale (400, events kept as rejections, which
// the result then carries) or anything else (400).
type adapter interface {
	// credentials builds what the source authenticates with from its
	// secrets and its optional extra path secrets.
	credentials(secrets, pathSecrets []string) (*credentials, error)
	parse(c *credentials, r *http.Request, body []byte) (parseResult, error)
}

// credentials are what a source authenticates with. They are replaced
// whole when the source's secrets change (a rotation), so each request
// sees one consistent set.
type credentials struct {
	path    [][32]byte // sha256 of each accepted path secret; none: no secret path
	signing []string   // Attio's signing secrets
	std     *stdwebhooks.Verifier
}

type parseResult struct {
	events    []crmhook.Event // Type, DedupeKey, OccurredAt and Payload set
	probe     bool            // a provider's test call: answer 200, store nothing
	probeType string
	// signedAt is the delivery's own timestamp that the replay window
	// judges; zero when the provider's adapter judged it itself (Attio) or
	// the delivery carries none.
	signedAt time.Time
}

var (
	errUnauthorized = errors.New("unauthorized")
	errStale        = errors.New("outside the replay window")
)

// staleError carries the provider SDK's own reason (too old, too new).
func staleError(err error) error { return fmt.Errorf("%w: %v", errStale, err) }

// affinityAdapter: Affinity signs nothing; the path secret (checked before)
// is the authentication. The receiver's replay window judges sent_at, so
// the SDK's own window is switched off here.
type affinityAdapter struct{}

var affinityParseOpts = []affinity.ParseOption{affinity.WithoutMaxAge(), affinity.WithoutMaxFutureSkew()}

// credentials: Affinity signs nothing, so its secrets are path secrets.
func (affinityAdapter) credentials(secrets, pathSecrets []string) (*credentials, error) {
	if len(secrets) == 0 {
		return nil, errors.New("affinity sources need a path secret")
	}
	if len(pathSecrets) > 0 {
		return nil, errors.New("an affinity source's secrets are its path secrets; path secrets apply only to signed sources")
	}
	return &credentials{path: hashAll(secrets)}, nil
}

func (affinityAdapter) parse(_ *credentials, _ *http.Request, body []byte) (parseResult, error) {
	ev, err := affinity.Parse(body, affinityParseOpts...)
	if err != nil {
		return parseResult{}, err
	}
	if ev.Type == affinity.SampleWebhook {
		// The probe Affinity sends on create/update is answered whatever its age.
		return parseResult{probe: true, probeType: string(ev.Type)}, nil
	}
	return parseResult{signedAt: ev.SentAt, events: []crmhook.Event{{
		Type:       string(ev.Type),
		DedupeKey:  AffinityDedupeKey(string(ev.Type), ev.SentAtUnix, body),
		OccurredAt: ev.SentAt,
		Payload:    json.RawMessage(body),
	}}}, nil
}

// AffinityDedupeKey is type:sent_at:sha256(raw body)[:16]: Affinity sends no
// delivery id, and a retry repeats the body byte for byte.
func AffinityDedupeKey(eventType string, sentAt int64, body []byte) string {
	sum := sha256.Sum256(body)
	return eventType + ":" + strconv.FormatInt(sentAt, 10) + ":" + hex.EncodeToString(sum[:])[:16]
}

// attioAdapter: HMAC of the raw body (Attio-Signature), or of
// "timestamp.body" when X-Attio-Timestamp is present (a variant some
// integration guides describe; Attio itself signs only the body).
type attioAdapter struct {
	opts []attio.VerifyOption // the source's window, built once
}

func newAttioAdapter(window ReplayWindow, now func() time.Time) attioAdapter {
	// Only a signature over X-Attio-Timestamp makes the timestamp worth
	// judging, and only attio.Verify knows which signature matched, so the
	// source's window is handed to it, side by side.
	if window.Off {
		return attioAdapter{opts: []attio.VerifyOption{attio.WithNow(now), attio.WithoutTolerance()}}
	}
	return attioAdapter{opts: []attio.VerifyOption{attio.WithNow(now), attio.WithMaxAge(window.MaxAge), attio.WithMaxFuture(window.MaxFuture)}}
}

func (attioAdapter) credentials(secrets, pathSecrets []string) (*credentials, error) {
	if len(secrets) == 0 {
		return nil, errors.New("attio sources need at least one signing secret")
	}
	return &credentials{path: hashAll(pathSecrets), signing: secrets}, nil
}

func (a attioAdapter) parse(c *credentials, r *http.Request, body []byte) (parseResult, error) {
	verr := attio.Verify(body, r.Header, c.signing, a.opts...)
	stale := errors.Is(verr, attio.ErrTooOld) || errors.Is(verr, attio.ErrTooNew)
	if verr != nil && !stale {
		return parseResult{}, fmt.Errorf("%w: %v", errUnauthorized, verr)
	}
	d, err := attio.Parse(body)
	if err != nil {
		return parseResult{}, err
	}
	if len(d.Events) == 0 {
		return parseResult{}, errors.New("attio: delivery holds no events")
	}
	idem := r.Header.Get("Idempotency-Key")
	res := parseResult{events: make([]crmhook.Event, 0, len(d.Events))}
	for i, ev := range d.Events {
		key := idem
		if key != "" {
			key += ":" + strconv.Itoa(i)
		} else {
			sum := sha256.Sum256(ev.Raw)
			key = "sha256:" + hex.EncodeToString(sum[:16])
		}
		res.events = append(res.events, crmhook.Event{
			Type:      string(ev.Type),
			DedupeKey: key,
			Payload:   bytes.Clone(ev.Raw),
		})
	}
	if stale {
		return res, staleError(verr)
	}
	return res, nil
}

// stdAdapter: Standard Webhooks; the dedupe key is webhook-id and the type
// is the payload's "type" when it has one.
type stdAdapter struct {
	now func() time.Time
}

func (a stdAdapter) credentials(secrets, pathSecrets []string) (*credentials, error) {
	// The signature covers webhook-timestamp; the receiver's replay window
	// judges it after verification, so the verifier's own window is off.
	v, err := stdwebhooks.NewVerifier(secrets, stdwebhooks.WithoutTolerance(), stdwebhooks.WithNow(a.now))
	if err != nil {
		return nil, err
	}
	return &credentials{path: hashAll(pathSecrets), std: v}, nil
}

func (stdAdapter) parse(c *credentials, r *http.Request, body []byte) (parseResult, error) {
	if err := c.std.Verify(body, r.Header); err != nil {
		return parseResult{}, fmt.Errorf("%w: %v", errUnauthorized, err)
	}
	var payload struct {
		Type json.RawMessage `json:"type"`
	}
	if err := strictObject(body, &payload); err != nil {
		return parseResult{}, err
	}
	typ := "webhook"
	var s string
	if len(payload.Type) > 0 && json.Unmarshal(payload.Type, &s) == nil && s != "" {
		typ = s
	}
	ts, _ := strconv.ParseInt(r.Header.Get(stdwebhooks.HeaderTimestamp), 10, 64)
	signedAt := time.Unix(ts, 0).UTC()
	return parseResult{signedAt: signedAt, events: []crmhook.Event{{
		Type:       typ,
		DedupeKey:  r.Header.Get(stdwebhooks.HeaderID),
		OccurredAt: signedAt,
		Payload:    json.RawMessage(body),
	}}}, nil
}

// strictObject requires exactly one JSON object and decodes it into v.
func strictObject(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	tok, err := dec.Token()
	if err != nil {
		return fmt.Errorf("invalid JSON: %w", err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return errors.New("payload is not a JSON object")
	}
	if !json.Valid(body) {
		return errors.New("invalid JSON")
	}
	if !utf8.Valid(body) {
		// JSON is UTF-8 (RFC 8259); Go's decoder would quietly replace bad bytes.
		return errors.New("payload is not UTF-8")
	}
	return json.Unmarshal(body, v)
}
