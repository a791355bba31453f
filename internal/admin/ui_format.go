package admin

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html/template"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/crmhook/crmhook/store/console"
)

// The templates' functions. Times show in UTC, with how long ago.

func (u *ui) funcs() template.FuncMap {
	return template.FuncMap{
		"asset": u.assetURL,
		"ago":   func(t time.Time) string { return ago(u.m.Now(), t) },
		"until": func(t time.Time) string { return until(u.m.Now(), t) },
		"utc":   utc,
		"iso": func(t time.Time) string {
			if t.IsZero() {
				return ""
			}
			return t.UTC().Format(time.RFC3339Nano)
		},
		"dur":     duration,
		"short":   shortID,
		"num":     num,
		"plural":  plural,
		"cursor":  encodeCursor,
		"int64":   func(i int) int64 { return int64(i) },
		"nonzero": func(t time.Time) bool { return !t.IsZero() },
	}
}

func utc(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

// ago says how long before now t was: "just now", "42 s ago", "3 min ago".
func ago(now, t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	d := now.Sub(t)
	if d < 0 {
		return "in " + duration(-d)
	}
	if d < time.Second {
		return "just now"
	}
	return duration(d) + " ago"
}

// until says how long after now t is: "in 12 s", or "now" when due.
func until(now, t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	if !t.After(now) {
		return "now"
	}
	return "in " + duration(t.Sub(now))
}

// duration is d in its two largest units: "42 s", "3 min 5 s", "2 h 10 min", "4 d 3 h".
func duration(d time.Duration) string {
	if d < 0 {
		d = -d
	}
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%d s", int(d.Seconds()))
	case d < time.Hour:
		m, s := int(d.Minutes()), int(d.Seconds())%60
		if s == 0 || m >= 10 {
			return fmt.Sprintf("%d min", m)
		}
		return fmt.Sprintf("%d min %d s", m, s)
	case d < 48*time.Hour:
		h, m := int(d.Hours()), int(d.Minutes())%60
		if m == 0 || h >= 10 {
			return fmt.Sprintf("%d h", h)
		}
		return fmt.Sprintf("%d h %d min", h, m)
	}
	days, h := int(d.Hours())/24, int(d.Hours())%24
	if h == 0 || days >= 10 {
		return fmt.Sprintf("%d d", days)
	}
	return fmt.Sprintf("%d d %d h", days, h)
}

// shortID is the end of an id: a UUIDv7 begins with its time, which the
// ids of one minute share, and ends with its random part.
func shortID(id string) string {
	if len(id) <= 12 {
		return id
	}
	return "…" + id[len(id)-8:]
}

// num writes n with thousands separators.
func num(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func plural(n int64, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return num(n) + " " + word + "s"
}

// encodeCursor writes a cursor for a URL: unix microseconds, a dot, the id.
func encodeCursor(c console.Cursor) string {
	if c.IsZero() {
		return ""
	}
	return strconv.FormatInt(c.ReceivedAt.UnixMicro(), 10) + "." + c.ID
}

func decodeCursor(s string) (console.Cursor, error) {
	if s == "" {
		return console.Cursor{}, nil
	}
	us, id, ok := strings.Cut(s, ".")
	n, err := strconv.ParseInt(us, 10, 64)
	if !ok || err != nil || n <= 0 || len(id) > 200 {
		return console.Cursor{}, fmt.Errorf("the page cursor %q is not one this console wrote", s)
	}
	return console.Cursor{ReceivedAt: time.UnixMicro(n).UTC(), ID: id}, nil
}

// maxShownPayload bounds the payload a page shows.
const maxShownPayload = 1 << 20

// prettyPayload is the payload indented for reading (as it came when it is
// not JSON), cut at maxShownPayload.
func prettyPayload(p []byte) (text string, cut bool) {
	if len(p) > maxShownPayload {
		p, cut = p[:maxShownPayload], true
	}
	var buf bytes.Buffer
	if !cut && json.Indent(&buf, p, "", "  ") == nil {
		return buf.String(), false
	}
	if !utf8.Valid(p) {
		return strings.ToValidUTF8(string(p), "\uFFFD"), cut
	}
	return string(p), cut
}
