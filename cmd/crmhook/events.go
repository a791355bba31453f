package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/crmhook/crmhook"
	"github.com/crmhook/crmhook/config"
	"github.com/crmhook/crmhook/internal/admin"
	"github.com/crmhook/crmhook/internal/embedded"
	"github.com/spf13/cobra"
)

// adminFlags locate the admin API of a running `crmhook serve`.
type adminFlags struct {
	url, token, dataDir string
}

func (c *cli) addAdminFlags(cmd *cobra.Command, f *adminFlags) {
	cmd.PersistentFlags().StringVar(&f.url, "admin-url", "", "admin API of the running receiver (default $CRMHOOK_ADMIN_URL or http://127.0.0.1:8081)")
	cmd.PersistentFlags().StringVar(&f.token, "token", "", "admin token (default $CRMHOOK_ADMIN_TOKEN, else the one kept in --data-dir)")
	cmd.PersistentFlags().StringVar(&f.dataDir, "data-dir", config.DefaultDataDir, "data directory holding the generated admin token")
}

func (c *cli) adminClient(f adminFlags) (*admin.Client, error) {
	base := firstNonEmpty(f.url, c.getenv("CRMHOOK_ADMIN_URL"), "http://"+config.DefaultAdminListen)
	token := firstNonEmpty(f.token, c.getenv("CRMHOOK_ADMIN_TOKEN"))
	if token == "" {
		s, err := embedded.LoadSecrets(f.dataDir)
		if err != nil {
			return nil, fmt.Errorf("no admin token: pass --token or set CRMHOOK_ADMIN_TOKEN (none kept in %s)", f.dataDir)
		}
		token = s.AdminToken
	}
	return admin.NewClient(base, token), nil
}

func (c *cli) eventsCmd() *cobra.Command {
	var af adminFlags
	cmd := &cobra.Command{
		Use:   "events",
		Short: "Inspect stored events, deliveries, dead letters and rejections; replay them",
	}
	c.addAdminFlags(cmd, &af)
	cmd.AddCommand(c.eventsListCmd(&af), c.eventsShowCmd(&af), c.eventsReplayCmd(&af), c.eventsReleaseCmd(&af))
	return cmd
}

func (c *cli) eventsListCmd(af *adminFlags) *cobra.Command {
	var source, typ, status, since, until string
	var limit int
	var asJSON, rejections bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List events, or deliveries by --status (pending, delivered, dead), or --rejections",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ac, err := c.adminClient(*af)
			if err != nil {
				return err
			}
			q := url.Values{}
			set := func(k, v string) {
				if v != "" {
					q.Set(k, v)
				}
			}
			set("source", source)
			set("since", since)
			set("until", until)
			if limit > 0 {
				q.Set("limit", strconv.Itoa(limit))
			}
			switch {
			case rejections:
				rs, err := admin.List[admin.RejectionJSON](cmd.Context(), ac, "/api/rejections", q, "rejections")
				if err != nil || asJSON {
					return c.listOut(err, rs)
				}
				rows := make([][]string, 0, len(rs))
				for _, r := range rs {
					released := "-"
					if r.ReleasedAt != nil {
						released = r.ReleasedAt.Format(time.RFC3339)
					}
					rows = append(rows, []string{strconv.FormatInt(r.ID, 10), r.RejectedAt.Format(time.RFC3339), r.Event.Source, r.Event.Type, r.Reason, released})
				}
				return writeTable(c.stdout, []string{"ID", "REJECTED", "SOURCE", "TYPE", "REASON", "RELEASED"}, rows)
			case status != "":
				set("state", status)
				ds, err := admin.List[admin.DeliveryJSON](cmd.Context(), ac, "/api/deliveries", q, "deliveries")
				if err != nil || asJSON {
					return c.listOut(err, ds)
				}
				rows := make([][]string, 0, len(ds))
				for _, d := range ds {
					rows = append(rows, []string{d.EventID, d.Sink, string(d.State), strconv.Itoa(d.Attempts), d.CreatedAt.Format(time.RFC3339), oneLine(d.LastError, 60)})
				}
				return writeTable(c.stdout, []string{"EVENT", "SINK", "STATE", "ATTEMPTS", "CREATED", "LAST ERROR"}, rows)
			default:
				set("type", typ)
				evs, err := admin.List[admin.EventJSON](cmd.Context(), ac, "/api/events", q, "events")
				if err != nil || asJSON {
					return c.listOut(err, evs)
				}
				rows := make([][]string, 0, len(evs))
				for _, e := range evs {
					rows = append(rows, []string{e.ID, e.ReceivedAt.Format(time.RFC3339), e.Source, e.Type, e.DedupeKey})
				}
				return writeTable(c.stdout, []string{"ID", "RECEIVED", "SOURCE", "TYPE", "DEDUPE KEY"}, rows)
			}
		},
	}
	f := cmd.Flags()
	f.StringVar(&source, "source", "", "only this source")
	f.StringVar(&typ, "type", "", "only this event type (glob: person.*)")
	f.StringVar(&status, "status", "", "list deliveries in this state instead: pending, delivered or dead (dead letters)")
	f.BoolVar(&rejections, "rejections", false, "list rejections (outside the replay window) instead")
	f.StringVar(&since, "since", "", "only after this time (RFC 3339, or a duration ago like 2h)")
	f.StringVar(&until, "until", "", "only before this time (RFC 3339, or a duration ago)")
	f.IntVar(&limit, "limit", 0, "at most this many (default 100)")
	addJSONFlag(cmd, &asJSON)
	return cmd
}

