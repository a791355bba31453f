package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
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

// readInputFile reads a file named by a flag, "-" being standard input.
func readInputFile(cmd *cobra.Command, name string) ([]byte, error) {
	if name == "-" {
		return io.ReadAll(io.LimitReader(cmd.InOrStdin(), 1<<20+1))
	}
	return os.ReadFile(name)
}

// simCall sends one request to a simulator's /_sim/ API (sim names it for the
// messages) and decodes its JSON answer into out, or returns the simulator's
// error message: {"errors":[{"message"}]} as Affinity writes it, or
// {"message"} as Attio does.
func simCall(ctx context.Context, sim, defaultURL, method, simURL, path string, in, out any) error {
	base, err := url.Parse(simURL)
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return fmt.Errorf("--sim-url %q must be an http URL like %s", simURL, defaultURL)
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
		return fmt.Errorf("is the simulator running ('crmhook sim %s')? %w", sim, err)
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

// simShutdownTimeout bounds how long a stopping simulator waits for requests
// in flight.
const simShutdownTimeout = 5 * time.Second

// serveSim serves a simulator on addr until ctx is done (main cancels it on
// SIGINT and SIGTERM). banner gets the base URL clients use. On the way out
// it stops the simulator's retry loops first, so a trigger in flight returns
// at once, then the server.
func (c *cli) serveSim(ctx context.Context, name, addr string, sim http.Handler, closeSim func(), banner func(base string)) error {
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
	closeSim()
	shutdownCtx, cancel := context.WithTimeout(context.Background(), simShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		srv.Close()
		return fmt.Errorf("sim %s: shutdown: %w", name, err)
	}
	return nil
}

// simClientFlags are the flags of the subcommands that talk to a running
// simulator.
type simClientFlags struct {
	simURL string
	asJSON bool
}

func addSimClientFlags(cmd *cobra.Command, f *simClientFlags, defaultURL string) {
	cmd.Flags().StringVar(&f.simURL, "sim-url", defaultURL, "base URL of the running simulator")
	addJSONFlag(cmd, &f.asJSON)
}
