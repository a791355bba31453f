package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/crmhook/crmhook/affinity"
)

// `crmhook affinity webhooks … --api v2` manages the same subscriptions
// through Affinity's v2 webhook API (beta): the key always goes as a bearer
// token, status is active|disabled, and update answers 204, so update,
// enable and disable read the webhook back to print it.

// The values of --api.
const (
	affinityAPIV1 = "v1"
	affinityAPIV2 = "v2"
)

// useV2 reports whether --api asks for API v2.
func (f *affinityFlags) useV2() (bool, error) {
	switch strings.ToLower(strings.TrimSpace(f.api)) {
	case "", affinityAPIV1:
		return false, nil
	case affinityAPIV2:
		return true, nil
	}
	return false, fmt.Errorf("--api must be %s or %s, got %q", affinityAPIV1, affinityAPIV2, f.api)
}

// addAffinityAPIFlag registers --api on the affinity group.
func addAffinityAPIFlag(cmd *cobra.Command, f *affinityFlags) {
	cmd.PersistentFlags().StringVar(&f.api, "api", affinityAPIV1,
		"Affinity webhook API: v1, or v2 (beta; bearer auth, status active|disabled, URLs unique and probed)")
}

// routeAffinityV2 makes each webhooks subcommand run its v2 form under
// --api v2. The v2 forms read the V1 commands' own flags by name, plus
// update's --status, which only v2 accepts.
func (c *cli) routeAffinityV2(f *affinityFlags, webhooks *cobra.Command) {
	v2 := map[string]func(cmd *cobra.Command, args []string) error{
		"list":   func(cmd *cobra.Command, _ []string) error { return c.affinityV2List(cmd, f) },
		"get":    func(cmd *cobra.Command, args []string) error { return c.affinityV2Get(cmd, f, args[0]) },
		"create": func(cmd *cobra.Command, _ []string) error { return c.affinityV2Create(cmd, f) },
		"update": func(cmd *cobra.Command, args []string) error { return c.affinityV2Update(cmd, f, args[0]) },
		"delete": func(cmd *cobra.Command, args []string) error { return c.affinityV2Delete(cmd, f, args[0]) },
		"enable": func(cmd *cobra.Command, args []string) error {
			return c.affinityV2Switch(cmd, f, args[0], affinity.WebhookV2Active)
		},
		"disable": func(cmd *cobra.Command, args []string) error {
			return c.affinityV2Switch(cmd, f, args[0], affinity.WebhookV2Disabled)
		},
	}
	for _, sub := range webhooks.Commands() {
		runV2, ok := v2[sub.Name()]
		if !ok || sub.RunE == nil {
			continue
		}
		if sub.Name() == "update" {
			sub.Flags().String("status", "", "with --api v2: active or disabled (the same as --disabled=false or true)")
			sub.Use += " [--status active|disabled]"
		}
		runV1 := sub.RunE
		sub.RunE = func(cmd *cobra.Command, args []string) error {
			isV2, err := f.useV2()
			if err != nil {
				return err
			}
			if isV2 {
				return runV2(cmd, args)
			}
			if fl := cmd.Flags().Lookup("status"); fl != nil && fl.Changed {
				return errors.New("--status needs --api v2; with API V1 use --disabled=true|false")
			}
			return runV1(cmd, args)
		}
	}
}

// affinityV2Client is the v2 service of the flags' client; it always sends
// the key as a bearer token.
func (c *cli) affinityV2Client(f *affinityFlags) (*affinity.WebhookV2Service, error) {
	client, err := c.affinityClient(f)
	if err != nil {
		return nil, err
	}
	return client.WebhooksV2(), nil
}

func jsonFlag(cmd *cobra.Command) bool {
	v, _ := cmd.Flags().GetBool("json")
	return v
}

// listAffinityV2 reads every page.
func listAffinityV2(ctx context.Context, svc *affinity.WebhookV2Service) ([]*affinity.WebhookV2, error) {
	whs := []*affinity.WebhookV2{}
	for wh, err := range svc.ListAll(ctx, nil) {
		if err != nil {
			return nil, err
		}
		whs = append(whs, wh)
	}
	return whs, nil
}

func (c *cli) affinityV2List(cmd *cobra.Command, f *affinityFlags) error {
	svc, err := c.affinityV2Client(f)
	if err != nil {
		return err
	}
	whs, err := listAffinityV2(cmd.Context(), svc)
	if err != nil {
		return err
	}
	if jsonFlag(cmd) {
		return writeJSON(c.stdout, whs) // [] when there are none
	}
	return writeAffinityV2Table(c.stdout, whs)
}

