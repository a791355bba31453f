package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/crmhook/crmhook/attio"
)

// attioFlags are the flags of the attio group, shared by every subcommand.
type attioFlags struct {
	apiKey  string
	baseURL string
}

func (c *cli) attioCmd() *cobra.Command {
	f := &attioFlags{}
	cmd := &cobra.Command{
		Use:   "attio",
		Short: "Manage Attio webhooks (REST API v2)",
		Long: `Manage Attio webhooks (REST API v2).

The API key comes from --api-key or ATTIO_API_KEY. The API root comes from
--base-url or ATTIO_BASE_URL (for the simulator: http://127.0.0.1:7702/v2),
else https://api.attio.com/v2.`,
	}
	cmd.PersistentFlags().StringVar(&f.apiKey, "api-key", "", "Attio API key (default $"+attio.EnvAPIKey+")")
	cmd.PersistentFlags().StringVar(&f.baseURL, "base-url", "", "API root (default $"+attio.EnvBaseURL+", else "+attio.DefaultBaseURL+")")

	webhooks := &cobra.Command{Use: "webhooks", Short: "List, show, create, update and delete webhooks"}
	webhooks.AddCommand(
		c.attioListCmd(f),
		c.attioGetCmd(f),
		c.attioCreateCmd(f),
		c.attioUpdateCmd(f),
		c.attioDeleteCmd(f),
	)
	cmd.AddCommand(webhooks)
	return cmd
}

// client builds an API client from the flags, then the environment.
func (c *cli) attioClient(f *attioFlags) (*attio.Client, error) {
	key := f.apiKey
	if key == "" {
		key = c.getenv(attio.EnvAPIKey)
	}
	if strings.TrimSpace(key) == "" {
		return nil, errors.New("attio: no API key: set " + attio.EnvAPIKey + " or pass --api-key")
	}
	var opts []attio.Option
	base := f.baseURL
	if base == "" {
		base = c.getenv(attio.EnvBaseURL)
	}
	if base != "" {
		opts = append(opts, attio.WithBaseURL(base))
	}
	return attio.NewClient(key, opts...)
}

func (c *cli) attioListCmd(f *attioFlags) *cobra.Command {
	var asJSON bool
	var pageSize int
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List every webhook (all pages)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			client, err := c.attioClient(f)
			if err != nil {
				return err
			}
			all := []*attio.Webhook{}
			for wh, err := range client.Webhooks.All(cmd.Context(), pageSize) {
				if err != nil {
					return err
				}
				all = append(all, wh)
			}
			if asJSON {
				return writeJSON(c.stdout, all)
			}
			return writeWebhookTable(c.stdout, all)
		},
	}
	cmd.Flags().IntVar(&pageSize, "page-size", attio.DefaultPageSize, "webhooks fetched per request")
	addJSONFlag(cmd, &asJSON)
	return cmd
}

func (c *cli) attioGetCmd(f *attioFlags) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "get WEBHOOK_ID",
		Short: "Show one webhook",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			client, err := c.attioClient(f)
			if err != nil {
				return err
			}
			wh, _, err := client.Webhooks.Get(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(c.stdout, wh)
			}
			return writeWebhookTable(c.stdout, []*attio.Webhook{wh})
		},
	}
	addJSONFlag(cmd, &asJSON)
	return cmd
}

// subscriptionFlags are the flags that describe subscriptions, shared by
// create and update.
type subscriptionFlags struct {
	events       []string
	where        []string
	any          bool
	filterJSON   string
	allowUnknown bool
}

func addSubscriptionFlags(cmd *cobra.Command, s *subscriptionFlags) {
	cmd.Flags().StringSliceVar(&s.events, "event", nil, "event type to subscribe to (repeat, or comma-separate)")
	cmd.Flags().StringArrayVar(&s.where, "where", nil, "filter condition field=value or field!=value, e.g. id.list_id=abc (repeat; all must match)")
	cmd.Flags().BoolVar(&s.any, "any", false, "with several --where, match when any condition matches ($or) instead of all ($and)")
	cmd.Flags().StringVar(&s.filterJSON, "filter-json", "", `filter as Attio JSON, e.g. '{"$and":[{"field":"actor.type","operator":"not_equals","value":"system"}]}'`)
	cmd.Flags().BoolVar(&s.allowUnknown, "allow-unknown", false, "allow event types this tool does not know")
}

