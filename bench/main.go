// Command bench measures crmhook against its ceilings in one invocation, on
// the same machine, with the same load generator, and prints the ratios
// between them (absolute rates on a shared 2-core machine are noisy; ratios
// within one run are not):
//
//	go run ./bench                  # one run: bare, ceiling, SQLite ingest, SQLite + sink
//	go run ./bench -runs 3 -postgres 'postgres://postgres@127.0.0.1:5432/test?sslmode=disable'
//	go run ./bench -disk /var/lib/crmhook     # only the disk's fsync latency
//
// A run has these phases, each a separate server process loaded for
// -duration from -conns keep-alive connections with unique Affinity
// deliveries:
//  1. bare: a net/http handler that reads the body and answers 200;
//  2. ceiling: the same HTTP server stack with a handler that parses and
//     hashes the body and appends it to a group-committed log file (one
//     write and one fdatasync per group of waiting requests, answered after
//     the sync): the fastest anything durable can answer here;
//  3. crmhook serve, SQLite, no sink: durable ingest alone;
//  4. crmhook serve, SQLite, with an HTTP sink dispatching to a counting
//     server inside this process (end to end: acknowledged events that
//     reached the sink per second, until the last one arrived);
//  5. interleaved: the ceiling and crmhook serve (SQLite, no sink) both
//     up, loaded in turns (five slices of -duration/5 each), so that the
//     machine's drift in speed falls on both alike;
//  6. with -postgres: crmhook serve on PostgreSQL with the same sink (a
//     fresh schema, dropped after).
//
// The last lines are the ratios of the run, or their medians with -runs.
// -phases picks phases for an experiment, among them "forward", which is
// not run by default: the ceiling that also posts every event to the sink
// by HTTP, what delivering costs on these cores whatever the store.
package main

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
)

const pathSecret = "benchBenchBenchBenchBenchBenchBenchBench123"

// hookPath is where every server bench loads takes its deliveries.
const hookPath = "/hooks/affinity/" + pathSecret

type options struct {
	duration time.Duration
	conns    int
	// sinkConcurrency is the HTTP sink's concurrency in the sink phases.
	sinkConcurrency int
	runs            int
	postgres        string
	bin             string
	phases          map[string]bool
}

// phase reports whether a phase runs: by default all but "forward", an
// experiment (the ceiling that also posts every event to the sink).
func (o options) phase(name string) bool {
	if o.phases == nil {
		return name != "forward"
	}
	return o.phases[name]
}

