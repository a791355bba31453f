package main

import (
	"context"
	"fmt"
	"time"

	"github.com/crmhook/crmhook/subscription"
	"github.com/spf13/cobra"
)

func (c *cli) secretsCmd() *cobra.Command {
	var cfgPath string
	cmd := &cobra.Command{
		Use:   "secrets",
		Short: "Rotate a source's secret at the provider and here, with no delivery refused",
	}
	cmd.PersistentFlags().StringVarP(&cfgPath, "config", "c", "", "config file (default ./"+defaultConfigFile+")")
	cmd.PersistentFlags().DurationVar(&c.settle, "settle", defaultSettle, "how long a new secret is stored before the provider is sent to it (every running receiver reloads secrets every 2s)")
	cmd.AddCommand(c.secretsRotateCmd(&cfgPath))
	return cmd
}

func (c *cli) secretsRotateCmd(cfgPath *string) *cobra.Command {
	var grace time.Duration
	cmd := &cobra.Command{
		Use:   "rotate SOURCE",
		Short: "Rotate SOURCE's secret: the new one is accepted first, the old one retired after --grace",
		Long: `Rotate a source's secret without refusing a delivery.

Affinity: a new path secret is stored (every running receiver accepts it
within seconds), the subscription's URL is moved to it at Affinity (its probe
reaches the new URL), and the old secrets stop being accepted after --grace.
A source with no subscription block is rotated here only: the new hook URL is
printed, and Affinity must be moved to it before the grace period ends.

Attio: a new webhook with the same events and filters is created and its
secret stored, the old webhook is deleted, and its secret stops being
accepted after --grace.

Standard Webhooks: a new whsec_ secret is stored and printed once for the
sender's operator; the old one stops being accepted after --grace.

Every step is recorded in the store: run the same command again after a
failure and it finishes the rotation that was under way.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.withSubscriptions(cmd.Context(), *cfgPath, func(m *subscription.Manager) error {
				return c.rotate(cmd.Context(), m, args[0], grace)
			})
		},
	}
	cmd.Flags().DurationVar(&grace, "grace", subscription.DefaultRotationGrace, "how long the old secret stays accepted")
	return cmd
}

func (c *cli) rotate(ctx context.Context, m *subscription.Manager, source string, grace time.Duration) error {
	res, err := m.Rotate(ctx, source, grace)
	if err != nil {
		return err
	}
	w := c.stdout
	if res.Resumed {
		fmt.Fprintf(w, "Finished the rotation of %s that had stopped.\n", source)
	}
	switch {
	case res.Secret != "":
		fmt.Fprintf(w, "New signing secret of %s (shown once; give it to the sender's operator):\n  %s\n", source, res.Secret)
	case res.Manual:
		fmt.Fprintf(w, "New hook URL of %s (move the Affinity subscription to it before %s):\n  %s\n", source, res.RetireAt.Format(time.RFC3339), res.HookURL)
	case res.SubscriptionID != "":
		fmt.Fprintf(w, "%s now receives from Attio webhook %s; the old webhook is deleted.\n", source, res.SubscriptionID)
	default:
		fmt.Fprintf(w, "%s's Affinity subscription now points at %s.\n", source, subscription.RedactURL(res.HookURL))
	}
	fmt.Fprintf(w, "The old secret stays accepted until %s.\n", res.RetireAt.Format(time.RFC3339))
	return nil
}