// filterSet reports whether any filter flag was given.
func (s *subscriptionFlags) filterSet() bool {
	return len(s.where) > 0 || s.filterJSON != "" || s.any
}

// filter builds the one filter the flags describe (nil = every event).
func (s *subscriptionFlags) filter() (*attio.Filter, error) {
	switch {
	case s.filterJSON != "" && len(s.where) > 0:
		return nil, errors.New("use either --where or --filter-json, not both")
	case s.any && len(s.where) == 0:
		return nil, errors.New("--any needs --where conditions")
	case s.filterJSON != "":
		var f *attio.Filter
		if err := json.Unmarshal([]byte(s.filterJSON), &f); err != nil {
			if errors.Is(err, attio.ErrInvalidFilter) {
				return nil, fmt.Errorf("--filter-json: %w", err)
			}
			return nil, fmt.Errorf("--filter-json: %w: not valid JSON", attio.ErrInvalidFilter)
		}
		return f, f.Validate()
	}
	mode := "and"
	if s.any {
		mode = "or"
	}
	return attio.ParseFilter(mode, s.where)
}

// checkEvents refuses unknown event types (typos) unless allowed, and warns
// about the types Attio's reference does not list.
func (c *cli) checkEvents(types []string, allowUnknown bool) ([]attio.EventType, error) {
	out := make([]attio.EventType, 0, len(types))
	for _, s := range types {
		t := attio.EventType(strings.TrimSpace(s))
		if t == "" {
			return nil, errors.New("--event must not be empty")
		}
		switch {
		case !t.Known() && !allowUnknown:
			names := make([]string, 0, len(attio.AllEventTypes()))
			for _, k := range attio.AllEventTypes() {
				names = append(names, string(k))
			}
			return nil, fmt.Errorf("unknown event type %q (known: %s; pass --allow-unknown to send it anyway)", t, strings.Join(names, ", "))
		case t.Known() && !t.Official():
			fmt.Fprintf(c.stderr, "warning: %s is not in Attio's webhook reference; the API may refuse it\n", t)
		}
		if !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	return out, nil
}

// subscriptions applies the same filter to every event type: Attio filters
// per subscription, and one filter per command line keeps the flags simple.
// Use --filter-json on separate updates, or the SDK, for per-event filters.
func subscriptions(types []attio.EventType, f *attio.Filter) []attio.Subscription {
	subs := make([]attio.Subscription, len(types))
	for i, t := range types {
		subs[i] = attio.Subscription{EventType: t, Filter: f}
	}
	return subs
}

func (c *cli) attioCreateCmd(f *attioFlags) *cobra.Command {
	var asJSON bool
	var target string
	var s subscriptionFlags
	cmd := &cobra.Command{
		Use:   "create --url URL --event TYPE [--event TYPE]... [--where FIELD=VALUE]... [--any] [--filter-json JSON]",
		Short: "Create a webhook and print its signing secret (shown only once)",
		Long: `Create a webhook and print its signing secret.

Attio returns the secret only in this answer: store it now (for example in the
receiver's configuration); it cannot be shown again. With several --event
flags, the same filter (--where or --filter-json) applies to each of them.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if target == "" {
				return errors.New("--url is required")
			}
			if len(s.events) == 0 {
				return errors.New("at least one --event is required")
			}
			types, err := c.checkEvents(s.events, s.allowUnknown)
			if err != nil {
				return err
			}
			filter, err := s.filter()
			if err != nil {
				return err
			}
			client, err := c.attioClient(f)
			if err != nil {
				return err
			}
			wh, _, err := client.Webhooks.Create(cmd.Context(), &attio.WebhookCreateRequest{
				TargetURL:     target,
				Subscriptions: subscriptions(types, filter),
			})
			if err != nil {
				return err
			}
			fmt.Fprintln(c.stderr, "warning: store the webhook secret now; Attio will not show it again")
			if asJSON {
				return writeJSON(c.stdout, wh)
			}
			if err := writeWebhookTable(c.stdout, []*attio.Webhook{wh}); err != nil {
				return err
			}
			_, err = fmt.Fprintf(c.stdout, "\nsecret: %s\n", wh.Secret)
			return err
		},
	}
	cmd.Flags().StringVar(&target, "url", "", "target URL deliveries are POSTed to (https; http only for loopback)")
	addSubscriptionFlags(cmd, &s)
	addJSONFlag(cmd, &asJSON)
	return cmd
}

func (c *cli) attioUpdateCmd(f *attioFlags) *cobra.Command {
	var asJSON bool
	var target string
	var s subscriptionFlags
	cmd := &cobra.Command{
		Use:   "update WEBHOOK_ID [--url URL] [--event TYPE]... [--where FIELD=VALUE]... [--any] [--filter-json JSON]",
		Short: "Change a webhook's URL or subscriptions",
		Long: `Change a webhook's URL or subscriptions; only what is given is sent.

--event replaces the whole subscription list (each with the given filter, or
none). A filter without --event is applied to the webhook's current event
types, which are read first.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if target == "" && len(s.events) == 0 && !s.filterSet() {
				return errors.New("nothing to update: give --url, --event or a filter (--where, --filter-json)")
			}
			req := &attio.WebhookUpdateRequest{}
			if target != "" {
				req.TargetURL = &target
			}
			var types []attio.EventType
			if len(s.events) > 0 {
				var err error
				if types, err = c.checkEvents(s.events, s.allowUnknown); err != nil {
					return err
				}
			}
			filter, err := s.filter()
			if err != nil {
				return err
			}
			client, err := c.attioClient(f)
			if err != nil {
				return err
			}
			if len(types) == 0 && s.filterSet() {
				current, _, err := client.Webhooks.Get(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				for _, sub := range current.Subscriptions {
					if !slices.Contains(types, sub.EventType) {
						types = append(types, sub.EventType)
					}
				}
			}
			if len(types) > 0 {
				subs := subscriptions(types, filter)
				req.Subscriptions = &subs
			}
			wh, _, err := client.Webhooks.Update(cmd.Context(), args[0], req)
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(c.stdout, wh)
			}
			return writeWebhookTable(c.stdout, []*attio.Webhook{wh})
		},
	}
	cmd.Flags().StringVar(&target, "url", "", "new target URL")
	addSubscriptionFlags(cmd, &s)
	addJSONFlag(cmd, &asJSON)
	return cmd
}

