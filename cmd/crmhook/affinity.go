package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/crmhook/crmhook/affinity"
)

// affinityFlags are the flags of the affinity group, shared by every subcommand.
type affinityFlags struct {
	apiKey  string
	baseURL string
	bearer  bool
	api     string // --api: v1 (default) or v2
}

func (c *cli) affinityCmd() *cobra.Command {
	f := &affinityFlags{}
	cmd := &cobra.Command{
		Use:   "affinity",
		Short: "Manage Affinity webhook subscriptions (API V1, or v2 with --api v2)",
		Long: `Manage Affinity webhook subscriptions (API V1, or API v2 with --api v2).

The API key comes from --api-key or AFFINITY_API_KEY and is sent with HTTP
Basic auth (empty user), or as a bearer token with --bearer. The API root
comes from --base-url or AFFINITY_BASE_URL (for the simulator:
http://127.0.0.1:7701), else https://api.affinity.co.

An Affinity instance holds at most 3 subscriptions, and Affinity POSTs a
sample.webhook probe to the URL on create and update: the call fails unless
the URL answers 2xx quickly.

--api v2 uses Affinity's v2 webhook API (beta) for the same subscriptions:
the key always goes as a bearer token, webhooks have a status (active or
disabled; enable and disable set it, update takes --status), a URL may be
used by one webhook of the organization only and must not hold credentials,
and a user lists and changes only the webhooks they created unless allowed
to manage all of them.`,
	}
	cmd.PersistentFlags().StringVar(&f.apiKey, "api-key", "", "Affinity API key (default $"+affinity.EnvAPIKey+")")
	cmd.PersistentFlags().StringVar(&f.baseURL, "base-url", "", "API root (default $"+affinity.EnvBaseURL+", else "+affinity.DefaultBaseURL+")")
	cmd.PersistentFlags().BoolVar(&f.bearer, "bearer", false, "send the key as a bearer token instead of HTTP Basic auth")
	addAffinityAPIFlag(cmd, f)

	webhooks := &cobra.Command{Use: "webhooks", Short: "List, show, create, update, enable, disable and delete subscriptions"}
	webhooks.AddCommand(
		c.affinityListCmd(f),
		c.affinityGetCmd(f),
		c.affinityCreateCmd(f),
		c.affinityUpdateCmd(f),
		c.affinityDeleteCmd(f),
		c.affinitySwitchCmd(f, "enable", "Switch a subscription back on (Affinity probes its URL first)"),
		c.affinitySwitchCmd(f, "disable", "Stop deliveries to a subscription without deleting it"),
	)
	c.routeAffinityV2(f, webhooks)
	cmd.AddCommand(webhooks)
	return cmd
}

// affinityClient builds an API client from the flags, then the environment.
func (c *cli) affinityClient(f *affinityFlags) (*affinity.Client, error) {
	key := f.apiKey
	if key == "" {
		key = c.getenv(affinity.EnvAPIKey)
	}
	if strings.TrimSpace(key) == "" {
		return nil, errors.New("affinity: no API key: set " + affinity.EnvAPIKey + " or pass --api-key")
	}
	var opts []affinity.Option
	base := f.baseURL
	if base == "" {
		base = c.getenv(affinity.EnvBaseURL)
	}
	if base != "" {
		opts = append(opts, affinity.WithBaseURL(base))
	}
	if f.bearer {
		opts = append(opts, affinity.WithBearerAuth())
	}
	return affinity.NewClient(key, opts...)
}

// parseAffinityID reads a subscription id argument.
func parseAffinityID(arg string) (int64, error) {
	id, err := strconv.ParseInt(strings.TrimSpace(arg), 10, 64)
	if err != nil || id <= 0 {
		return 0, fmt.Errorf("webhook id must be a positive integer, got %q", arg)
	}
	return id, nil
}

// printAffinityWebhooks prints subscriptions as JSON for scripts or a table for people.
func (c *cli) printAffinityWebhooks(asJSON bool, whs ...*affinity.Webhook) error {
	if asJSON {
		if len(whs) == 1 {
			return writeJSON(c.stdout, whs[0])
		}
		return writeJSON(c.stdout, whs)
	}
	return writeAffinityWebhookTable(c.stdout, whs)
}

func (c *cli) affinityListCmd(f *affinityFlags) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List every webhook subscription of the instance",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			client, err := c.affinityClient(f)
			if err != nil {
				return err
			}
			whs, _, err := client.Webhooks.List(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(c.stdout, whs) // [] when there are none
			}
			return writeAffinityWebhookTable(c.stdout, whs)
		},
	}
	addJSONFlag(cmd, &asJSON)
	return cmd
}

