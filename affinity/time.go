package affinity

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Time is a datetime in an Affinity body. Affinity has used two formats and
// Time accepts both:
//
//	ISO 8601 (current):  2023-06-21T16:00:28.315-07:00, also without the
//	                     fraction and with Z
//	older payloads:      2021-11-11 06:58:31 -0800
//
// JSON null (and "") decode to the zero Time, which encodes back to null.
// The offset Affinity sent is kept. Time marshals as RFC 3339 with the
// fraction Affinity uses.
type Time struct {
	time.Time
}

// timeLayouts are tried in order. RFC3339Nano parses with or without a
// fraction; the space-separated layouts cover the older payloads; a bare
// date is accepted because reminder due dates may be sent as one.
var timeLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02 15:04:05 -0700",
	"2006-01-02 15:04:05.999999999 -0700",
	"2006-01-02T15:04:05.999999999-0700",
	"2006-01-02",
}

// errBadTime is what a Time refuses; it never quotes the value.
var errBadTime = errors.New("affinity: datetime is neither ISO 8601 nor \"2006-01-02 15:04:05 -0700\"")

// ParseTime parses s in any format Time accepts. The empty string gives the
// zero Time.
func ParseTime(s string) (Time, error) {
	if s == "" {
		return Time{}, nil
	}
	for _, layout := range timeLayouts {
		if t, err := time.Parse(layout, s); err == nil {
			return Time{t}, nil
		}
	}
	return Time{}, errBadTime
}

// UnmarshalJSON accepts a string in either format, or null.
func (t *Time) UnmarshalJSON(data []byte) error {
	data = bytes.TrimSpace(data)
	if bytes.Equal(data, []byte("null")) {
		*t = Time{}
		return nil
	}
	var s string
	if len(data) == 0 || data[0] != '"' || json.Unmarshal(data, &s) != nil {
		return fmt.Errorf("%w: not a JSON string", errBadTime)
	}
	parsed, err := ParseTime(s)
	if err != nil {
		return err
	}
	*t = parsed
	return nil
}

// MarshalJSON writes null for the zero Time, else RFC 3339 with the
// fraction (if any) and the original offset.
func (t Time) MarshalJSON() ([]byte, error) {
	if t.IsZero() {
		return []byte("null"), nil
	}
	if y := t.Year(); y < 0 || y > 9999 {
		return nil, fmt.Errorf("affinity: datetime year %d outside 0..9999", y)
	}
	return []byte(`"` + t.Format(time.RFC3339Nano) + `"`), nil
}
