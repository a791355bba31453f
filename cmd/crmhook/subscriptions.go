package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/crmhook/crmhook"
	"github.com/crmhook/crmhook/config"
	"github.com/crmhook/crmhook/internal/app"
	"github.com/crmhook/crmhook/subscription"
)

// defaultSettle is how long a new secret stays in the store before the
// provider is sent to it: more than two of the receivers' secret reloads
// (app.DefaultSecretsRefresh), so that every replica accepts it by then.
const defaultSettle = 5 * time.Second

func (c *cli) subscriptionsCmd() *cobra.Command {
	var cfgPath string
	cmd := &cobra.Command{
		Use:   "subscriptions",
		Short: "Make the provider subscriptions the config declares exist (plan, apply) and check them (status)",
		Long: `Make the provider subscriptions the config declares exist, and check them.

Each source with a subscription block declares the webhook that feeds it at
Affinity (API V1 or v2) or Attio, pointing at public_url/hooks/SOURCE.
"plan" compares the providers with the config, "apply" makes them match,
"status" shows each subscription with the provider's status, the watchdog's
last check, the source's last event and its gaps.

Subscriptions at other URLs are listed as unmanaged and never touched, unless
apply --prune deletes them. The config comes from -c, else ./crmhook.yaml; the
store named there keeps the Attio secrets apply receives.`,
	}
	cmd.PersistentFlags().StringVarP(&cfgPath, "config", "c", "", "config file (default ./"+defaultConfigFile+")")
	cmd.PersistentFlags().DurationVar(&c.settle, "settle", defaultSettle, "how long a new Attio secret is stored before its webhook receives events (every running receiver reloads secrets every 2s)")
	cmd.AddCommand(c.subscriptionsPlanCmd(&cfgPath), c.subscriptionsApplyCmd(&cfgPath), c.subscriptionsStatusCmd(&cfgPath))
	return cmd
}