func (c *cli) affinityGetCmd(f *affinityFlags) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "get WEBHOOK_ID",
		Short: "Show one webhook subscription",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseAffinityID(args[0])
			if err != nil {
				return err
			}
			client, err := c.affinityClient(f)
			if err != nil {
				return err
			}
			wh, _, err := client.Webhooks.Get(cmd.Context(), id)
			if err != nil {
				return err
			}
			return c.printAffinityWebhooks(asJSON, wh)
		},
	}
	addJSONFlag(cmd, &asJSON)
	return cmd
}

// affinityEventFlags are the event-type flags shared by create and update.
type affinityEventFlags struct {
	events       []string
	allowUnknown bool
}

func addAffinityEventFlags(cmd *cobra.Command, e *affinityEventFlags) {
	cmd.Flags().StringSliceVar(&e.events, "event", nil, "event type to subscribe to, e.g. person.created (repeat, or comma-separate)")
	cmd.Flags().BoolVar(&e.allowUnknown, "allow-unknown", false, "send event types this tool does not know (Affinity may have added them)")
}

// eventTypes checks the --event values: typos are refused before any API
// call (every call counts against Affinity's quota), unless allowed.
func (e *affinityEventFlags) eventTypes() ([]affinity.EventType, error) {
	out := make([]affinity.EventType, 0, len(e.events))
	for _, s := range e.events {
		t := affinity.EventType(strings.TrimSpace(s))
		if t == "" {
			return nil, errors.New("--event must not be empty")
		}
		if !t.Known() && !e.allowUnknown {
			names := make([]string, 0, len(affinity.EventTypes()))
			for _, k := range affinity.EventTypes() {
				names = append(names, string(k))
			}
			return nil, fmt.Errorf("unknown event type %q (known: %s; pass --allow-unknown to send it anyway)", t, strings.Join(names, ", "))
		}
		if !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	return out, nil
}

func (c *cli) affinityCreateCmd(f *affinityFlags) *cobra.Command {
	var asJSON bool
	var target string
	var e affinityEventFlags
	cmd := &cobra.Command{
		Use:   "create --url URL [--event TYPE]...",
		Short: "Subscribe a URL to events (no --event: every event type)",
		Long: `Subscribe a URL to events; without --event it receives every event type.

Affinity signs nothing: put a long random secret in the URL's path (crmhook's
receiver listens on /hooks/{source}/{secret}). Affinity POSTs a sample.webhook
probe to the URL during the call, so the receiver must already be running.
An instance holds at most 3 subscriptions; when it is full this command lists
the existing ones.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if strings.TrimSpace(target) == "" {
				return errors.New("--url is required")
			}
			types, err := e.eventTypes()
			if err != nil {
				return err
			}
			client, err := c.affinityClient(f)
			if err != nil {
				return err
			}
			wh, _, err := client.Webhooks.Create(cmd.Context(), &affinity.CreateWebhookRequest{
				WebhookURL:    target,
				Subscriptions: types,
			})
			if errors.Is(err, affinity.ErrSubscriptionLimit) {
				return affinityLimitError(cmd.Context(), client, err)
			}
			if err != nil {
				return err
			}
			return c.printAffinityWebhooks(asJSON, wh)
		},
	}
	cmd.Flags().StringVar(&target, "url", "", "URL Affinity POSTs events to (with a secret path)")
	addAffinityEventFlags(cmd, &e)
	addJSONFlag(cmd, &asJSON)
	return cmd
}

// affinityLimitError explains a refused create: it lists the subscriptions
// that fill the instance, so the user knows which one to delete or reuse.
func affinityLimitError(ctx context.Context, client *affinity.Client, createErr error) error {
	whs, _, err := client.Webhooks.List(ctx)
	if err != nil {
		return fmt.Errorf("%w (listing the existing subscriptions failed too: %v)", createErr, err)
	}
	existing := make([]string, 0, len(whs))
	for _, wh := range whs {
		existing = append(existing, strconv.FormatInt(wh.ID, 10)+" "+wh.WebhookURL)
	}
	if len(existing) == 0 {
		existing = append(existing, "none listed")
	}
	return fmt.Errorf("%w: the instance already has %d subscriptions (%s); delete one with `crmhook affinity webhooks delete ID` or change one with `crmhook affinity webhooks update ID`",
		createErr, len(whs), strings.Join(existing, ", "))
}

func (c *cli) affinityUpdateCmd(f *affinityFlags) *cobra.Command {
	var asJSON, allEvents, disabled bool
	var target string
	var e affinityEventFlags
	cmd := &cobra.Command{
		Use:   "update WEBHOOK_ID [--url URL] [--event TYPE]... [--all-events] [--disabled=true|false]",
		Short: "Change a subscription's URL, events or state; only what is given is sent",
		Long: `Change a subscription; only the flags given are sent.

--event replaces the event list; --all-events subscribes to every event type.
Only the subscription's creator may update it. Affinity probes a new URL (and
the URL of a subscription being re-enabled) before it accepts the change.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseAffinityID(args[0])
			if err != nil {
				return err
			}
			disabledSet := cmd.Flags().Changed("disabled")
			urlSet := cmd.Flags().Changed("url")
			if !urlSet && len(e.events) == 0 && !allEvents && !disabledSet {
				return errors.New("nothing to update: give --url, --event, --all-events or --disabled")
			}
			if allEvents && len(e.events) > 0 {
				return errors.New("use either --event or --all-events, not both")
			}
			req := &affinity.UpdateWebhookRequest{}
			if urlSet {
				if strings.TrimSpace(target) == "" {
					return errors.New("--url must not be empty")
				}
				req.WebhookURL = &target
			}
			switch {
			case allEvents:
				req.Subscriptions = &[]affinity.EventType{}
			case len(e.events) > 0:
				types, err := e.eventTypes()
				if err != nil {
					return err
				}
				req.Subscriptions = &types
			}
			if disabledSet {
				req.Disabled = &disabled
			}
			client, err := c.affinityClient(f)
			if err != nil {
				return err
			}
			wh, _, err := client.Webhooks.Update(cmd.Context(), id, req)
			if err != nil {
				return err
			}
			return c.printAffinityWebhooks(asJSON, wh)
		},
	}
	cmd.Flags().StringVar(&target, "url", "", "new URL (Affinity probes it)")
	addAffinityEventFlags(cmd, &e)
	cmd.Flags().BoolVar(&allEvents, "all-events", false, "subscribe to every event type")
	cmd.Flags().BoolVar(&disabled, "disabled", false, "--disabled=true stops deliveries, --disabled=false resumes them")
	addJSONFlag(cmd, &asJSON)
	return cmd
}

