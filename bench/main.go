// Command bench measures crmhook's ingest against a bare net/http handler in
// the same run, on the same machine, with the same load generator:
//
//	go run ./bench                      # SQLite store, 32 connections, 10 s per phase
//	go run ./bench -store postgres://postgres@127.0.0.1:5432/test?sslmode=disable
//	go run ./bench -disk /var/lib/crmhook     # only the disk's fsync latency
//
// Both servers run as separate processes (the bare handler is this program
// re-executed with -serve-bare), so neither shares a heap or scheduler with
// the load generator, and crmhook's peak RSS is its own. The sink is an HTTP
// server inside this process that counts distinct event ids, which gives the
// end-to-end rate: acknowledged events that reached the sink per second.
package main

import (
	"bufio"
	"bytes"

	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
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
)

const pathSecret = "benchBenchBenchBenchBenchBenchBenchBench123"

func main() {
	bare := flag.String("serve-bare", "", "internal: serve the bare handler on this address")
	duration := flag.Duration("duration", 10*time.Second, "load duration per phase")
	conns := flag.Int("conns", 32, "concurrent connections")
	store := flag.String("store", "", "crmhook store URL (default: SQLite in a temp dir)")
	bin := flag.String("crmhook", "", "crmhook binary (default: go build ./cmd/crmhook)")
	withSink := flag.Bool("sink", true, "configure the HTTP sink (false: measure durable ingest alone, no dispatching)")
	disk := flag.String("disk", "", "only measure this directory's commit latency: frames written like a WAL commit, then fsync")
	flag.Parse()
	if *bare != "" {
		serveBare(*bare)
		return
	}
	if *disk != "" {
		if err := measureDisk(*disk); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(*duration, *conns, *store, *bin, *withSink); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// measureDisk writes WAL-sized frames (4 KiB pages with their 24-byte
// headers) to a scratch file in dir and fsyncs after each batch, as SQLite's
// synchronous=FULL commit does, and prints the fsync latency. No durable
// store can answer faster than this, and with a fixed number of
// connections it bounds how many events one commit can carry per second.
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
	rssMB         float64
}

func run(d time.Duration, conns int, store, bin string, withSink bool) error {
	tmp, err := os.MkdirTemp("", "crmhook-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if bin == "" {
		bin = filepath.Join(tmp, "crmhook")
		build := exec.Command("go", "build", "-o", bin, "./cmd/crmhook")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			return fmt.Errorf("build crmhook: %w", err)
		}
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "bench: %d connections, %s per phase, GOMAXPROCS %d, %s\n", conns, d, runtime.GOMAXPROCS(0), cpuModel())

	// Phase 1: the bare handler.
	addr := freeAddr()
	bareCmd := exec.Command(self, "-serve-bare", addr)
	if err := bareCmd.Start(); err != nil {
		return err
	}
	waitUp("http://" + addr + "/")
	bareRes := load("bare net/http handler", "http://"+addr+"/hooks/affinity/"+pathSecret, d, conns)
	bareRes.rssMB = rssMB(bareCmd.Process.Pid)
	bareCmd.Process.Kill()
	bareCmd.Wait()

	// Phase 2: crmhook serve with an HTTP sink.
	sink := newCountingSink()
	sinkSrv := &http.Server{Handler: sink}
	sinkLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	go sinkSrv.Serve(sinkLn)
	defer sinkSrv.Close()

	listen, admin := freeAddr(), freeAddr()
	sinks := fmt.Sprintf("sinks:\n  - name: bench\n    type: http\n    url: http://%s/\n    concurrency: 32\n    timeout: 10s\n", sinkLn.Addr())
	if !withSink {
		sinks = ""
	}
	if store == "" {
		store = "sqlite://" + filepath.Join(tmp, "data", "crmhook.db")
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
%s`, listen, admin, filepath.Join(tmp, "data"), store, pathSecret, sinks)
	cfgPath := filepath.Join(tmp, "crmhook.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return err
	}
	srv := exec.Command(bin, "serve", "--config", cfgPath)
	srv.Stdout, srv.Stderr = io.Discard, os.Stderr
	if err := srv.Start(); err != nil {
		return err
	}
	defer func() { srv.Process.Kill(); srv.Wait() }()
	waitUp("http://" + admin + "/healthz")

	name := "crmhook serve (SQLite, fsync per group commit)"
	if strings.HasPrefix(store, "postgres") {
		name = "crmhook serve (Postgres)"
	}
	if !withSink {
		name += ", no sink"
	}
	sink.reset()
	start := time.Now()
	res := load(name, "http://"+listen+"/hooks/affinity/"+pathSecret, d, conns)
	// End to end: until every acknowledged event reached the sink.
	deadline := time.Now().Add(2 * time.Minute)
	if !withSink {
		deadline = time.Now()
	}
	for sink.count() < int64(res.acked) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if withSink {
		res.e2eSeconds = sink.last().Sub(start).Seconds()
		res.e2eRate = float64(sink.count()) / res.e2eSeconds
	}
	res.rssMB = rssMB(srv.Process.Pid)
	if withSink && sink.count() < int64(res.acked) {
		fmt.Fprintf(os.Stderr, "bench: only %d of %d acknowledged events reached the sink in time\n", sink.count(), res.acked)
	}

	fmt.Printf("| run | acked req/s | p50 ack | p99 ack | max ack | errors | end-to-end events/s | peak RSS |\n|---|---|---|---|---|---|---|---|\n")
	for _, r := range []result{bareRes, res} {
		e2e := "—"
		if r.e2eRate > 0 {
			e2e = fmt.Sprintf("%.0f (all %d in %.1fs)", r.e2eRate, r.acked, r.e2eSeconds)
		}
		fmt.Printf("| %s | %.0f | %s | %s | %s | %d | %s | %.0f MB |\n", r.name, float64(r.acked)/r.seconds, ms(r.p50), ms(r.p99), ms(r.max), r.errors, e2e, r.rssMB)
	}
	fmt.Printf("\ncrmhook / bare: %.0f%% of the bare handler's rate\n", 100*float64(res.acked)/res.seconds/(float64(bareRes.acked)/bareRes.seconds))
	return nil
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
	r := result{name: name, acked: len(lat), errors: int(errs.Load()), seconds: el.Seconds()}
	if len(lat) > 0 {
		r.p50, r.p99, r.max = lat[len(lat)/2], lat[len(lat)*99/100], lat[len(lat)-1]
	}
	return r
}

// countingSink counts distinct webhook-ids (crmhook's event ids).
type countingSink struct {
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
	for i := 0; i < 600; i++ {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	fmt.Fprintln(os.Stderr, "bench: server did not come up:", url)
	os.Exit(1)
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
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "model name"); ok {
			return strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
		}
	}
	return runtime.GOARCH
}