func (c *cli) affinityV2Get(cmd *cobra.Command, f *affinityFlags, arg string) error {
	id, err := parseAffinityID(arg)
	if err != nil {
		return err
	}
	svc, err := c.affinityV2Client(f)
	if err != nil {
		return err
	}
	wh, _, err := svc.Get(cmd.Context(), id)
	if err != nil {
		return err
	}
	return c.printAffinityV2(cmd, wh)
}

func (c *cli) printAffinityV2(cmd *cobra.Command, wh *affinity.WebhookV2) error {
	if jsonFlag(cmd) {
		return writeJSON(c.stdout, wh)
	}
	return writeAffinityV2Table(c.stdout, []*affinity.WebhookV2{wh})
}

// v2EventTypes reads --event and --allow-unknown with the V1 commands' rules.
func v2EventTypes(cmd *cobra.Command) ([]affinity.EventType, error) {
	events, _ := cmd.Flags().GetStringSlice("event")
	allowUnknown, _ := cmd.Flags().GetBool("allow-unknown")
	e := affinityEventFlags{events: events, allowUnknown: allowUnknown}
	return e.eventTypes()
}

func (c *cli) affinityV2Create(cmd *cobra.Command, f *affinityFlags) error {
	target, _ := cmd.Flags().GetString("url")
	if strings.TrimSpace(target) == "" {
		return errors.New("--url is required")
	}
	if err := affinity.ValidateWebhookV2URL(target); err != nil {
		return err
	}
	types, err := v2EventTypes(cmd)
	if err != nil {
		return err
	}
	svc, err := c.affinityV2Client(f)
	if err != nil {
		return err
	}
	wh, _, err := svc.Create(cmd.Context(), target, types)
	if err != nil {
		return explainAffinityV2Refusal(cmd.Context(), svc, target, err)
	}
	return c.printAffinityV2(cmd, wh)
}

// explainAffinityV2Refusal adds what to do next to a refused create or URL
// change: which webhooks fill the organization, which one has the URL, or
// that the receiver must answer the test delivery.
func explainAffinityV2Refusal(ctx context.Context, svc *affinity.WebhookV2Service, target string, refusal error) error {
	switch {
	case errors.Is(refusal, affinity.ErrSubscriptionLimit):
		whs, err := listAffinityV2(ctx, svc)
		if err != nil {
			return fmt.Errorf("%w (listing the existing webhooks failed too: %v)", refusal, err)
		}
		existing := make([]string, 0, len(whs))
		for _, wh := range whs {
			existing = append(existing, strconv.FormatInt(wh.ID, 10)+" "+wh.URL)
		}
		if len(existing) == 0 {
			existing = append(existing, "none visible to this key")
		}
		return fmt.Errorf("%w: the organization is at its webhook limit (%s); delete one with `crmhook affinity webhooks delete ID --api v2` or change one with `crmhook affinity webhooks update ID --api v2`",
			refusal, strings.Join(existing, ", "))
	case errors.Is(refusal, affinity.ErrWebhookURLInUse):
		whs, err := listAffinityV2(ctx, svc)
		if err == nil {
			for _, wh := range whs {
				if wh.URL == target {
					return fmt.Errorf("%w: webhook %d already has this URL; change that one with `crmhook affinity webhooks update %d --api v2`", refusal, wh.ID, wh.ID)
				}
			}
		}
		return fmt.Errorf("%w: another webhook of the organization (not visible to this key) already has this URL", refusal)
	case errors.Is(refusal, affinity.ErrTestDeliveryFailed):
		return fmt.Errorf("%w: the receiver must be running and answer Affinity's sample.webhook test delivery with a 2xx", refusal)
	}
	return refusal
}

