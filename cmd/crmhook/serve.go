package main

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/crmhook/crmhook/config"
	"github.com/crmhook/crmhook/internal/app"
	"github.com/crmhook/crmhook/internal/embedded"
	"github.com/spf13/cobra"
)

// defaultConfigFile is read by serve when --config is not given and it exists.
const defaultConfigFile = "crmhook.yaml"

func (c *cli) serveCmd() *cobra.Command {
	var cfgPath, dataDir string
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Receive webhooks, store them durably and deliver them to the sinks",
		Long: `Run the receiver, the dispatcher and the admin listener.

With --config (or a crmhook.yaml in the current directory) it runs that
configuration. With neither it runs on embedded defaults: SQLite in the data
directory (.crmhook), one source per provider with secrets generated on the
first run and kept there, and every event printed to stdout as a JSON line.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, embedded, err := c.loadServeConfig(cfgPath, dataDir)
			if err != nil {
				return err
			}
			logger, err := newLogger(c, cfg.Log)
			if err != nil {
				return err
			}
			m := &app.Main{Config: cfg, Stdout: c.stdout, Logger: logger}
			if err := m.Open(cmd.Context()); err != nil {
				return err
			}
			defer m.Close()
			c.printBanner(m, embedded)
			logger.Info("crmhook serving", "hooks", m.HookURL(), "admin", m.AdminURL())
			return m.Run(cmd.Context())
		},
	}
	cmd.Flags().StringVarP(&cfgPath, "config", "c", "", "config file (default ./crmhook.yaml when it exists, else embedded defaults)")
	cmd.Flags().StringVar(&dataDir, "data-dir", config.DefaultDataDir, "data directory of the embedded defaults")
	return cmd
}

// loadServeConfig reads the config file, or builds the embedded defaults.
// embedded is non-nil for the latter.
func (c *cli) loadServeConfig(cfgPath, dataDir string) (*config.Config, *embedded.Secrets, error) {
	if cfgPath == "" {
		if _, err := os.Stat(defaultConfigFile); err == nil {
			cfgPath = defaultConfigFile
		}
	}
	if cfgPath != "" {
		cfg, err := config.Load(cfgPath, c.getenv)
		if err != nil {
			return nil, nil, err
		}
		if cfg.Admin.Listen != "off" && cfg.Admin.Token == "" {
			// Keep the generated token with the data so `crmhook events` finds it.
			s, _, err := embedded.LoadOrCreateSecrets(cfg.DataDir)
			if err != nil {
				return nil, nil, err
			}
			cfg.Admin.Token = s.AdminToken
		}
		return cfg, nil, nil
	}
	s, created, err := embedded.LoadOrCreateSecrets(dataDir)
	if err != nil {
		return nil, nil, err
	}
	if created {
		fmt.Fprintf(c.stderr, "crmhook: generated new secrets in %s (mode 0600)\n", filepath.Join(dataDir, embedded.SecretsFile))
	}
	cfg := embedded.Config(dataDir, s)
	// An Attio webhook's secret is Attio's (shown once at creation), not
	// ours: take it from the environment, next to the generated one.
	if sec := c.getenv("ATTIO_WEBHOOK_SECRET"); sec != "" {
		for i := range cfg.Sources {
			if cfg.Sources[i].Name == embedded.Attio {
				cfg.Sources[i].Secrets = append(cfg.Sources[i].Secrets, sec)
			}
		}
	}
	if err := cfg.Validate(); err != nil {
		return nil, nil, err
	}
	return cfg, &s, nil
}

// printBanner tells a person where to send webhooks; on embedded defaults
// it includes ready `crmhook send` lines. It goes to stderr: stdout carries
// the events.
func (c *cli) printBanner(m *app.Main, s *embedded.Secrets) {
	w := c.stderr
	hook := m.HookURL()
	fmt.Fprintf(w, "crmhook is receiving on %s/hooks/… (store %s)\n", hook, m.Config.Store)
	if m.AdminURL() != "" {
		fmt.Fprintf(w, "admin, health and metrics on %s\n", m.AdminURL())
		fmt.Fprintf(w, "the console on %s/ui/ (sign in with the admin token)\n", m.AdminURL())
	}
	if s == nil {
		return
	}
	fmt.Fprintf(w, "events are printed to stdout as JSON lines (CloudEvents).\n\n")
	fmt.Fprintf(w, "  Affinity webhook URL:          %s/hooks/%s/%s\n", hook, embedded.Affinity, s.AffinityPath)
	fmt.Fprintf(w, "  Attio webhook URL:             %s/hooks/%s   (signing secrets: $ATTIO_WEBHOOK_SECRET and the one in %s)\n", hook, embedded.Attio, filepath.Join(m.Config.DataDir, embedded.SecretsFile))
	fmt.Fprintf(w, "  Standard Webhooks URL:         %s/hooks/%s\n\n", hook, embedded.Webhooks)
	fmt.Fprintf(w, "Try it from another terminal:\n")
	fmt.Fprintf(w, "  go run ./cmd/crmhook send --provider affinity --type person.created --url %s\n", hook)
	fmt.Fprintf(w, "  go run ./cmd/crmhook send --provider attio --type record.created --url %s\n", hook)
	fmt.Fprintf(w, "  go run ./cmd/crmhook events list\n\n")
}

func newLogger(c *cli, lc config.Log) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(lc.Level)); err != nil {
		return nil, fmt.Errorf("log.level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: level}
	if lc.Format == "json" {
		return slog.New(slog.NewJSONHandler(c.stderr, opts)), nil
	}
	return slog.New(slog.NewTextHandler(c.stderr, opts)), nil
}
