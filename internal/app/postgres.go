package app

import (
	"context"
	"errors"
	"time"

	"github.com/crmhook/crmhook"
)

// openPostgres is replaced when store/postgres lands.
func openPostgres(context.Context, string, func(int, time.Duration)) (crmhook.Store, error) {
	return nil, errors.New("app: the postgres store is not built yet")
}