func (c *cli) attioDeleteCmd(f *attioFlags) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "delete WEBHOOK_ID",
		Short: "Delete a webhook",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			client, err := c.attioClient(f)
			if err != nil {
				return err
			}
			if _, err := client.Webhooks.Delete(cmd.Context(), args[0]); err != nil {
				return err
			}
			if asJSON {
				return writeJSON(c.stdout, map[string]any{"deleted": true, "webhook_id": args[0]})
			}
			_, err = fmt.Fprintf(c.stdout, "deleted webhook %s\n", args[0])
			return err
		},
	}
	addJSONFlag(cmd, &asJSON)
	return cmd
}

// writeWebhookTable prints webhooks for people: one row each, events with
// their filter in brackets.
func writeWebhookTable(w io.Writer, whs []*attio.Webhook) error {
	rows := make([][]string, 0, len(whs))
	for _, wh := range whs {
		events := make([]string, 0, len(wh.Subscriptions))
		for _, s := range wh.Subscriptions {
			e := string(s.EventType)
			if s.Filter != nil {
				e += "[" + s.Filter.String() + "]"
			}
			events = append(events, e)
		}
		created := ""
		if !wh.CreatedAt.IsZero() {
			created = wh.CreatedAt.UTC().Format(time.RFC3339)
		}
		rows = append(rows, []string{wh.ID.WebhookID, wh.TargetURL, string(wh.Status), strings.Join(events, ", "), created})
	}
	return writeTable(w, []string{"ID", "URL", "STATUS", "EVENTS", "CREATED"}, rows)
}
