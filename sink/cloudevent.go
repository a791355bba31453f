// Package sink holds crmhook's built-in sinks: HTTP (CloudEvents JSON signed
// with Standard Webhooks headers), exec (a command per event) and file (JSON
// lines). Each implements crmhook.Sink; a failure comes back as a
// *crmhook.DeliveryError that says whether to retry and when.
//
// Every sink hands events on as CloudEvents 1.0 in structured JSON mode (the
// exec sink passes the provider's raw JSON instead, with the CloudEvents
// attributes in its environment). The CloudEvents id is crmhook's event id,
// so it is the same on every retry and consumers can dedupe on it.
//
// Errors never carry payload data, secrets or response bodies: they end up
// in the store and the logs, and payloads hold personal data.
package sink

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/crmhook/crmhook"
)

// ContentTypeCloudEvents is the media type of a structured-mode CloudEvent in JSON.
const ContentTypeCloudEvents = "application/cloudevents+json"

// SourcePrefix begins the CloudEvents source of every event: "/crmhook/<source name>".
const SourcePrefix = "/crmhook/"

// ErrInvalidPayload is returned for an event whose payload is not JSON. It
// cannot become a CloudEvent, so sinks report it as permanent.
var ErrInvalidPayload = errors.New("sink: event payload is not valid JSON")

// cloudEventEnvelope is every attribute of the CloudEvent but data, which is
// spliced in afterwards so the payload goes out byte for byte as received.
type cloudEventEnvelope struct {
	SpecVersion     string `json:"specversion"`
	ID              string `json:"id"`
	Source          string `json:"source"`
	Type            string `json:"type"`
	Time            string `json:"time,omitempty"`
	DataContentType string `json:"datacontenttype"`
	// Extension attributes: CloudEvents allows only lowercase a-z and 0-9 in their names.
	DedupeKey  string `json:"crmhookdedupekey,omitempty"`
	ReceivedAt string `json:"crmhookreceivedat,omitempty"`
}

// cloudEventType is "<provider>.<type>"; crmhook's own events already
// carry their full type ("crmhook.subscription.reenabled").
func cloudEventType(ev *crmhook.Event) string {
	if ev.Provider == crmhook.ProviderCrmhook {
		return ev.Type
	}
	return string(ev.Provider) + "." + ev.Type
}

// CloudEvent encodes ev as a structured-mode CloudEvents 1.0 JSON document:
// id is ev.ID, source "/crmhook/<source>", type "<provider>.<type>" (for
// example "affinity.person.created"), time the provider's timestamp or, when
// it sent none, the time crmhook received the event, and data the payload
// exactly as received. The extensions crmhookdedupekey and crmhookreceivedat
// carry the dedupe key and the receive time.
func CloudEvent(ev *crmhook.Event) ([]byte, error) {
	if len(ev.Payload) > 0 && !json.Valid(ev.Payload) {
		return nil, fmt.Errorf("sink: cloudevent %s: %w", ev.ID, ErrInvalidPayload)
	}
	env := cloudEventEnvelope{
		SpecVersion:     "1.0",
		ID:              ev.ID,
		Source:          SourcePrefix + url.PathEscape(ev.Source),
		Type:            cloudEventType(ev),
		Time:            formatTime(eventTime(ev)),
		DataContentType: "application/json",
		DedupeKey:       ev.DedupeKey,
		ReceivedAt:      formatTime(ev.ReceivedAt),
	}
	head, err := json.Marshal(env)
	if err != nil {
		return nil, fmt.Errorf("sink: cloudevent %s: %w", ev.ID, err)
	}
	if len(ev.Payload) == 0 {
		return head, nil
	}
	// head ends in '}': reopen it and append data.
	out := make([]byte, 0, len(head)+len(`,"data":`)+len(ev.Payload))
	out = append(out, head[:len(head)-1]...)
	out = append(out, `,"data":`...)
	out = append(out, ev.Payload...)
	out = append(out, '}')
	return out, nil
}

// eventTime is when the event happened as far as crmhook knows.
func eventTime(ev *crmhook.Event) time.Time {
	if !ev.OccurredAt.IsZero() {
		return ev.OccurredAt
	}
	return ev.ReceivedAt
}

// formatTime writes t as RFC 3339 in UTC, and the zero time as "".
func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}
