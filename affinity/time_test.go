package affinity

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestTimeBothFormats(t *testing.T) {
	cases := []struct {
		in      string
		want    string // RFC 3339 in UTC
		wantOff int    // seconds east of UTC, as sent
	}{
		{`"2023-06-21T16:00:28.315-07:00"`, "2023-06-21T23:00:28.315Z", -7 * 3600},
		{`"2023-06-21T16:00:28-07:00"`, "2023-06-21T23:00:28Z", -7 * 3600},
		{`"2023-06-21T23:00:28Z"`, "2023-06-21T23:00:28Z", 0},
		{`"2023-06-21T23:00:28.123456Z"`, "2023-06-21T23:00:28.123456Z", 0},
		{`"2021-11-11 06:58:31 -0800"`, "2021-11-11T14:58:31Z", -8 * 3600},
		{`"2021-11-11 06:58:31.5 +0100"`, "2021-11-11T05:58:31.5Z", 3600},
		{`"2021-11-11"`, "2021-11-11T00:00:00Z", 0},
	}
	for _, c := range cases {
		var tm Time
		if err := json.Unmarshal([]byte(c.in), &tm); err != nil {
			t.Errorf("%s: %v", c.in, err)
			continue
		}
		if got := tm.UTC().Format(time.RFC3339Nano); got != c.want {
			t.Errorf("%s: got %s, want %s", c.in, got, c.want)
		}
		if _, off := tm.Zone(); off != c.wantOff {
			t.Errorf("%s: offset %d, want %d", c.in, off, c.wantOff)
		}
	}
}

func TestTimeNullAndErrors(t *testing.T) {
	for _, in := range []string{`null`, `""`, ` null `} {
		tm := Time{time.Now()}
		if err := json.Unmarshal([]byte(in), &tm); err != nil || !tm.IsZero() {
			t.Errorf("%s: %v %v", in, tm, err)
		}
	}
	for _, in := range []string{`"yesterday"`, `"2021-13-40 06:58:31 -0800"`, `1636645351`, `{}`, `true`, `"2021/11/11"`} {
		var tm Time
		err := json.Unmarshal([]byte(in), &tm)
		if !errors.Is(err, errBadTime) {
			t.Errorf("%s: err %v", in, err)
		}
		if err != nil && strings.Contains(err.Error(), "yesterday") {
			t.Errorf("error quotes the value: %v", err)
		}
	}
}

func TestTimeMarshal(t *testing.T) {
	var tm Time
	if err := json.Unmarshal([]byte(`"2023-06-21T16:00:28.315-07:00"`), &tm); err != nil {
		t.Fatal(err)
	}
	out, err := json.Marshal(tm)
	if err != nil || string(out) != `"2023-06-21T16:00:28.315-07:00"` {
		t.Errorf("%s %v", out, err)
	}
	// The older format comes back as ISO 8601, same instant.
	if err := json.Unmarshal([]byte(`"2021-11-11 06:58:31 -0800"`), &tm); err != nil {
		t.Fatal(err)
	}
	out, _ = json.Marshal(tm)
	if string(out) != `"2021-11-11T06:58:31-08:00"` {
		t.Errorf("%s", out)
	}
	out, _ = json.Marshal(Time{})
	if string(out) != "null" {
		t.Errorf("zero: %s", out)
	}
	// Absent times are left out by omitzero.
	out, _ = json.Marshal(Note{ID: 1})
	if strings.Contains(string(out), "updated_at") || !strings.Contains(string(out), `"created_at":null`) {
		t.Errorf("%s", out)
	}
	if _, err := json.Marshal(Time{time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}); err == nil {
		t.Error("year 10000 must not marshal")
	}
}
