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
	parse(src *source, r *http.Request, body []byte) (parseResult, error)
}

type parseResult struct {
	events    []crmhook.Event // Type, DedupeKey, OccurredAt and Payload set
	probe     bool            // a provider's test call: answer 200, store nothing
	probeType string
}

var (
	errUnauthorized = errors.New("unauthorized")
	errStale        = errors.New("timestamp outside the replay window")
)

// staleError carries the provider's own reason (too old, too new).
func staleError(err error) error { return fmt.Errorf("%w: %v", errStale, err) }

// affinityAdapter: Affinity signs nothing; the path secret (checked before)
// is the authentication. The replay window applies to sent_at.
type affinityAdapter struct {
	opts []affinity.ParseOption // the source's window, built once
}

func newAffinityAdapter(s Source, now func() time.Time) affinityAdapter {
	opts := []affinity.ParseOption{affinity.WithNow(now)}
	if s.MaxAge > 0 {
		opts = append(opts, affinity.WithMaxAge(s.MaxAge))
	} else {
		opts = append(opts, affinity.WithoutMaxAge())
	}
	if s.MaxFuture > 0 {
		opts = append(opts, affinity.WithMaxFutureSkew(s.MaxFuture))
	} else {
		opts = append(opts, affinity.WithoutMaxFutureSkew())
	}
	return affinityAdapter{opts: opts}
}

func (a affinityAdapter) parse(src *source, _ *http.Request, body []byte) (parseResult, error) {
	ev, err := affinity.Parse(body, a.opts...)
	stale := errors.Is(err, affinity.ErrTooOld) || errors.Is(err, affinity.ErrTooNew)
	if err != nil && !(stale && ev != nil) {
		return parseResult{}, err
	}
	if ev.Type == affinity.SampleWebhook {
		// The probe Affinity sends on create/update is answered whatever its age.
		return parseResult{probe: true, probeType: string(ev.Type)}, nil
	}
	res := parseResult{events: []crmhook.Event{{
		Type:       string(ev.Type),
		DedupeKey:  src.Name + ":" + AffinityDedupeKey(string(ev.Type), ev.SentAtUnix, body),
		OccurredAt: ev.SentAt,
		Payload:    json.RawMessage(body),
	}}}
	if stale {
		return res, staleError(err)
	}
	return res, nil
}

// AffinityDedupeKey is seed 000's key: type:sent_at:sha256(raw body)[:16].
func AffinityDedupeKey(eventType string, sentAt int64, body []byte) string {
	sum := sha256.Sum256(body)
	return eventType + ":" + strconv.FormatInt(sentAt, 10) + ":" + hex.EncodeToString(sum[:])[:16]
}

// attioAdapter: HMAC of the raw body (Attio-Signature), or of
// "timestamp.body" when X-Attio-Timestamp is present (seed 004's variant).
type attioAdapter struct {
	secrets []string
	opts    []attio.VerifyOption // the source's window, built once
}

func newAttioAdapter(s Source, now func() time.Time) (adapter, error) {
	if len(s.Secrets) == 0 {
		return nil, errors.New("attio sources need at least one signing secret")
	}
	tolerance := max(s.MaxAge, s.MaxFuture)
	return attioAdapter{secrets: s.Secrets, opts: []attio.VerifyOption{attio.WithTolerance(tolerance), attio.WithNow(now)}}, nil
}

func (a attioAdapter) parse(src *source, r *http.Request, body []byte) (parseResult, error) {
	verr := attio.Verify(body, r.Header, a.secrets, a.opts...)
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
			DedupeKey: src.Name + ":" + key,
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
	verifier *stdwebhooks.Verifier
}

func newStdAdapter(s Source, now func() time.Time) (adapter, error) {
	tolerance := max(s.MaxAge, s.MaxFuture)
	if tolerance == 0 {
		tolerance = 100 * 365 * 24 * time.Hour // window disabled
	}
	v, err := stdwebhooks.NewVerifier(s.Secrets, stdwebhooks.WithTolerance(tolerance), stdwebhooks.WithNow(now))
	if err != nil {
		return nil, err
	}
	return stdAdapter{verifier: v}, nil
}

func (a stdAdapter) parse(src *source, r *http.Request, body []byte) (parseResult, error) {
	verr := a.verifier.Verify(body, r.Header)
	stale := errors.Is(verr, stdwebhooks.ErrTooOld) || errors.Is(verr, stdwebhooks.ErrTooNew)
	if verr != nil && !stale {
		return parseResult{}, fmt.Errorf("%w: %v", errUnauthorized, verr)
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
	res := parseResult{events: []crmhook.Event{{
		Type:       typ,
		DedupeKey:  src.Name + ":" + r.Header.Get(stdwebhooks.HeaderID),
		OccurredAt: time.Unix(ts, 0).UTC(),
		Payload:    json.RawMessage(body),
	}}}
	if stale {
		return res, staleError(verr)
	}
	return res, nil
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
