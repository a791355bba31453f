// Package embedded is the no-config setup of `crmhook serve`: one source
// per provider, SQLite in the data directory, events to stdout, and the
// secrets file that keeps the secrets it generated on the first run.
package embedded

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/crmhook/crmhook"
	"github.com/crmhook/crmhook/config"
	"github.com/crmhook/crmhook/stdwebhooks"
)

// SecretsFile is where the no-config run keeps the secrets it generated.
const SecretsFile = "secrets.json"

// Secrets are the secrets of the embedded (no-config) setup, generated on
// the first run and kept in the data directory with mode 0600.
type Secrets struct {
	AffinityPath string `json:"affinity_path_secret"`
	Attio        string `json:"attio_signing_secret"`
	Webhooks     string `json:"standard_webhooks_secret"`
	AdminToken   string `json:"admin_token"`
}

// The source names of the embedded setup.
const (
	Affinity = "affinity"
	Attio    = "attio"
	Webhooks = "webhooks"
)

// RandomSecret returns n random bytes as URL-safe base64 without padding:
// 32 bytes give 43 characters, above the 32-character floor for path secrets.
func RandomSecret(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on supported platforms
	return base64.RawURLEncoding.EncodeToString(b)
}

// NewSecrets generates a fresh set.
func NewSecrets() (Secrets, error) {
	return Secrets{AffinityPath: RandomSecret(32), Attio: RandomSecret(32), Webhooks: stdwebhooks.NewSecret(), AdminToken: RandomSecret(32)}, nil
}

// LoadSecrets reads dataDir's secrets file.
func LoadSecrets(dataDir string) (Secrets, error) {
	var s Secrets
	b, err := os.ReadFile(filepath.Join(dataDir, SecretsFile))
	if err != nil {
		return s, fmt.Errorf("embedded: secrets: %w", err)
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("embedded: secrets: %s is not valid JSON", filepath.Join(dataDir, SecretsFile))
	}
	if s.AffinityPath == "" || s.Attio == "" || s.Webhooks == "" || s.AdminToken == "" {
		return s, fmt.Errorf("embedded: secrets: %s lacks a secret; delete it to generate new ones", filepath.Join(dataDir, SecretsFile))
	}
	return s, nil
}

// LoadOrCreateSecrets reads dataDir's secrets, generating and keeping them
// on the first run. created says they are new.
func LoadOrCreateSecrets(dataDir string) (s Secrets, created bool, err error) {
	s, err = LoadSecrets(dataDir)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return s, false, err
	}
	if s, err = NewSecrets(); err != nil {
		return s, false, err
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return s, false, fmt.Errorf("embedded: data dir: %w", err)
	}
	b, _ := json.MarshalIndent(s, "", "  ")
	// O_EXCL: two first runs at once must not overwrite each other's secrets.
	f, err := os.OpenFile(filepath.Join(dataDir, SecretsFile), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return s, false, fmt.Errorf("embedded: secrets: %w", err)
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return s, false, fmt.Errorf("embedded: secrets: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return s, false, fmt.Errorf("embedded: secrets: %w", err)
	}
	return s, true, f.Close()
}

// Config is the no-config setup: SQLite in dataDir, one source per
// provider, every event written as a JSON line to stdout.
func Config(dataDir string, s Secrets) *config.Config {
	c := &config.Config{
		DataDir: dataDir,
		Admin:   config.Admin{Token: s.AdminToken},
		Sources: []config.Source{
			{Name: Affinity, Provider: crmhook.ProviderAffinity, Secrets: []string{s.AffinityPath}},
			{Name: Attio, Provider: crmhook.ProviderAttio, Secrets: []string{s.Attio}},
			{Name: Webhooks, Provider: crmhook.ProviderStandardWebhooks, Secrets: []string{s.Webhooks}},
		},
		Sinks: []config.Sink{{Name: "stdout", Type: "file", Path: "-"}},
	}
	c.SetDefaults()
	return c
}
