package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// simHTTPClient talks to a simulator on this machine; a trigger waits for the
// first delivery attempts, each bounded by the simulator.
var simHTTPClient = &http.Client{Timeout: time.Minute}

// simBaseURL is the URL clients use to reach a listener: an unspecified host
// (":0", "0.0.0.0", "[::]") is reached through loopback.
func simBaseURL(addr net.Addr) string {
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return "http://" + addr.String()
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// simClient talks to one running simulator, for the subcommands trigger
// and deliveries.
type simClient struct {
	sim        string // the provider, for messages: "affinity", "attio"
	defaultURL string // where `crmhook sim PROVIDER` listens by default
	simURL     string // --sim-url
	asJSON     bool   // --json
}

// addFlags registers --sim-url and --json on cmd.
func (sc *simClient) addFlags(cmd *cobra.Command) {
	cmd.Flags().StringVar(&sc.simURL, "sim-url", sc.defaultURL, "base URL of the running simulator")
	addJSONFlag(cmd, &sc.asJSON)
}

// readJSONFile reads the file named by a trigger's --flag ('-' is standard
// input) and checks it with valid (want says what valid wants, for the
// message), so a typo fails here with the file's name rather than as a 400
// from the simulator.
func (sc *simClient) readJSONFile(cmd *cobra.Command, flag, name, want string, valid func([]byte) bool) (json.RawMessage, error) {
	var raw []byte
	var err error
	if name == "-" {
		raw, err = io.ReadAll(io.LimitReader(cmd.InOrStdin(), 1<<20+1))
	} else {
		raw, err = os.ReadFile(name)
	}
	if err != nil {
		return nil, fmt.Errorf("sim %s trigger: --%s: %w", sc.sim, flag, err)
	}
	if !valid(raw) {
		return nil, fmt.Errorf("sim %s trigger: --%s %s: not %s", sc.sim, flag, name, want)
	}
	return raw, nil
}

// call sends one request to the simulator's /_sim/ API and decodes its JSON
// answer into out, or returns the simulator's error message:
// {"errors":[{"message"}]} as Affinity writes it, or {"message"} as Attio
// does.
func (sc *simClient) call(ctx context.Context, method, path string, in, out any) error {
	base, err := url.Parse(sc.simURL)
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return fmt.Errorf("--sim-url %q must be an http URL like %s", sc.simURL, sc.defaultURL)
	}
	var body io.Reader
	if in != nil {
		raw, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
		body = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(base.String(), "/")+path, body)
	if err != nil {
		return fmt.Errorf("build request: %w", err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := simHTTPClient.Do(req)
	if err != nil {
		return fmt.Errorf("is the simulator running ('crmhook sim %s')? %w", sc.sim, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("read answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Errors []struct {
				Message string `json:"message"`
			} `json:"errors"`
			Message string `json:"message"`
		}
		msg := strings.TrimSpace(string(raw))
		if json.Unmarshal(raw, &e) == nil {
			switch {
			case len(e.Errors) > 0 && e.Errors[0].Message != "":
				msg = e.Errors[0].Message
			case e.Message != "":
				msg = e.Message
			}
		}
		return fmt.Errorf("simulator answered %d: %s", resp.StatusCode, msg)
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("decode answer: %w", err)
	}
	return nil
}

// simTrigger sends req (the provider's TriggerRequest) to the simulator's
// POST /_sim/trigger and prints its result R: as JSON with --json, else by
// table.
func simTrigger[R any](cmd *cobra.Command, out io.Writer, sc *simClient, req any, table func(io.Writer, R) error) error {
	var res R
	if err := sc.call(cmd.Context(), http.MethodPost, "/_sim/trigger", req, &res); err != nil {
		return fmt.Errorf("sim %s trigger: %w", sc.sim, err)
	}
	if sc.asJSON {
		return writeJSON(out, res)
	}
	return table(out, res)
}

// simDeliveries prints the simulator's delivery log of D: as JSON with
// --json ([] when empty), else as a table of header and one row per attempt.
func simDeliveries[D any](cmd *cobra.Command, out io.Writer, sc *simClient, header []string, row func(D) []string) error {
	var log []D
	if err := sc.call(cmd.Context(), http.MethodGet, "/_sim/deliveries", nil, &log); err != nil {
		return fmt.Errorf("sim %s deliveries: %w", sc.sim, err)
	}
	if sc.asJSON {
		if log == nil {
			log = []D{}
		}
		return writeJSON(out, log)
	}
	rows := make([][]string, 0, len(log))
	for _, d := range log {
		rows = append(rows, row(d))
	}
	return writeTable(out, header, rows)
}

// simAttemptStatus is a delivery attempt's outcome for a table: the HTTP
// status, or why no answer came.
func simAttemptStatus(statusCode int, reason string) string {
	if statusCode != 0 {
		return strconv.Itoa(statusCode)
	}
	if reason != "" {
		return reason
	}
	return "-"
}

// simFirstResult is a first attempt's result for a trigger's table: a
// failed one is retried in the background.
func simFirstResult(ok bool) string {
	if ok {
		return "delivered"
	}
	return "failed, will retry"
}

// simRunFlags are the flags every `crmhook sim PROVIDER` has.
type simRunFlags struct {
	addr      string
	timeScale float64
}

// add registers --addr, listening on defaultAddr by default, and
// --time-scale, whose help ends with example.
func (f *simRunFlags) add(cmd *cobra.Command, defaultAddr, example string) {
	cmd.Flags().StringVar(&f.addr, "addr", defaultAddr, "address to listen on (host:port; port 0 picks a free one)")
	cmd.Flags().Float64Var(&f.timeScale, "time-scale", 1, "simulated seconds per real second while waiting between retries ("+example+")")
}

// checkTimeScale refuses a --time-scale that is not positive.
func (f *simRunFlags) checkTimeScale(sim string) error {
	if !(f.timeScale > 0) { // also catches NaN
		return fmt.Errorf("sim %s: --time-scale must be positive, got %v", sim, f.timeScale)
	}
	return nil
}

// simLogger is the simulators' logger: text lines on standard error.
func (c *cli) simLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(c.stderr, nil))
}

// simShutdownTimeout bounds how long a stopping simulator waits for requests
// in flight.
const simShutdownTimeout = 5 * time.Second

// simServer is a running simulator: its API and /_sim/ endpoints, and
// Close, which stops its retry loops.
type simServer interface {
	http.Handler
	Close()
}

// serveSim serves a simulator on addr until ctx is done (main cancels it on
// SIGINT and SIGTERM), and closes it whatever happens. banner gets the base
// URL clients use. On the way out it stops the simulator's retry loops
// first, so a trigger in flight returns at once, then the server.
func (c *cli) serveSim(ctx context.Context, name, addr string, sim simServer, banner func(base string)) error {
	defer sim.Close()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("sim %s: listen: %w", name, err)
	}
	srv := &http.Server{Handler: sim, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	if tcp, ok := ln.Addr().(*net.TCPAddr); ok && !tcp.IP.IsLoopback() {
		// /_sim/ needs no credentials: anyone who can reach the port can trigger.
		fmt.Fprintf(c.stderr, "warning: listening on %s, beyond loopback; the /_sim/ endpoints need no credentials\n", ln.Addr())
	}
	banner(simBaseURL(ln.Addr()))

	select {
	case err := <-served:
		return fmt.Errorf("sim %s: serve: %w", name, err)
	case <-ctx.Done():
	}
	sim.Close()
	shutdownCtx, cancel := context.WithTimeout(context.Background(), simShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		srv.Close()
		return fmt.Errorf("sim %s: shutdown: %w", name, err)
	}
	return nil
}
