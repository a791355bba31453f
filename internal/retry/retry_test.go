package retry

import (
	"context"
	"net/http"
	"slices"
	"testing"
	"time"
)

var fixedNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func TestBackoffIsFullJitterCapped(t *testing.T) {
	b := Backoff{Base: 100 * time.Millisecond, Cap: time.Second}
	var ranges []int64
	jitter := func(n int64) int64 { ranges = append(ranges, n); return 0 }
	for n := range 7 {
		if d := b.Wait(n, jitter); d != 0 {
			t.Errorf("retry %d waited %v with zero jitter", n, d)
		}
	}
	ms := int64(time.Millisecond)
	want := []int64{100*ms + 1, 200*ms + 1, 400*ms + 1, 800*ms + 1, 1000*ms + 1, 1000*ms + 1, 1000*ms + 1}
	if !slices.Equal(ranges, want) {
		t.Errorf("jitter ranges %v, want %v", ranges, want)
	}
	if c := b.Ceiling(1 << 20); c != time.Second {
		t.Errorf("huge retry index: ceiling %v", c)
	}
}

func TestSleep(t *testing.T) {
	if err := Sleep(context.Background(), time.Millisecond); err != nil {
		t.Errorf("short sleep: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Sleep(ctx, time.Hour); err != context.Canceled {
		t.Errorf("ended ctx: %v", err)
	}
	if err := Sleep(ctx, 0); err != context.Canceled {
		t.Errorf("zero wait on ended ctx: %v", err)
	}
}

func TestParseRetryAfter(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{" 7 ", 7 * time.Second},
		{"0", 0},
		{"-3", 0},
		{"99999999", 24 * time.Hour},
		{fixedNow.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{fixedNow.Add(-time.Minute).Format(http.TimeFormat), 0},
		{"soon", 0},
	} {
		if got := ParseRetryAfter(tc.in, fixedNow); got != tc.want {
			t.Errorf("ParseRetryAfter(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}