func (c *cli) affinityV2Update(cmd *cobra.Command, f *affinityFlags, arg string) error {
	id, err := parseAffinityID(arg)
	if err != nil {
		return err
	}
	flags := cmd.Flags()
	urlSet, statusSet, disabledSet := flags.Changed("url"), flags.Changed("status"), flags.Changed("disabled")
	allEvents, _ := flags.GetBool("all-events")
	events, _ := flags.GetStringSlice("event")
	if !urlSet && !statusSet && !disabledSet && !allEvents && len(events) == 0 {
		return errors.New("nothing to update: give --url, --event, --all-events, --status or --disabled")
	}
	if allEvents && len(events) > 0 {
		return errors.New("use either --event or --all-events, not both")
	}
	if statusSet && disabledSet {
		return errors.New("use either --status or --disabled, not both")
	}
	req := &affinity.UpdateWebhookV2Request{}
	var target string
	if urlSet {
		target, _ = flags.GetString("url")
		if strings.TrimSpace(target) == "" {
			return errors.New("--url must not be empty")
		}
		if err := affinity.ValidateWebhookV2URL(target); err != nil {
			return err
		}
		req.URL = &target
	}
	switch {
	case allEvents:
		req.Subscriptions = &[]affinity.EventType{}
	case len(events) > 0:
		types, err := v2EventTypes(cmd)
		if err != nil {
			return err
		}
		req.Subscriptions = &types
	}
	switch {
	case statusSet:
		raw, _ := flags.GetString("status")
		st := affinity.WebhookV2Status(strings.ToLower(strings.TrimSpace(raw)))
		if !st.Valid() {
			return fmt.Errorf("--status must be %s or %s, got %q", affinity.WebhookV2Active, affinity.WebhookV2Disabled, raw)
		}
		req.Status = &st
	case disabledSet:
		disabled, _ := flags.GetBool("disabled")
		st := affinity.WebhookV2Active
		if disabled {
			st = affinity.WebhookV2Disabled
		}
		req.Status = &st
	}
	svc, err := c.affinityV2Client(f)
	if err != nil {
		return err
	}
	if _, err := svc.Update(cmd.Context(), id, req); err != nil {
		return explainAffinityV2Refusal(cmd.Context(), svc, target, err)
	}
	return c.printUpdatedAffinityV2(cmd, svc, id)
}

// printUpdatedAffinityV2 reads a webhook back after a 204 update.
func (c *cli) printUpdatedAffinityV2(cmd *cobra.Command, svc *affinity.WebhookV2Service, id int64) error {
	wh, _, err := svc.Get(cmd.Context(), id)
	if err != nil {
		return fmt.Errorf("webhook %d was updated, but reading it back failed: %w", id, err)
	}
	return c.printAffinityV2(cmd, wh)
}

func (c *cli) affinityV2Switch(cmd *cobra.Command, f *affinityFlags, arg string, st affinity.WebhookV2Status) error {
	id, err := parseAffinityID(arg)
	if err != nil {
		return err
	}
	svc, err := c.affinityV2Client(f)
	if err != nil {
		return err
	}
	if st == affinity.WebhookV2Active {
		_, err = svc.Enable(cmd.Context(), id)
	} else {
		_, err = svc.Disable(cmd.Context(), id)
	}
	if err != nil {
		return explainAffinityV2Refusal(cmd.Context(), svc, "", err)
	}
	return c.printUpdatedAffinityV2(cmd, svc, id)
}

func (c *cli) affinityV2Delete(cmd *cobra.Command, f *affinityFlags, arg string) error {
	id, err := parseAffinityID(arg)
	if err != nil {
		return err
	}
	svc, err := c.affinityV2Client(f)
	if err != nil {
		return err
	}
	if _, err := svc.Delete(cmd.Context(), id); err != nil {
		return err
	}
	if jsonFlag(cmd) {
		return writeJSON(c.stdout, map[string]any{"deleted": true, "id": id})
	}
	_, err = fmt.Fprintf(c.stdout, "deleted webhook %d\n", id)
	return err
}

// writeAffinityV2Table prints v2 webhooks for people, one row each.
func writeAffinityV2Table(w io.Writer, whs []*affinity.WebhookV2) error {
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
		creator := "-"
		if wh.Creator != nil {
			creator = strconv.FormatInt(wh.Creator.ID, 10)
		}
		updated := "-"
		if wh.UpdatedAt != nil {
			updated = wh.UpdatedAt.UTC().Format(time.RFC3339)
		}
		rows = append(rows, []string{
			strconv.FormatInt(wh.ID, 10),
			wh.URL,
			subs,
			string(wh.Status),
			creator,
			wh.CreatedAt.UTC().Format(time.RFC3339),
			updated,
		})
	}
	return writeTable(w, []string{"ID", "URL", "SUBSCRIPTIONS", "STATUS", "CREATED BY", "CREATED", "UPDATED"}, rows)
}
