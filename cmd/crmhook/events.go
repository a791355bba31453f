package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/crmhook/crmhook"
	"github.com/crmhook/crmhook/config"
	"github.com/crmhook/crmhook/internal/app"
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

// adminClient calls the admin API; errors are one line.
type adminClient struct {
	base, token string
	hc          *http.Client
}

func (c *cli) adminClient(f adminFlags) (*adminClient, error) {
	base := firstNonEmpty(f.url, c.getenv("CRMHOOK_ADMIN_URL"), "http://"+config.DefaultAdminListen)
	token := firstNonEmpty(f.token, c.getenv("CRMHOOK_ADMIN_TOKEN"))
	if token == "" {
		s, err := app.LoadSecrets(f.dataDir)
		if err != nil {
			return nil, fmt.Errorf("no admin token: pass --token or set CRMHOOK_ADMIN_TOKEN (none kept in %s)", f.dataDir)
		}
		token = s.AdminToken
	}
	return &adminClient{base: strings.TrimRight(base, "/"), token: token, hc: &http.Client{Timeout: 30 * time.Second}}, nil
}

func (a *adminClient) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, rd)
	if err != nil {
		return fmt.Errorf("admin API: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		return fmt.Errorf("admin API unreachable at %s (is crmhook serve running?): %w", a.base, errors.Unwrap(err))
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("admin API: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			return fmt.Errorf("admin API: %s (HTTP %d)", e.Error, resp.StatusCode)
		}
		return fmt.Errorf("admin API: HTTP %d", resp.StatusCode)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("admin API: unexpected answer: %w", err)
	}
	return nil
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
				rs, err := adminList[app.RejectionJSON](cmd.Context(), ac, "/api/rejections", q, "rejections")
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
				ds, err := adminList[app.DeliveryJSON](cmd.Context(), ac, "/api/deliveries", q, "deliveries")
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
				evs, err := adminList[app.EventJSON](cmd.Context(), ac, "/api/events", q, "events")
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

// adminList fetches one listing of the admin API: {"<key>": [T…]}.
func adminList[T any](ctx context.Context, ac *adminClient, path string, q url.Values, key string) ([]T, error) {
	var out map[string][]T
	if err := ac.do(ctx, "GET", path+"?"+q.Encode(), nil, &out); err != nil {
		return nil, err
	}
	return out[key], nil
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
				Event      app.EventJSON      `json:"event"`
				Deliveries []app.DeliveryJSON `json:"deliveries"`
			}
			if err := ac.do(cmd.Context(), "GET", "/api/events/"+url.PathEscape(args[0]), nil, &out); err != nil {
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
	var req app.ReplayRequest
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
				if *t.dst, err = app.ParseWhen(t.v, time.Now()); err != nil {
					return err
				}
			}
			var out struct {
				Replayed int `json:"replayed"`
			}
			if err := ac.do(cmd.Context(), "POST", "/api/replay", req, &out); err != nil {
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
			if err := ac.do(cmd.Context(), "POST", "/api/rejections/"+url.PathEscape(args[0])+"/release", nil, &out); err != nil {
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
