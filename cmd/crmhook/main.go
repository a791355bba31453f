// Command crmhook receives CRM webhooks durably and delivers them on.
//
// This package only wires: every behaviour lives in the library packages.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
)

// gcPercent is the collector's target when GOGC is not set. What a
// delivery leaves behind (its body, the parsed envelope, the SQL
// arguments) is garbage as soon as it is answered, so the live heap stays
// small and the default of 100 collects it very often: at 200 crmhook
// serve spends 5–8 % less CPU per event for about 3 MB more peak memory
// (docs/BENCHMARKS.md). GOGC and GOMEMLIMIT still rule when set.
const gcPercent = 200

func main() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newCLI(os.Stdout, os.Stderr, os.Getenv).run(ctx, os.Args[1:])
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "crmhook: "+err.Error())
		os.Exit(1)
	}
}
