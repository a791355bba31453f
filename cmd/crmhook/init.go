package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"text/template"

	"github.com/crmhook/crmhook/config"
	"github.com/crmhook/crmhook/internal/embedded"
	"github.com/crmhook/crmhook/stdwebhooks"
	"github.com/spf13/cobra"
)

var starterConfig = template.Must(template.New("crmhook.yaml").Parse(`# crmhook configuration — written by ` + "`crmhook init`" + `.
# Values may use ${ENV} or ${ENV:-default}; keep real secrets in the environment.
listen: 127.0.0.1:8080          # public listener: serves /hooks/… only
admin:
  listen: 127.0.0.1:8081        # /healthz /readyz /metrics and the admin API
  token: {{.AdminToken}}
data_dir: .crmhook
store: sqlite://.crmhook/crmhook.db   # or postgres://user@host:5432/db
dedupe_window: 168h             # must exceed every replay window
retention: 168h                 # delivered events are pruned after this
log:
  format: text                  # or json
  level: info
# trusted_proxies: [10.0.0.0/8]  # believe X-Forwarded-For/-Proto only from these

delivery:
  max_attempts: 12
  max_age: 72h
  base_delay: 1s
  max_delay: 1h
  lease: 60s

sources:
  # Affinity signs nothing: the secret path is the authentication. Give
  # Affinity the URL https://<your-host>/hooks/affinity/<secret>.
  - name: affinity
    provider: affinity
    secrets: ["{{.AffinityPath}}"]
    replay_window: {max_age: 12h, max_future: 2m}
    # require_https: true
    # allow_ips: [203.0.113.0/24]
    # rate_limit: {rps: 100, burst: 200}

  # Attio signs each delivery with the webhook's secret, shown once when the
  # webhook is created: put it here (add the new one before removing the old
  # one when you rotate).
  - name: attio
    provider: attio
    secrets: ["${ATTIO_WEBHOOK_SECRET:-{{.Attio}}}"]

  - name: webhooks
    provider: standard-webhooks
    secrets: ["{{.Webhooks}}"]

sinks:
  - name: stdout
    type: file
    path: "-"
  # - name: my-service
  #   type: http
  #   url: https://internal.example.com/crm-events
  #   secret: {{.SinkSecret}}   # Standard Webhooks signature for your service to check
  #   types: ["person.*", "record.*"]
  # - name: script
  #   type: exec
  #   command: ["./handle-event.sh"]
  # - name: bus
  #   type: nats
  #   nats_url: nats://127.0.0.1:4222
  #   subject: crmhook.{source}.{type}
`))

func (c *cli) initCmd() *cobra.Command {
	var out string
	var force bool
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Write a starter config with fresh secrets",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := embedded.NewSecrets()
			if err != nil {
				return err
			}
			data := struct {
				embedded.Secrets
				SinkSecret string
			}{s, stdwebhooks.NewSecret()}
			flags := os.O_WRONLY | os.O_CREATE | os.O_EXCL
			if force {
				flags = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
			}
			f, err := os.OpenFile(out, flags, 0o600)
			if errors.Is(err, fs.ErrExist) {
				return fmt.Errorf("init: %s exists; use --force to overwrite it", out)
			}
			if err != nil {
				return fmt.Errorf("init: %w", err)
			}
			if err := starterConfig.Execute(f, data); err != nil {
				f.Close()
				return fmt.Errorf("init: %w", err)
			}
			if err := f.Close(); err != nil {
				return fmt.Errorf("init: %w", err)
			}
			// What we wrote must load: the starter config is the first thing a user runs.
			if _, err := config.Load(out, c.getenv); err != nil {
				return fmt.Errorf("init: the written config does not load: %w", err)
			}
			fmt.Fprintf(c.stdout, "wrote %s (mode 0600) with fresh secrets; run: crmhook serve --config %s\n", out, out)
			return nil
		},
	}
	cmd.Flags().StringVarP(&out, "output", "o", defaultConfigFile, "file to write")
	cmd.Flags().BoolVar(&force, "force", false, "overwrite an existing file")
	return cmd
}
