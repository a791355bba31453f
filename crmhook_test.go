package crmhook

import (
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"testing"
	"time"
)

func TestSinkFilterMatch(t *testing.T) {
	ev := &Event{Source: "affinity", Type: "person.created"}
	cases := []struct {
		f    SinkFilter
		want bool
	}{
		{SinkFilter{}, true},
		{SinkFilter{Types: []string{"person.*"}}, true},
		{SinkFilter{Types: []string{"organization.*", "person.created"}}, true},
		{SinkFilter{Types: []string{"person.deleted"}}, false},
		{SinkFilter{Sources: []string{"attio"}}, false},
		{SinkFilter{Sources: []string{"aff*"}, Types: []string{"*"}}, true},
		{SinkFilter{Types: []string{"[bad"}}, false},
	}
	for _, tc := range cases {
		if got := tc.f.Match(ev); got != tc.want {
			t.Errorf("%+v.Match = %v, want %v", tc.f, got, tc.want)
		}
	}
}

func TestNewEventIDSortsByTime(t *testing.T) {
	var ids []string
	for range 50 {
		ids = append(ids, NewEventID())
		time.Sleep(time.Millisecond)
	}
	if !sort.StringsAreSorted(ids) {
		t.Fatal("event ids do not sort by creation time")
	}
	if ids[0] == ids[1] {
		t.Fatal("event ids repeat")
	}
}

func TestSourceSecretNeverPrintsTheSecret(t *testing.T) {
	s := SourceSecret{ID: 7, Source: "attio", Secret: "very-secret-value", SubscriptionID: "wh1", State: SecretActive}
	var buf strings.Builder
	slog.New(slog.NewTextHandler(&buf, nil)).Info("x", "secret", s)
	for _, out := range []string{fmt.Sprint(s), fmt.Sprintf("%v %+v %s", s, s, s), buf.String()} {
		if strings.Contains(out, "very-secret-value") {
			t.Errorf("printed the secret: %s", out)
		}
	}
}