// withSubscriptions loads the config, opens its store and runs fn with a
// Manager over both; the store is closed after.
func (c *cli) withSubscriptions(ctx context.Context, cfgPath string, fn func(*subscription.Manager) error) (err error) {
	if cfgPath == "" {
		if _, serr := os.Stat(defaultConfigFile); serr != nil {
			return errors.New("subscriptions: no config: pass -c FILE (there is no ./" + defaultConfigFile + ")")
		}
		cfgPath = defaultConfigFile
	}
	cfg, err := config.Load(cfgPath, c.getenv)
	if err != nil {
		return err
	}
	st, err := app.OpenStore(ctx, cfg.Store, app.StoreOptions{})
	if err != nil {
		return err
	}
	defer func() {
		if cerr := st.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	cs, ok := st.(crmhook.ControlStore)
	if !ok {
		return fmt.Errorf("subscriptions: the store %s keeps no control state", cfg.Store)
	}
	m := &subscription.Manager{
		Config:       cfg,
		Store:        cs,
		SecretSettle: c.settle,
		// Changes are printed by the commands; the log says only what
		// needs attention.
		Logger: slog.New(slog.NewTextHandler(c.stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
	return fn(m)
}

func (c *cli) subscriptionsPlanCmd(cfgPath *string) *cobra.Command {
	var prune, asJSON bool
	cmd := &cobra.Command{
		Use:   "plan",
		Short: "Show what apply would change at the providers",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.withSubscriptions(cmd.Context(), *cfgPath, func(m *subscription.Manager) error {
				p, err := m.Plan(cmd.Context(), subscription.PlanOptions{Prune: prune})
				if err != nil {
					return err
				}
				if asJSON {
					return writeJSON(c.stdout, p)
				}
				return c.printPlan(p)
			})
		},
	}
	cmd.Flags().BoolVar(&prune, "prune", false, "plan to delete the subscriptions that are not crmhook's (unmanaged)")
	addJSONFlag(cmd, &asJSON)
	return cmd
}

// stdinIsTerminal says whether r is an interactive terminal a person can
// confirm on (a variable so tests can pretend).
var stdinIsTerminal = func(r io.Reader) bool {
	f, ok := r.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	if err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		return false
	}
	null, err := os.Stat(os.DevNull) // a character device too, but nobody types there
	return err != nil || !os.SameFile(fi, null)
}

func (c *cli) subscriptionsApplyCmd(cfgPath *string) *cobra.Command {
	var prune, yes bool
	cmd := &cobra.Command{
		Use:   "apply",
		Short: "Create, update, enable, recreate and delete subscriptions until the providers match the config",
		Long: `Show the plan, ask for confirmation (or take --yes), and carry it out.

Applying is idempotent: a second apply changes nothing. A plan that would hold
more subscriptions than a provider allows (Affinity: 3 per instance) is refused
before anything changes.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			return c.withSubscriptions(ctx, *cfgPath, func(m *subscription.Manager) error {
				p, err := m.Plan(ctx, subscription.PlanOptions{Prune: prune})
				if err != nil {
					return err
				}
				if err := c.printPlan(p); err != nil {
					return err
				}
				if !p.Changed() {
					return nil
				}
				if !yes {
					in := cmd.InOrStdin()
					if !stdinIsTerminal(in) {
						return errors.New("subscriptions apply: nothing changed: pass --yes to apply without a terminal to confirm on")
					}
					fmt.Fprint(c.stdout, "\nApply these changes? [y/N] ")
					line, _ := bufio.NewReader(in).ReadString('\n')
					if a := strings.ToLower(strings.TrimSpace(line)); a != "y" && a != "yes" {
						return errors.New("subscriptions apply: cancelled, nothing changed")
					}
				}
				err = m.Apply(ctx, p)
				c.printApplied(p)
				return err
			})
		},
	}
	cmd.Flags().BoolVar(&prune, "prune", false, "delete the subscriptions that are not crmhook's (unmanaged)")
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "apply without asking for confirmation")
	return cmd
}

// printPlan prints the plan as a table and a one-line summary.
func (c *cli) printPlan(p *subscription.Plan) error {
	if len(p.Steps) == 0 {
		fmt.Fprintln(c.stdout, "No source declares a subscription (add a subscription block to a source).")
		return nil
	}
	rows := make([][]string, 0, len(p.Steps))
	counts := map[subscription.Action]int{}
	for _, s := range p.Steps {
		counts[s.Action]++
		rows = append(rows, []string{s.Source, string(s.Action), dash(s.SubscriptionID), string(s.Status), dash(strings.Join(s.Changes, "; "))})
	}
	if err := writeTable(c.stdout, []string{"SOURCE", "ACTION", "ID", "STATUS", "CHANGES"}, rows); err != nil {
		return err
	}
	var parts []string
	for _, a := range []subscription.Action{subscription.ActionCreate, subscription.ActionUpdate, subscription.ActionEnable, subscription.ActionRecreate, subscription.ActionDelete} {
		if n := counts[a]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d to %s", n, a))
		}
	}
	summary := "No changes: every declared subscription is as the config says."
	if len(parts) > 0 {
		summary = "Plan: " + strings.Join(parts, ", ") + "."
	}
	if n := counts[subscription.ActionUnmanaged]; n > 0 {
		summary += fmt.Sprintf(" %d unmanaged left alone (--prune deletes them).", n)
	}
	fmt.Fprintln(c.stdout, "\n"+summary)
	return nil
}

// printApplied says what apply did, step by step.
func (c *cli) printApplied(p *subscription.Plan) {
	var lines []string
	for _, s := range p.Steps {
		if s.Result != "" {
			lines = append(lines, s.Source+": "+s.Result)
		}
	}
	if len(lines) > 0 {
		fmt.Fprintln(c.stdout, "\n"+strings.Join(lines, "\n"))
	}
}

func (c *cli) subscriptionsStatusCmd(cfgPath *string) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show each declared subscription: provider status, last check, last event, gaps",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.withSubscriptions(cmd.Context(), *cfgPath, func(m *subscription.Manager) error {
				rows, err := m.Status(cmd.Context())
				if err != nil {
					return err
				}
				if asJSON {
					return writeJSON(c.stdout, statusJSON(rows))
				}
				table := make([][]string, 0, len(rows))
				var failed []string
				for _, r := range rows {
					status := string(r.Status)
					if r.Error != "" {
						status = "unknown"
						failed = append(failed, r.Source+": "+oneLine(r.Error, 200))
					}
					table = append(table, []string{r.Source, dash(r.SubscriptionID), status, when(r.LastCheckedAt), when(r.LastEventAt), gaps(r.Gaps)})
				}
				if err := writeTable(c.stdout, []string{"SOURCE", "ID", "STATUS", "LAST CHECK", "LAST EVENT", "GAPS"}, table); err != nil {
					return err
				}
				if len(failed) > 0 {
					fmt.Fprintln(c.stderr, strings.Join(failed, "\n"))
					return fmt.Errorf("subscriptions status: could not ask the provider of %d source(s)", len(failed))
				}
				return nil
			})
		},
	}
	addJSONFlag(cmd, &asJSON)
	return cmd
}

// subscriptionStatusJSON is a status row for scripts.
type subscriptionStatusJSON struct {
	subscription.StatusRow
	Gaps []gapJSON `json:"gaps"`
}

type gapJSON struct {
	SubscriptionID string    `json:"subscription_id"`
	From           time.Time `json:"from"`
	To             time.Time `json:"to"`
	RecordedAt     time.Time `json:"recorded_at"`
}

func statusJSON(rows []subscription.StatusRow) []subscriptionStatusJSON {
	out := make([]subscriptionStatusJSON, 0, len(rows))
	for _, r := range rows {
		j := subscriptionStatusJSON{StatusRow: r, Gaps: make([]gapJSON, 0, len(r.Gaps))}
		for _, g := range r.Gaps {
			j.Gaps = append(j.Gaps, gapJSON{SubscriptionID: g.SubscriptionID, From: g.From, To: g.To, RecordedAt: g.RecordedAt})
		}
		out = append(out, j)
	}
	return out
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func when(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

// gaps renders a source's gaps as their count and the last one's span.
func gaps(gs []crmhook.Gap) string {
	if len(gs) == 0 {
		return "0"
	}
	n := strconv.Itoa(len(gs))
	if len(gs) >= subscription.StatusGaps {
		n += "+"
	}
	return fmt.Sprintf("%s (last %s–%s)", n, when(gs[0].From), when(gs[0].To))
}
