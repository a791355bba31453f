package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/crmhook/crmhook/sim/attiosim"
)

// simAttioDefaultAddr is where `crmhook sim attio` listens by default, and
// where its trigger and deliveries subcommands look for it.
const (
	simAttioDefaultAddr = "127.0.0.1:7702"
	simAttioDefaultURL  = "http://" + simAttioDefaultAddr
)

// simAttioRunFlags are the flags of `crmhook sim attio` itself.
type simAttioRunFlags struct {
	simRunFlags
	token string
}

func (c *cli) simAttioCmd() *cobra.Command {
	f := &simAttioRunFlags{}
	cmd := &cobra.Command{
		Use:   "attio",
		Short: "Run a local Attio workspace speaking the REST API v2 webhook endpoints",
		Long: `Run a local Attio workspace: a real HTTP server speaking Attio's REST API v2
webhook endpoints (POST/GET /v2/webhooks, GET/PATCH/DELETE
/v2/webhooks/{webhook_id}) with Attio's rules — Bearer token, {"data": …}
bodies, Attio's error objects, known event types, filter validation, rate
limits with Retry-After — and delivering events as Attio does: signed with
the webhook's secret (Attio-Signature and X-Attio-Signature), with an
Idempotency-Key kept across retries, filtered per subscription, retried up to
10 times over about 3 days (divided by --time-scale), after which the webhook
is marked degraded.

Unlike Attio, target URLs may use plain http when the host is loopback, so a
local receiver works. Create a webhook with 'crmhook attio webhooks create
--base-url http://ADDR/v2 --api-key TOKEN …', send events with 'crmhook sim
attio trigger TYPE' and read what happened with 'crmhook sim attio
deliveries'. It stops on Ctrl-C or SIGTERM.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.runSimAttio(cmd.Context(), f)
		},
	}
	f.add(cmd, simAttioDefaultAddr, "100000 plays the ~3 day retry schedule in under 3 seconds")
	cmd.Flags().StringVar(&f.token, "token", attiosim.DefaultToken, "the API token the simulator accepts (Authorization: Bearer …)")
	cmd.AddCommand(c.simAttioTriggerCmd(), c.simAttioDeliveriesCmd())
	return cmd
}

// runSimAttio serves the simulator until ctx is done (main cancels it on
// SIGINT and SIGTERM), then stops the server and the retry loops.
func (c *cli) runSimAttio(ctx context.Context, f *simAttioRunFlags) error {
	if err := f.checkTimeScale("attio"); err != nil {
		return err
	}
	if strings.TrimSpace(f.token) == "" {
		return errors.New("sim attio: --token must not be empty")
	}
	sim, err := attiosim.New(attiosim.Config{
		Token:     f.token,
		TimeScale: f.timeScale,
		Logger:    c.simLogger(),
	})
	if err != nil {
		return fmt.Errorf("sim attio: %w", err)
	}
	return c.serveSim(ctx, "attio", f.addr, sim, func(base string) {
		fmt.Fprintf(c.stdout, `attio simulator listening on %s
  API root: %s/v2
  token:    %s
create a webhook (http is fine for a loopback receiver):
  crmhook attio webhooks create --base-url %s/v2 --api-key %s --url http://127.0.0.1:8080/hooks/attio --event record.created
then trigger events:
  crmhook sim attio trigger record.created --sim-url %s
`, base, base, f.token, base, f.token, base)
	})
}

func (c *cli) simAttioTriggerCmd() *cobra.Command {
	sc := &simClient{sim: "attio", defaultURL: simAttioDefaultURL}
	var eventFile string
	cmd := &cobra.Command{
		Use:   "trigger TYPE [--event FILE.json] [--sim-url URL]",
		Short: "Make the running simulator emit an event to every webhook whose subscriptions match it",
		Long: `Make the running simulator emit an event of TYPE (record.created,
list-entry.updated, … — every Attio event type gets a realistic sample, with
the ids its family carries). With --event, the file's JSON object is merged
onto the sample (a JSON merge patch: {"id":{"list_id":"…"}} changes one id,
null removes a key, a whole event replaces everything); '-' reads standard
input.

Each webhook with a subscription to TYPE whose filter matches the event gets
one signed delivery. It prints the first attempt to each; failed deliveries
are retried in the background (see 'deliveries').`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := attiosim.TriggerRequest{EventType: args[0]}
			if eventFile != "" {
				event, err := sc.readJSONFile(cmd, "event", eventFile, "a JSON object", isJSONObject)
				if err != nil {
					return err
				}
				req.Event = event
			}
			return simTrigger(cmd, c.stdout, sc, req, writeSimAttioTrigger)
		},
	}
	cmd.Flags().StringVar(&eventFile, "event", "", "JSON file merged onto the sample event ('-' for standard input)")
	sc.addFlags(cmd)
	return cmd
}

// isJSONObject reports whether raw is one JSON object.
func isJSONObject(raw []byte) bool {
	var obj map[string]json.RawMessage
	return json.Unmarshal(raw, &obj) == nil && obj != nil
}

func writeSimAttioTrigger(w io.Writer, res attiosim.TriggerResult) error {
	if len(res.Deliveries) == 0 {
		_, err := fmt.Fprintf(w, "%s: no webhook subscribes to it with a matching filter; nothing was sent\n", res.EventType)
		return err
	}
	fmt.Fprintf(w, "%s sent to %d webhook(s):\n", res.EventType, len(res.Deliveries))
	rows := make([][]string, 0, len(res.Deliveries))
	for _, d := range res.Deliveries {
		rows = append(rows, []string{d.WebhookID, simAttemptStatus(d.StatusCode, d.Error), simFirstResult(d.OK), d.IdempotencyKey})
	}
	return writeTable(w, []string{"WEBHOOK", "STATUS", "RESULT", "IDEMPOTENCY-KEY"}, rows)
}

func (c *cli) simAttioDeliveriesCmd() *cobra.Command {
	sc := &simClient{sim: "attio", defaultURL: simAttioDefaultURL}
	cmd := &cobra.Command{
		Use:   "deliveries [--json] [--sim-url URL]",
		Short: "Show the running simulator's delivery log (every attempt of every message)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			header := []string{"TIME", "WEBHOOK", "EVENT", "ATTEMPT", "STATUS", "RESULT", "IDEMPOTENCY-KEY"}
			return simDeliveries(cmd, c.stdout, sc, header, func(d attiosim.Delivery) []string {
				result := "delivered"
				switch {
				case d.GaveUp:
					result = "failed, gave up (webhook degraded)"
				case !d.OK:
					result = "failed"
				}
				return []string{
					d.Time.UTC().Format(time.RFC3339),
					d.WebhookID,
					d.EventType,
					strconv.Itoa(d.Attempt),
					simAttemptStatus(d.StatusCode, d.Error),
					result,
					d.IdempotencyKey,
				}
			})
		},
	}
	sc.addFlags(cmd)
	return cmd
}
