package affinitysim

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

func TestConfigDefaults(t *testing.T) {
	cfg, err := Config{}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Users) != 2 || cfg.Users[0] != (User{1, DefaultAdminKey, true}) || cfg.Users[1] != (User{2, DefaultUserKey, false}) {
		t.Errorf("Users = %+v", cfg.Users)
	}
	if cfg.MaxSubscriptions != 3 || cfg.RateLimitPerMinute != 900 || cfg.OrgMonthlyQuota != 100000 ||
		cfg.ProbeTimeout != 3*time.Second || cfg.RetryWindow != 10*time.Hour || cfg.InitialBackoff != time.Minute ||
		cfg.DeliveryTimeout != 10*time.Second || cfg.TimeScale != 1 ||
		cfg.HTTPClient == nil || cfg.Now == nil || cfg.Logger == nil {
		t.Errorf("defaults = %+v", cfg)
	}
}

func TestConfigValidation(t *testing.T) {
	tests := []struct {
		name  string
		cfg   Config
		field string
	}{
		{"negative limit", Config{MaxSubscriptions: -1}, "Config.MaxSubscriptions"},
		{"negative rate", Config{RateLimitPerMinute: -5}, "Config.RateLimitPerMinute"},
		{"negative quota", Config{OrgMonthlyQuota: -5}, "Config.OrgMonthlyQuota"},
		{"negative probe timeout", Config{ProbeTimeout: -time.Second}, "Config.ProbeTimeout"},
		{"negative window", Config{RetryWindow: -time.Hour}, "Config.RetryWindow"},
		{"negative backoff", Config{InitialBackoff: -time.Minute}, "Config.InitialBackoff"},
		{"negative delivery timeout", Config{DeliveryTimeout: -1}, "Config.DeliveryTimeout"},
		{"negative scale", Config{TimeScale: -2}, "Config.TimeScale"},
		{"NaN scale", Config{TimeScale: math.NaN()}, "Config.TimeScale"},
		{"infinite scale", Config{TimeScale: math.Inf(1)}, "Config.TimeScale"},
		{"user id zero", Config{Users: []User{{ID: 0, APIKey: "k"}}}, "Config.Users[0].ID"},
		{"duplicate user id", Config{Users: []User{{ID: 1, APIKey: "a"}, {ID: 1, APIKey: "b"}}}, "Config.Users[1].ID"},
		{"empty key", Config{Users: []User{{ID: 1}}}, "Config.Users[0].APIKey"},
		{"key with space", Config{Users: []User{{ID: 1, APIKey: "top secret"}}}, "Config.Users[0].APIKey"},
		{"duplicate key", Config{Users: []User{{ID: 1, APIKey: "top-secret"}, {ID: 2, APIKey: "top-secret"}}}, "Config.Users[1].APIKey"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := New(tt.cfg)
			if err == nil {
				s.Close()
				t.Fatal("New accepted an invalid config")
			}
			if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tt.field) {
				t.Errorf("err = %v, want ErrInvalidConfig naming %s", err, tt.field)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("error echoes an API key: %v", err)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error is not one line: %q", err)
			}
		})
	}

	_, err := New(Config{MaxSubscriptions: -1, TimeScale: -1})
	if err == nil || !strings.Contains(err.Error(), "MaxSubscriptions") || !strings.Contains(err.Error(), "TimeScale") {
		t.Errorf("err = %v, want both fields named", err)
	}
}
