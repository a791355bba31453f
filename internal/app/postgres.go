package app

import (
	"context"
	"fmt"

	"github.com/crmhook/crmhook"
	"github.com/crmhook/crmhook/store/postgres"
)

// openPostgres opens the shared store a postgres:// URL names (search_path
// and pool_max_conns among its parameters).
func openPostgres(ctx context.Context, rawURL string, opts StoreOptions) (crmhook.Store, error) {
	st, err := postgres.Open(ctx, postgres.Config{URL: rawURL, OnCommit: opts.OnCommit, Now: opts.Now})
	if err != nil {
		return nil, fmt.Errorf("app: open store: %w", err)
	}
	return st, nil
}

// wakeSubscriber is a store that tells when another replica committed work
// that may be due (the Postgres store, through LISTEN/NOTIFY).
type wakeSubscriber interface {
	Subscribe(ctx context.Context, fn func())
}