// affinitySwitchCmd is enable or disable: a PUT of disabled=false or true.
func (c *cli) affinitySwitchCmd(f *affinityFlags, verb, short string) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   verb + " WEBHOOK_ID",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseAffinityID(args[0])
			if err != nil {
				return err
			}
			client, err := c.affinityClient(f)
			if err != nil {
				return err
			}
			switcher := client.Webhooks.Enable
			if verb == "disable" {
				switcher = client.Webhooks.Disable
			}
			wh, _, err := switcher(cmd.Context(), id)
			if err != nil {
				return err
			}
			return c.printAffinityWebhooks(asJSON, wh)
		},
	}
	addJSONFlag(cmd, &asJSON)
	return cmd
}

func (c *cli) affinityDeleteCmd(f *affinityFlags) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "delete WEBHOOK_ID",
		Short: "Delete a subscription (its creator or an admin only)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseAffinityID(args[0])
			if err != nil {
				return err
			}
			client, err := c.affinityClient(f)
			if err != nil {
				return err
			}
			if _, err := client.Webhooks.Delete(cmd.Context(), id); err != nil {
				return err
			}
			if asJSON {
				return writeJSON(c.stdout, map[string]any{"deleted": true, "id": id})
			}
			_, err = fmt.Fprintf(c.stdout, "deleted webhook %d\n", id)
			return err
		},
	}
	addJSONFlag(cmd, &asJSON)
	return cmd
}

// writeAffinityWebhookTable prints subscriptions for people, one row each.
func writeAffinityWebhookTable(w io.Writer, whs []*affinity.Webhook) error {
	rows := make([][]string, 0, len(whs))
	for _, wh := range whs {
		subs := "all events"
		if !wh.AllEvents() {
			names := make([]string, len(wh.Subscriptions))
			for i, t := range wh.Subscriptions {
				names[i] = string(t)
			}
			subs = strings.Join(names, ", ")
		}
		rows = append(rows, []string{
			strconv.FormatInt(wh.ID, 10),
			wh.WebhookURL,
			subs,
			strconv.FormatBool(wh.Disabled),
			strconv.FormatInt(wh.CreatedBy, 10),
		})
	}
	return writeTable(w, []string{"ID", "URL", "SUBSCRIPTIONS", "DISABLED", "CREATED BY"}, rows)
}
