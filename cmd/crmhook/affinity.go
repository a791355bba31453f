package main

import "github.com/spf13/cobra"

// TODO(skeleton): replaced by the real command group.
func (c *cli) affinityCmd() *cobra.Command {
	return &cobra.Command{Use: "affinity", Short: "Manage Affinity webhook subscriptions"}
}