// listOut ends a listing that failed or was asked for as JSON ([] when empty).
func (c *cli) listOut(err error, items any) error {
	if err != nil {
		return err
	}
	return writeJSON(c.stdout, items)
}

func (c *cli) eventsShowCmd(af *adminFlags) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "show <event-id>",
		Short: "Show one event with its payload and deliveries",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ac, err := c.adminClient(*af)
			if err != nil {
				return err
			}
			var out struct {
				Event      admin.EventJSON      `json:"event"`
				Deliveries []admin.DeliveryJSON `json:"deliveries"`
			}
			if err := ac.Do(cmd.Context(), "GET", "/api/events/"+url.PathEscape(args[0]), nil, &out); err != nil {
				return err
			}
			if asJSON {
				return writeJSON(c.stdout, out)
			}
			e := out.Event
			fmt.Fprintf(c.stdout, "id:          %s\nsource:      %s (%s)\ntype:        %s\ndedupe key:  %s\nreceived at: %s\n",
				e.ID, e.Source, e.Provider, e.Type, e.DedupeKey, e.ReceivedAt.Format(time.RFC3339Nano))
			if e.OccurredAt != nil {
				fmt.Fprintf(c.stdout, "occurred at: %s\n", e.OccurredAt.Format(time.RFC3339))
			}
			var pretty bytes.Buffer
			if json.Indent(&pretty, e.Payload, "", "  ") != nil {
				pretty.Reset()
				pretty.Write(e.Payload)
			}
			fmt.Fprintf(c.stdout, "payload:\n%s\n\n", pretty.String())
			rows := make([][]string, 0, len(out.Deliveries))
			for _, d := range out.Deliveries {
				rows = append(rows, []string{d.Sink, string(d.State), strconv.Itoa(d.Attempts), oneLine(d.LastError, 60)})
			}
			return writeTable(c.stdout, []string{"SINK", "STATE", "ATTEMPTS", "LAST ERROR"}, rows)
		},
	}
	addJSONFlag(cmd, &asJSON)
	return cmd
}

func (c *cli) eventsReplayCmd(af *adminFlags) *cobra.Command {
	var req admin.ReplayRequest
	var status, since, until string
	cmd := &cobra.Command{
		Use:   "replay [event-id]",
		Short: "Deliver again: one event's deliveries, or dead letters / delivered ones selected by flags",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ac, err := c.adminClient(*af)
			if err != nil {
				return err
			}
			if len(args) == 1 {
				req.EventID = args[0]
			}
			req.State = crmhook.DeliveryState(status)
			for _, t := range []struct {
				v   string
				dst *time.Time
			}{{since, &req.Since}, {until, &req.Until}} {
				if t.v == "" {
					continue
				}
				if *t.dst, err = admin.ParseWhen(t.v, time.Now()); err != nil {
					return err
				}
			}
			var out struct {
				Replayed int `json:"replayed"`
			}
			if err := ac.Do(cmd.Context(), "POST", "/api/replay", req, &out); err != nil {
				return err
			}
			fmt.Fprintf(c.stdout, "replayed %d deliveries\n", out.Replayed)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&status, "status", "", "only deliveries in this state: dead or delivered")
	f.StringVar(&req.Sink, "sink", "", "only this sink")
	f.StringVar(&req.Source, "source", "", "only events of this source")
	f.StringVar(&since, "since", "", "only events received after (RFC 3339 or a duration ago)")
	f.StringVar(&until, "until", "", "only events received before")
	f.BoolVar(&req.All, "all", false, "replay every delivered and dead delivery (no filter)")
	return cmd
}

func (c *cli) eventsReleaseCmd(af *adminFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "release <rejection-id>",
		Short: "Accept a rejected event (outside the replay window) as if it arrived now",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ac, err := c.adminClient(*af)
			if err != nil {
				return err
			}
			var out struct {
				EventID   string `json:"event_id"`
				Duplicate bool   `json:"duplicate"`
			}
			if err := ac.Do(cmd.Context(), "POST", "/api/rejections/"+url.PathEscape(args[0])+"/release", nil, &out); err != nil {
				return err
			}
			if out.Duplicate {
				fmt.Fprintf(c.stdout, "released; it was a redelivery of event %s, nothing new to deliver\n", out.EventID)
				return nil
			}
			fmt.Fprintf(c.stdout, "released as event %s\n", out.EventID)
			return nil
		},
	}
}

func oneLine(s string, n int) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}
