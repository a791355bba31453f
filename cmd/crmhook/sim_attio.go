package main

import "github.com/spf13/cobra"

// TODO(skeleton): replaced by the real command group.
func (c *cli) simAttioCmd() *cobra.Command {
	return &cobra.Command{Use: "attio", Short: "Run the Attio simulator"}
}
