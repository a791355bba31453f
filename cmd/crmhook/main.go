// Command crmhook receives CRM webhooks durably and delivers them on.
//
// This package only wires: every behaviour lives in the library packages.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newCLI(os.Stdout, os.Stderr, os.Getenv).run(ctx, os.Args[1:])
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "crmhook: "+err.Error())
		os.Exit(1)
	}
}
