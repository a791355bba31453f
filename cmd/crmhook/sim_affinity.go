package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/crmhook/crmhook/sim/affinitysim"
)

// simAffinityDefaultAddr is where `crmhook sim affinity` listens by default,
// and where its trigger and deliveries subcommands look for it.
const (
	simAffinityDefaultAddr = "127.0.0.1:7701"
	simAffinityDefaultURL  = "http://" + simAffinityDefaultAddr
)

// simAffinityRunFlags are the flags of `crmhook sim affinity` itself.
type simAffinityRunFlags struct {
	simRunFlags
	adminKey  string
	userKey   string
	rateLimit int
}

func (c *cli) simAffinityCmd() *cobra.Command {
	f := &simAffinityRunFlags{}
	cmd := &cobra.Command{
		Use:   "affinity",
		Short: "Run a local Affinity instance speaking the V1 webhook API",
		Long: `Run a local Affinity instance: a real HTTP server speaking Affinity's V1
webhook API (GET /webhook, GET /webhook/{id}, POST /webhook/subscribe,
PUT and DELETE /webhook/{id}) with Affinity's rules — API keys over HTTP Basic
or Bearer, at most 3 subscriptions, the sample.webhook probe on create and
update, creator-only update, creator-or-admin delete, rate limits — and
delivering events as Affinity does, retrying failures with exponential
backoff for 10 hours (divided by --time-scale) before disabling the
subscription.

Point crmhook (or any Affinity client) at it with base URL http://ADDR and
one of the two API keys, create a subscription, then send events with
'crmhook sim affinity trigger TYPE' and read what happened with
'crmhook sim affinity deliveries'. It stops on Ctrl-C or SIGTERM.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.runSimAffinity(cmd.Context(), f)
		},
	}
	f.add(cmd, simAffinityDefaultAddr, "36000 plays the 10 hour retry window in a second")
	cmd.Flags().StringVar(&f.adminKey, "admin-key", affinitysim.DefaultAdminKey, "API key of user 1, an admin")
	cmd.Flags().StringVar(&f.userKey, "user-key", affinitysim.DefaultUserKey, "API key of user 2, not an admin")
	cmd.Flags().IntVar(&f.rateLimit, "rate-limit", 900, "requests per user per minute before 429")
	cmd.AddCommand(c.simAffinityTriggerCmd(), c.simAffinityDeliveriesCmd())
	return cmd
}

// runSimAffinity serves the simulator until ctx is done (main cancels it on
// SIGINT and SIGTERM), then stops the server and the retry loops.
func (c *cli) runSimAffinity(ctx context.Context, f *simAffinityRunFlags) error {
	if f.rateLimit <= 0 {
		return fmt.Errorf("sim affinity: --rate-limit must be a positive number of requests per minute, got %d", f.rateLimit)
	}
	if err := f.checkTimeScale("affinity"); err != nil {
		return err
	}
	if f.adminKey == f.userKey {
		return errors.New("sim affinity: --admin-key and --user-key must differ")
	}
	sim, err := affinitysim.New(affinitysim.Config{
		Users: []affinitysim.User{
			{ID: 1, APIKey: f.adminKey, Admin: true},
			{ID: 2, APIKey: f.userKey},
		},
		RateLimitPerMinute: f.rateLimit,
		TimeScale:          f.timeScale,
		Logger:             c.simLogger(),
	})
	if err != nil {
		return fmt.Errorf("sim affinity: %w", err)
	}
	return c.serveSim(ctx, "affinity", f.addr, sim, func(base string) {
		fmt.Fprintf(c.stdout, "affinity simulator listening on %s (API keys: %s = user 1, admin; %s = user 2); trigger events with: crmhook sim affinity trigger person.created --sim-url %s\n",
			base, f.adminKey, f.userKey, base)
	})
}

func (c *cli) simAffinityTriggerCmd() *cobra.Command {
	sc := &simClient{sim: "affinity", defaultURL: simAffinityDefaultURL}
	var bodyFile string
	cmd := &cobra.Command{
		Use:   "trigger TYPE [--body FILE.json] [--sim-url URL]",
		Short: "Make the running simulator deliver an event to every subscription that wants it",
		Long: `Make the running simulator emit an event of TYPE (person.created,
list_entry.created, … — any of Affinity's 30 types gets a realistic sample
body). With --body the file's JSON is sent as the event body instead ('-'
reads standard input); then any type is allowed, so receivers can be tried
with types Affinity may add later.

It prints the first attempt to each subscription that wants the event; failed
deliveries are retried in the background (see 'deliveries').`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := affinitysim.TriggerRequest{Type: args[0]}
			if bodyFile != "" {
				body, err := sc.readJSONFile(cmd, "body", bodyFile, "valid JSON", json.Valid)
				if err != nil {
					return err
				}
				req.Body = body
			}
			return simTrigger(cmd, c.stdout, sc, req, writeSimAffinityTrigger)
		},
	}
	cmd.Flags().StringVar(&bodyFile, "body", "", "JSON file holding the event body ('-' for standard input); default: the type's sample body")
	sc.addFlags(cmd)
	return cmd
}

func writeSimAffinityTrigger(w io.Writer, res affinitysim.TriggerResult) error {
	if len(res.Deliveries) == 0 {
		_, err := fmt.Fprintf(w, "%s (sent_at %d): no enabled subscription wants it; nothing was sent\n", res.Type, res.SentAt)
		return err
	}
	fmt.Fprintf(w, "%s (sent_at %d) sent to %d subscription(s):\n", res.Type, res.SentAt, len(res.Deliveries))
	rows := make([][]string, 0, len(res.Deliveries))
	for _, d := range res.Deliveries {
		rows = append(rows, []string{strconv.FormatInt(d.SubscriptionID, 10), simAffinityTargetHost(d.URL),
			simAttemptStatus(d.StatusCode, d.Error), simFirstResult(d.OK)})
	}
	return writeTable(w, []string{"SUBSCRIPTION", "TARGET", "STATUS", "RESULT"}, rows)
}

func (c *cli) simAffinityDeliveriesCmd() *cobra.Command {
	sc := &simClient{sim: "affinity", defaultURL: simAffinityDefaultURL}
	cmd := &cobra.Command{
		Use:   "deliveries [--sim-url URL]",
		Short: "Show the running simulator's delivery log (every attempt of every event)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return simDeliveries(cmd, c.stdout, sc, []string{"TIME", "SUBSCRIPTION", "TYPE", "ATTEMPT", "STATUS"},
				func(d affinitysim.Delivery) []string {
					return []string{
						d.Time.UTC().Format(time.RFC3339),
						strconv.FormatInt(d.SubscriptionID, 10),
						d.EventType,
						strconv.Itoa(d.Attempt),
						simAttemptStatus(d.StatusCode, d.Error),
					}
				})
		},
	}
	sc.addFlags(cmd)
	return cmd
}

// simAffinityTargetHost shows where a delivery went without its path: webhook
// URLs carry path secrets.
func simAffinityTargetHost(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "?"
	}
	return u.Scheme + "://" + u.Host
}