func main() {
	bare := flag.String("serve-bare", "", "internal: serve the bare handler on this address")
	ceiling := flag.String("serve-ceiling", "", "internal: serve the ceiling handler on this address")
	ceilingLog := flag.String("ceiling-log", "", "internal: the ceiling handler's log file")
	ceilingRing := flag.Bool("ceiling-ring", false, "internal: the ceiling overwrites a preallocated ring instead of appending")
	ceilingForward := flag.String("ceiling-forward", "", "internal: the ceiling also posts every event to this URL")
	var o options
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "load duration per phase")
	flag.IntVar(&o.conns, "conns", 32, "concurrent connections")
	// 64 and not 32: a slot is held until the outcome is committed (the
	// crash bound), about 8 ms a delivery here under load, so 32 slots
	// deliver about what the receiver acknowledges and a backlog built in
	// the first second never drains before the load ends (docs/BENCHMARKS.md).
	flag.IntVar(&o.sinkConcurrency, "sink-concurrency", 64, "the HTTP sink's concurrency in the sink phases")
	flag.IntVar(&o.runs, "runs", 1, "runs of all phases; the ratios printed last are the medians")
	flag.StringVar(&o.postgres, "postgres", "", "PostgreSQL URL: add a phase with crmhook on PostgreSQL (a fresh schema per run)")
	flag.StringVar(&o.bin, "crmhook", "", "crmhook binary (default: go build ./cmd/crmhook)")
	phases := flag.String("phases", "", "only these phases, comma-separated (bare,ceiling,ring,ingest,sink,pg, and the experiment forward), for experiments; the ratios need the default ones")
	disk := flag.String("disk", "", "only measure this directory's commit latency: frames written like a WAL commit, then fsync")
	flag.Parse()
	if *phases != "" {
		o.phases = map[string]bool{}
		for p := range strings.SplitSeq(*phases, ",") {
			o.phases[strings.TrimSpace(p)] = true
		}
	}
	switch {
	case *bare != "":
		serveBare(*bare)
		return
	case *ceiling != "":
		serveCeiling(*ceiling, *ceilingLog, *ceilingRing, *ceilingForward)
		return
	case *disk != "":
		if err := measureDisk(*disk); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		return
	}
	if o.runs < 1 || o.conns < 1 {
		fmt.Fprintln(os.Stderr, "bench: -runs and -conns must be positive")
		os.Exit(2)
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// measureDisk writes WAL-sized frames (4 KiB pages with their 24-byte
// headers) to a scratch file in dir and fsyncs after each batch, as SQLite's
// synchronous=FULL commit does, and prints the fsync latency.
func measureDisk(dir string) error {
	f, err := os.CreateTemp(dir, "crmhook-disk-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	frame := make([]byte, 4096+24)
	var off int64
	fmt.Printf("| frames per commit | fsync p50 | fsync p99 |\n|---|---|---|\n")
	for _, frames := range []int{1, 4, 20, 60} {
		const commits = 300
		lat := make([]time.Duration, 0, commits)
		for range commits {
			for range frames {
				if _, err := f.WriteAt(frame, off); err != nil {
					return err
				}
				off = (off + int64(len(frame))) % (4 << 20) // a WAL restarts from its start
			}
			start := time.Now()
			if err := f.Sync(); err != nil {
				return err
			}
			lat = append(lat, time.Since(start))
		}
		slices.Sort(lat)
		fmt.Printf("| %d | %s | %s |\n", frames, ms(lat[len(lat)/2]), ms(lat[len(lat)*99/100]))
	}
	return nil
}

// serveBare is the baseline: read the body, answer 200.
func serveBare(addr string) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"ok":true}` + "\n"))
	})
	if err := http.ListenAndServe(addr, h); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

type result struct {
	name          string
	acked, errors int
	seconds       float64
	p50, p99, max time.Duration
	e2eRate       float64
	e2eSeconds    float64
	delivered     int64
	rssMB         float64
	// cpuPerEvent is the server process's CPU time (user and system)
	// during the load (and, with a sink, until the sink has every event)
	// per acknowledged event: what a change costs, less noisy on a shared
	// machine than a rate.
	cpuPerEvent time.Duration
	lat         []time.Duration // every acknowledged request's latency, sorted
}

// merged is one result of several loads of the same server (the
// interleaved phase's slices): their requests and seconds added up, the
// percentiles of all their latencies.
func merged(name string, parts ...result) result {
	r := result{name: name}
	for _, p := range parts {
		r.acked += p.acked
		r.errors += p.errors
		r.seconds += p.seconds
		r.lat = append(r.lat, p.lat...)
	}
	slices.Sort(r.lat)
	r.setPercentiles()
	return r
}

func (r *result) setPercentiles() {
	if n := len(r.lat); n > 0 {
		r.p50, r.p99, r.max = r.lat[n/2], r.lat[n*99/100], r.lat[n-1]
	}
}

func (r result) rate() float64 {
	if r.seconds == 0 {
		return 0
	}
	return float64(r.acked) / r.seconds
}

// runResult is one run's phases.
type runResult struct {
	bare, ceiling, ring, ingest, sink result
	pg, forward                       *result
	// pairedCeiling and pairedIngest are the interleaved phase: the
	// ceiling and crmhook (SQLite, no sink) both up, loaded in turns.
	pairedCeiling, pairedIngest *result
}

// ratios are what a run is judged by.
type ratios struct {
	ceilingOfBare float64 // ceiling / bare
	ring          float64 // SQLite ingest-only / the preallocated-log ceiling
	ingest        float64 // SQLite ingest-only / ceiling
	paired        float64 // the same, interleaved (0: not run)
	withSink      float64 // SQLite ack rate with the sink / SQLite ingest-only
	e2e           float64 // end-to-end events/s / ack rate, SQLite with sink
	pg            float64 // PostgreSQL with sink / SQLite with sink (0: not run)
	p99           float64 // ms, SQLite with sink
	rss           float64 // MB, peak of crmhook serve in the SQLite runs
}

func (r runResult) ratios() ratios {
	x := ratios{
		ceilingOfBare: pct(r.ceiling.rate(), r.bare.rate()),
		ingest:        pct(r.ingest.rate(), r.ceiling.rate()),
		ring:          pct(r.ingest.rate(), r.ring.rate()),
		withSink:      pct(r.sink.rate(), r.ingest.rate()),
		e2e:           pct(r.sink.e2eRate, r.sink.rate()),
		p99:           float64(r.sink.p99.Microseconds()) / 1000,
		rss:           max(r.ingest.rssMB, r.sink.rssMB),
	}
	if r.pg != nil {
		x.pg = pct(r.pg.rate(), r.sink.rate())
	}
	if r.pairedIngest != nil {
		x.paired = pct(r.pairedIngest.rate(), r.pairedCeiling.rate())
	}
	return x
}

func pct(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return 100 * a / b
}

func run(o options) error {
	tmp, err := os.MkdirTemp("", "crmhook-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if o.bin == "" {
		o.bin = filepath.Join(tmp, "crmhook")
		build := exec.Command("go", "build", "-o", o.bin, "./cmd/crmhook")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			return fmt.Errorf("build crmhook: %w", err)
		}
	}
	fmt.Printf("bench: %d connections, %s per phase, %d run(s), sink concurrency %d, GOMAXPROCS %d, %s\n\n", o.conns, o.duration, o.runs, o.sinkConcurrency, runtime.GOMAXPROCS(0), cpuModel())

	var all []ratios
	for i := range o.runs {
		dir := filepath.Join(tmp, fmt.Sprintf("run%d", i+1))
		rr, err := runOnce(o, dir, i+1)
		if err != nil {
			return err
		}
		printRun(i+1, rr)
		all = append(all, rr.ratios())
		if err := os.RemoveAll(dir); err != nil {
			return err
		}
	}
	printRatios(all, o.postgres != "")
	return nil
}

func runOnce(o options, dir string, n int) (runResult, error) {
	var rr runResult
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return rr, err
	}
	self, err := os.Executable()
	if err != nil {
		return rr, err
	}

	// The bare handler and the ceiling, each its own process.
	for _, p := range []struct {
		phase, name string
		args        []string
		res         *result
	}{
		{"bare", "bare net/http handler", []string{"-serve-bare"}, &rr.bare},
		{"ceiling", "ceiling: parse, hash, append to a group-committed log, fdatasync", []string{"-serve-ceiling"}, &rr.ceiling},
		{"ring", "ceiling, preallocated log (overwritten in place, as a WAL)", []string{"-ceiling-ring", "-serve-ceiling"}, &rr.ring},
	} {
		if !o.phase(p.phase) {
			continue
		}
		srv, url, err := startSelf(self, p.args, filepath.Join(dir, "ceiling.log"))
		if err != nil {
			return rr, err
		}
		cpu0 := cpuTime(srv.pid)
		*p.res = load(p.name, url, o.duration, o.conns)
		p.res.setCPU(cpuTime(srv.pid) - cpu0)
		p.res.rssMB = rssMB(srv.pid)
		srv.stop()
	}

	sink := newCountingSink()
	sinkSrv := &http.Server{Handler: sink}
	sinkLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return rr, err
	}
	go sinkSrv.Serve(sinkLn)
	defer sinkSrv.Close()
	sink.url = "http://" + sinkLn.Addr().String()

	if o.phase("forward") {
		// The ceiling that also delivers every event to the sink by HTTP.
		srv, url, err := startSelf(self, []string{"-serve-ceiling"}, filepath.Join(dir, "forward.log"), "-ceiling-forward", sink.url+"/")
		if err != nil {
			return rr, err
		}
		sink.reset()
		start, cpu0 := time.Now(), cpuTime(srv.pid)
		res := load("ceiling + every event posted to the sink (32 goroutines)", url, o.duration, o.conns)
		waitSink(&res, sink, start)
		res.setCPU(cpuTime(srv.pid) - cpu0)
		res.rssMB = rssMB(srv.pid)
		srv.stop()
		rr.forward = &res
	}
	sqlite := func(phase string) string {
		return "sqlite://" + filepath.Join(dir, phase, "crmhook.db")
	}
	if o.phase("ingest") {
		if rr.ingest, err = runCrmhook(o, filepath.Join(dir, "ingest"), sqlite("ingest"), nil,
			"crmhook serve, SQLite, durable ingest (no sink)"); err != nil {
			return rr, err
		}
	}
	if o.phase("sink") {
		if rr.sink, err = runCrmhook(o, filepath.Join(dir, "sink"), sqlite("sink"), sink,
			"crmhook serve, SQLite, HTTP sink dispatching"); err != nil {
			return rr, err
		}
	}
	if o.phase("paired") {
		c, i, err := runPaired(o, self, dir)
		if err != nil {
			return rr, err
		}
		rr.pairedCeiling, rr.pairedIngest = &c, &i
	}
	if o.postgres != "" && o.phase("pg") {
		storeURL, drop, err := pgSchema(o.postgres, fmt.Sprintf("crmhook_bench_%d_%d", os.Getpid(), n))
		if err != nil {
			return rr, err
		}
		res, err := runCrmhook(o, filepath.Join(dir, "pg"), storeURL, sink,
			"crmhook serve, PostgreSQL (same machine), HTTP sink dispatching")
		drop()
		if err != nil {
			return rr, err
		}
		rr.pg = &res
	}
	return rr, nil
}

// pgSchema creates a fresh schema and returns the store URL that uses it,
// and a function that drops it.
func pgSchema(rawURL, schema string) (string, func(), error) {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, rawURL)
	if err != nil {
		return "", nil, fmt.Errorf("postgres: %w", err)
	}
	defer conn.Close(ctx)
	ident := pgx.Identifier{schema}.Sanitize()
	if _, err := conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+ident+" CASCADE; CREATE SCHEMA "+ident); err != nil {
		return "", nil, fmt.Errorf("postgres: create schema: %w", err)
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", nil, err
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	drop := func() {
		c, err := pgx.Connect(ctx, rawURL)
		if err != nil {
			return
		}
		defer c.Close(ctx)
		_, _ = c.Exec(ctx, "DROP SCHEMA IF EXISTS "+ident+" CASCADE")
	}
	return u.String(), drop, nil
}

// runCrmhook runs crmhook serve on store, with an HTTP sink pointing at
// sink when it is not nil, loads it and waits until every acknowledged
// event reached the sink.
func runCrmhook(o options, dir, store string, sink *countingSink, name string) (result, error) {
	srv, hookURL, err := startCrmhook(o, dir, store, sink)
	if err != nil {
		return result{}, err
	}
	defer srv.stop()
	if sink != nil {
		sink.reset()
	}
	start, cpu0 := time.Now(), cpuTime(srv.pid)
	res := load(name, hookURL, o.duration, o.conns)
	if sink != nil {
		waitSink(&res, sink, start)
	}
	res.setCPU(cpuTime(srv.pid) - cpu0)
	res.rssMB = rssMB(srv.pid)
	return res, nil
}

// server is a server process bench started; stop kills it and waits.
type server struct {
	pid  int
	stop func()
}

// startCrmhook starts crmhook serve on store (with an HTTP sink to sink
// when it is not nil) and returns once it is up, with its hook URL.
func startCrmhook(o options, dir, store string, sink *countingSink) (server, string, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return server{}, "", err
	}
	listen, admin := freeAddr(), freeAddr()
	sinks := ""
	if sink != nil {
		sinks = fmt.Sprintf("sinks:\n  - name: bench\n    type: http\n    url: %s/\n    concurrency: %d\n    timeout: 10s\n", sink.url, o.sinkConcurrency)
	}
	cfg := fmt.Sprintf(`listen: %s
admin: {listen: %s, token: bench-admin-token-0123456789}
data_dir: %s
store: %q
log: {level: warn}
delivery: {lease: 30s, poll_interval: 100ms}
sources:
  - name: affinity
    provider: affinity
    secrets: [%s]
%s`, listen, admin, filepath.Join(dir, "data"), store, pathSecret, sinks)
	cfgPath := filepath.Join(dir, "crmhook.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return server{}, "", err
	}
	logf, err := os.Create(filepath.Join(dir, "serve.log"))
	if err != nil {
		return server{}, "", err
	}
	srv := exec.Command(o.bin, "serve", "--config", cfgPath)
	srv.Stdout, srv.Stderr = io.Discard, logf
	if err := srv.Start(); err != nil {
		logf.Close()
		return server{}, "", err
	}
	waitUp("http://" + admin + "/healthz")
	return server{pid: srv.Process.Pid, stop: func() { srv.Process.Kill(); srv.Wait(); logf.Close() }},
		"http://" + listen + hookPath, nil
}

// startSelf starts this program serving one of its handlers (the bare one
// or the ceiling): args end with the serve flag, which takes the address;
// log is the ceiling's log file, extra more flags. It returns once the
// server is up, with its hook URL.
func startSelf(self string, args []string, log string, extra ...string) (server, string, error) {
	addr := freeAddr()
	cmd := exec.Command(self, slices.Concat(args, []string{addr, "-ceiling-log", log}, extra)...)
	cmd.Stdout, cmd.Stderr = io.Discard, os.Stderr
	if err := cmd.Start(); err != nil {
		return server{}, "", err
	}
	waitUp("http://" + addr + "/")
	return server{pid: cmd.Process.Pid, stop: func() { cmd.Process.Kill(); cmd.Wait() }},
		"http://" + addr + hookPath, nil
}

// pairedSlices is how many turns each server of the interleaved phase gets.
const pairedSlices = 5

// runPaired is the interleaved phase: the ceiling and crmhook serve
// (SQLite, no sink) both up and idle, then loaded in turns, a fifth of
// -duration each, five times, so that a change in the machine's speed
// during the run falls on both alike. (Sequential phases are 20 s apart
// or more, and the two cores' speed was seen to move by half within an
// hour.)
func runPaired(o options, self, dir string) (ceiling, ingest result, err error) {
	ceil, ceilURL, err := startSelf(self, []string{"-serve-ceiling"}, filepath.Join(dir, "paired-ceiling.log"))
	if err != nil {
		return ceiling, ingest, err
	}
	defer ceil.stop()
	crm, crmURL, err := startCrmhook(o, filepath.Join(dir, "paired"), "sqlite://"+filepath.Join(dir, "paired", "crmhook.db"), nil)
	if err != nil {
		return ceiling, ingest, err
	}
	defer crm.stop()
	slice := o.duration / pairedSlices
	var cs, is []result
	ceilCPU, crmCPU := time.Duration(0), time.Duration(0)
	for range pairedSlices {
		c0 := cpuTime(ceil.pid)
		cs = append(cs, load("", ceilURL, slice, o.conns))
		ceilCPU += cpuTime(ceil.pid) - c0
		c0 = cpuTime(crm.pid)
		is = append(is, load("", crmURL, slice, o.conns))
		crmCPU += cpuTime(crm.pid) - c0
	}
	ceiling = merged(fmt.Sprintf("interleaved (%d × %s each): ceiling", pairedSlices, slice), cs...)
	ceiling.setCPU(ceilCPU)
	ceiling.rssMB = rssMB(ceil.pid)
	ingest = merged(fmt.Sprintf("interleaved (%d × %s each): crmhook serve, SQLite, durable ingest", pairedSlices, slice), is...)
	ingest.setCPU(crmCPU)
	ingest.rssMB = rssMB(crm.pid)
	return ceiling, ingest, nil
}

// waitSink waits until every acknowledged event reached the sink (at most
// two minutes) and sets the end-to-end figures: distinct events at the sink
// per second from the start of the load until the last of them arrived.
func waitSink(res *result, sink *countingSink, start time.Time) {
	deadline := time.Now().Add(2 * time.Minute)
	for sink.count() < int64(res.acked) && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	res.delivered = sink.count()
	res.e2eSeconds = sink.last().Sub(start).Seconds()
	if res.e2eSeconds > 0 {
		res.e2eRate = float64(res.delivered) / res.e2eSeconds
	}
	if res.delivered < int64(res.acked) {
		fmt.Fprintf(os.Stderr, "bench: only %d of %d acknowledged events reached the sink in time\n", res.delivered, res.acked)
	}
}

func printRun(n int, rr runResult) {
	fmt.Printf("run %d\n\n| phase | acked req/s | p50 ack | p99 ack | max ack | errors | end-to-end events/s | server CPU per event | peak RSS |\n|---|---|---|---|---|---|---|---|---|\n", n)
	rows := []result{rr.bare, rr.ceiling, rr.ring, rr.ingest, rr.sink}
	if rr.pg != nil {
		rows = append(rows, *rr.pg)
	}
	if rr.forward != nil {
		rows = append(rows, *rr.forward)
	}
	if rr.pairedIngest != nil {
		rows = append(rows, *rr.pairedCeiling, *rr.pairedIngest)
	}
	for _, r := range rows {
		if r.name == "" {
			continue // a phase -phases left out
		}
		e2e := "—"
		if r.e2eRate > 0 {
			e2e = fmt.Sprintf("%.0f (%d of %d in %.1f s)", r.e2eRate, r.delivered, r.acked, r.e2eSeconds)
		}
		fmt.Printf("| %s | %.0f | %s | %s | %s | %d | %s | %.0f µs | %.0f MB |\n", r.name, r.rate(), ms(r.p50), ms(r.p99), ms(r.max), r.errors, e2e,
			float64(r.cpuPerEvent)/float64(time.Microsecond), r.rssMB)
	}
	x := rr.ratios()
	fmt.Printf("\nrun %d: ceiling / bare %.0f%%, crmhook / ceiling %.0f%% (preallocated %.0f%%), with sink / ingest %.0f%%, end-to-end / ack %.0f%%",
		n, x.ceilingOfBare, x.ingest, x.ring, x.withSink, x.e2e)
	if rr.pg != nil {
		fmt.Printf(", postgres / sqlite %.0f%%", x.pg)
	}
	if rr.pairedIngest != nil {
		fmt.Printf(", crmhook / ceiling interleaved %.0f%%", x.paired)
	}
	if rr.forward != nil {
		fmt.Printf(", ceiling with forwarding / ceiling %.0f%%, its end-to-end / ack %.0f%%",
			pct(rr.forward.rate(), rr.ceiling.rate()), pct(rr.forward.e2eRate, rr.forward.rate()))
	}
	fmt.Printf(", p99 ack with sink %.2f ms, peak RSS %.0f MB\n\n", x.p99, x.rss)
}

// printRatios prints the ratios, the medians of the runs, as the last lines.
func printRatios(all []ratios, pg bool) {
	med := func(f func(ratios) float64) string {
		v := make([]float64, len(all))
		for i, r := range all {
			v[i] = f(r)
		}
		slices.Sort(v)
		m := v[len(v)/2]
		if len(v)%2 == 0 {
			m = (v[len(v)/2-1] + v[len(v)/2]) / 2
		}
		if len(v) == 1 {
			return fmt.Sprintf("%.4g", m)
		}
		parts := make([]string, len(all))
		for i, r := range all {
			parts[i] = fmt.Sprintf("%.4g", f(r))
		}
		return fmt.Sprintf("%.4g (runs: %s)", m, strings.Join(parts, ", "))
	}
	what := "of the run"
	if len(all) > 1 {
		what = fmt.Sprintf("medians of %d runs", len(all))
	}
	fmt.Printf("ratios (%s):\n", what)
	fmt.Printf("ceiling / bare: %s%%\n", med(func(r ratios) float64 { return r.ceilingOfBare }))
	fmt.Printf("crmhook / preallocated-log ceiling: %s%%\n", med(func(r ratios) float64 { return r.ring }))
	fmt.Printf("crmhook / ceiling: %s%%  (SQLite durable ingest, no sink; floor 75%%)\n", med(func(r ratios) float64 { return r.ingest }))
	if all[0].paired > 0 {
		fmt.Printf("crmhook / ceiling, interleaved: %s%%  (the same, the two loaded in turns; floor 75%%)\n", med(func(r ratios) float64 { return r.paired }))
	}
	fmt.Printf("with sink / ingest: %s%%  (SQLite ack rate while dispatching / ingest-only; floor 90%%)\n", med(func(r ratios) float64 { return r.withSink }))
	fmt.Printf("end-to-end / ack: %s%%  (events/s into the sink / ack rate, same phase; floor 95%%)\n", med(func(r ratios) float64 { return r.e2e }))
	if pg {
		fmt.Printf("postgres / sqlite: %s%%  (ack rate with the sink; floor 60%%)\n", med(func(r ratios) float64 { return r.pg }))
	}
	fmt.Printf("p99 ack with sink: %s ms  (SQLite, %s; floor 10 ms)\n", med(func(r ratios) float64 { return r.p99 }), "32 connections by default")
	fmt.Printf("peak RSS: %s MB  (crmhook serve, SQLite; floor 50 MB)\n", med(func(r ratios) float64 { return r.rss }))
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000) }

// load sends unique Affinity-shaped deliveries from conns goroutines for d.
func load(name, url string, d time.Duration, conns int) result {
	tr := &http.Transport{MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns}
	hc := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	defer tr.CloseIdleConnections()
	var seq atomic.Int64
	var mu sync.Mutex
	var lat []time.Duration
	var errs atomic.Int64
	stop := time.Now().Add(d)
	start := time.Now()
	var wg sync.WaitGroup
	for range conns {
		wg.Go(func() {
			local := make([]time.Duration, 0, 1<<16)
			for time.Now().Before(stop) {
				n := seq.Add(1)
				body := fmt.Appendf(nil, `{"type":"person.created","body":{"id":%d,"type":0,"first_name":"Jane","last_name":"Doe","primary_email":"jane.doe@example.com","emails":["jane.doe@example.com"],"organization_ids":[1687449]},"sent_at":%d}`, n, time.Now().Unix())
				req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				t0 := time.Now()
				resp, err := hc.Do(req)
				if err != nil {
					errs.Add(1)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					errs.Add(1)
					continue
				}
				local = append(local, time.Since(t0))
			}
			mu.Lock()
			lat = append(lat, local...)
			mu.Unlock()
		})
	}
	wg.Wait()
	el := time.Since(start)
	slices.Sort(lat)
	r := result{name: name, acked: len(lat), errors: int(errs.Load()), seconds: el.Seconds(), lat: lat}
	r.setPercentiles()
	return r
}

// countingSink counts distinct webhook-ids (crmhook's event ids).
type countingSink struct {
	url  string
	mu   sync.Mutex
	seen map[string]struct{}
	at   time.Time
}

func newCountingSink() *countingSink { return &countingSink{seen: map[string]struct{}{}} }

func (s *countingSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	id := r.Header.Get("webhook-id")
	s.mu.Lock()
	if _, dup := s.seen[id]; !dup {
		s.seen[id] = struct{}{}
		s.at = time.Now()
	}
	s.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (s *countingSink) reset() { s.mu.Lock(); s.seen = map[string]struct{}{}; s.mu.Unlock() }
func (s *countingSink) count() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return int64(len(s.seen))
}
func (s *countingSink) last() time.Time { s.mu.Lock(); defer s.mu.Unlock(); return s.at }

func freeAddr() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func waitUp(url string) {
	for range 600 {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	fmt.Fprintln(os.Stderr, "bench: server did not come up:", url)
	os.Exit(1)
}

func (r *result) setCPU(used time.Duration) {
	if r.acked > 0 {
		r.cpuPerEvent = used / time.Duration(r.acked)
	}
}

// cpuTime is the CPU time (user and system) the process has used so far,
// from /proc (clock ticks of 1/100 s on Linux); 0 where /proc has none.
func cpuTime(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name, in parentheses, may hold spaces: fields count from
	// after its closing parenthesis, where field 3 (state) begins.
	_, rest, ok := strings.Cut(string(b), ") ")
	if !ok {
		return 0
	}
	f := strings.Fields(rest)
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64) // field 14
	stime, _ := strconv.ParseInt(f[12], 10, 64) // field 15
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

// rssMB is the process's peak resident set (VmHWM).
func rssMB(pid int) float64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb / 1024
		}
	}
	return 0
}

func cpuModel() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	for l := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "model name"); ok {
			return strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
		}
	}
	return runtime.GOARCH
}
