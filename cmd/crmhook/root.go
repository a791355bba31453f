package main

import (
	"context"
	"io"
	"time"

	"github.com/spf13/cobra"
)

// cli carries what every command needs from the outside world, so tests run
// commands in-process with their own writers and environment.
type cli struct {
	stdout io.Writer
	stderr io.Writer
	getenv func(string) string
	// settle is --settle of the subscriptions and secrets commands.
	settle time.Duration
}

func newCLI(stdout, stderr io.Writer, getenv func(string) string) *cli {
	return &cli{stdout: stdout, stderr: stderr, getenv: getenv}
}

func (c *cli) run(ctx context.Context, args []string) error {
	root := c.rootCmd()
	root.SetArgs(args)
	return root.ExecuteContext(ctx)
}

func (c *cli) rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "crmhook",
		Short: "Self-hosted receiver and SDK for Affinity, Attio and Standard Webhooks",
		// Errors are printed once, as one line, by main.
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(c.stdout)
	root.SetErr(c.stderr)
	root.AddCommand(
		c.serveCmd(),
		c.initCmd(),
		c.sendCmd(),
		c.eventsCmd(),
		c.affinityCmd(),
		c.attioCmd(),
		c.subscriptionsCmd(),
		c.secretsCmd(),
		c.simCmd(),
		c.versionCmd(),
	)
	return root
}

func (c *cli) simCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "sim",
		Short: "Run local provider simulators (real HTTP servers speaking the providers' webhook APIs)",
	}
	cmd.AddCommand(c.simAffinityCmd(), c.simAttioCmd())
	return cmd
}
