package main

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/crmhook/crmhook/affinity"
)

// serveCeiling is the durable ceiling: the HTTP server stack crmhook serve
// uses (net/http with the public listener's timeouts and body limit), and a
// handler that does the least a receiver that answers "durable" must do:
// parse the body (the Affinity SDK's Parse, as crmhook's receiver does),
// hash it (a dedupe key) and append it to a log file that is group-committed
// like crmhook's store: one writer takes every request waiting, writes them
// with one write(2), calls fdatasync(2) once and answers them all after it.
// No index, no B-tree, no recovery: nothing durable can answer faster on
// this HTTP stack and this disk.
//
// The log grows by appending, as the issue defines the ceiling: each
// fdatasync then also commits the file system's journal for the new size.
// With ring set it is instead a preallocated ring of ceilingLogSize bytes,
// written with zeros and synced before the server starts, so that a commit
// overwrites allocated blocks and its fdatasync flushes data only, as
// SQLite's WAL does once it has wrapped: a higher ceiling, printed beside.
//
// With forward set, each event is also posted, after its answer, to that
// URL by 32 goroutines (as crmhook's HTTP sink at concurrency 32 does, but
// with nothing to claim or record): what delivering by HTTP costs on the
// same cores, whatever the store.
func serveCeiling(addr, logPath string, ring bool, forward string) {
	appendOnly := !ring
	var fwd chan []byte
	if forward != "" {
		fwd = make(chan []byte, 1<<16)
		tr := &http.Transport{MaxIdleConnsPerHost: 64}
		hc := &http.Client{Transport: tr, Timeout: 10 * time.Second}
		var seq atomic.Int64
		for range 32 {
			go func() {
				for body := range fwd {
					req, _ := http.NewRequest(http.MethodPost, forward, bytes.NewReader(body))
					req.Header.Set("Content-Type", "application/json")
					req.Header.Set("webhook-id", strconv.FormatInt(seq.Add(1), 10))
					if resp, err := hc.Do(req); err == nil {
						_, _ = io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
					}
				}
			}()
		}
	}
	flags := os.O_RDWR | os.O_CREATE | os.O_TRUNC
	if appendOnly {
		flags = os.O_WRONLY | os.O_CREATE | os.O_APPEND
	}
	f, err := os.OpenFile(logPath, flags, 0o600)
	if err == nil && !appendOnly {
		err = preallocate(f, ceilingLogSize)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	var off int64
	write := func(b []byte) error {
		if appendOnly {
			_, err := f.Write(b)
			return err
		}
		if off+int64(len(b)) > ceilingLogSize {
			off = 0
		}
		_, err := f.WriteAt(b, off)
		off += int64(len(b))
		return err
	}
	type entry struct {
		rec  []byte
		done chan error
	}
	queue := make(chan entry, 1024)
	go func() {
		var buf []byte
		group := make([]entry, 0, 128)
		for first := range queue {
			group = append(group[:0], first)
		drain:
			for len(group) < 128 {
				select {
				case e := <-queue:
					group = append(group, e)
				default:
					break drain
				}
			}
			buf = buf[:0]
			for _, e := range group {
				buf = append(buf, e.rec...)
			}
			err := write(buf)
			if err == nil {
				err = syscall.Fdatasync(int(f.Fd()))
			}
			for _, e := range group {
				e.done <- err
			}
		}
	}()
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
		if err != nil {
			http.Error(w, "body", http.StatusRequestEntityTooLarge)
			return
		}
		ev, err := affinity.Parse(body)
		if err != nil {
			http.Error(w, "payload", http.StatusBadRequest)
			return
		}
		sum := sha256.Sum256(body)
		rec := fmt.Appendf(make([]byte, 0, len(body)+96), "%s:%d:%x %d\n", ev.Type, ev.SentAt.Unix(), sum[:8], len(body))
		rec = append(rec, body...)
		done := make(chan error, 1)
		queue <- entry{rec: rec, done: done}
		if err := <-done; err != nil {
			http.Error(w, "store", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"ok":true}` + "\n"))
		if fwd != nil {
			fwd <- body
		}
	})
	srv := &http.Server{
		Addr:              addr,
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       90 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          log.New(io.Discard, "", 0),
	}
	if err := srv.ListenAndServe(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

const ceilingLogSize = 64 << 20

// preallocate writes size bytes of zeros to f and syncs it.
func preallocate(f *os.File, size int64) error {
	zeros := make([]byte, 1<<20)
	for off := int64(0); off < size; off += int64(len(zeros)) {
		if _, err := f.WriteAt(zeros, off); err != nil {
			return err
		}
	}
	return f.Sync()
}
