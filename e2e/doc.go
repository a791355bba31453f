// Package e2e proves crmhook's promise end to end, against the real binary
// and the real app.Main: SIGKILL crashes under load (crash_test.go), sink and
// store faults and graceful shutdown (fault_test.go), the public listener's
// server settings, TLS and the admin token (listener_test.go), and that no
// payload PII or secret ever reaches the logs (leak_test.go).
//
// The package holds tests only. The normal run is bounded (well under a
// minute under -race):
//
//	go test -race -count=1 ./e2e/
//
// The long crash run kills the process many more times:
//
//	CRMHOOK_CRASH_KILLS=50 go test -count=1 -run TestCrash -v -timeout 20m ./e2e/
//	go test -count=1 -run TestCrash -v -timeout 20m ./e2e/ -crash.kills=50
//
// The store-fault test fills a small tmpfs when it may mount one (root);
// otherwise it injects a failing store through app.Main.Store.
package e2e
