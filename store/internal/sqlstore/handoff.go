package sqlstore

import (
	"context"

	"github.com/crmhook/crmhook"
)

// Handoff passes writes from callers to the writer goroutines that commit
// them in groups. Its channel is unbuffered: a write is queued while its
// caller blocks sending it, so a writer never takes a write whose caller
// has already gone, and nothing is stranded in a buffer at Close.
type Handoff[W any] struct {
	writes  chan W
	closing <-chan struct{}
}

// NewHandoff returns a handoff that stops taking writes once closing is
// closed.
func NewHandoff[W any](closing <-chan struct{}) *Handoff[W] {
	return &Handoff[W]{writes: make(chan W), closing: closing}
}

// Submit hands w to a writer and waits for the answer the writer sends on
// reply. Its error is crmhook.ErrClosed when the handoff is closing, or
// ctx's error when ctx ends first; the caller labels it. If ctx ends while
// a writer has w, w may still commit: at least once, a provider's retry
// then meets the dedupe key, and a claim nobody received runs out its lease.
func Submit[W, R any](ctx context.Context, h *Handoff[W], w W, reply <-chan R) (R, error) {
	var zero R
	if err := ctx.Err(); err != nil {
		return zero, err
	}
	if err := h.send(ctx, w); err != nil {
		return zero, err
	}
	select {
	case r := <-reply:
		return r, nil
	case <-ctx.Done():
		return zero, ctx.Err()
	}
}

// send blocks until a writer takes w. (Tests count the callers blocked
// here to know how many writes are queued.)
func (h *Handoff[W]) send(ctx context.Context, w W) error {
	select {
	case h.writes <- w:
		return nil
	case <-h.closing:
		return crmhook.ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Run is a writer goroutine's loop: it calls commit with each write it
// takes, one at a time, until the handoff is closing; then it calls refuse
// with every write still queued, and returns.
func (h *Handoff[W]) Run(commit func(first W), refuse func(W)) {
	for {
		select {
		case first := <-h.writes:
			commit(first)
		case <-h.closing:
			for {
				select {
				case w := <-h.writes:
					refuse(w)
				default:
					return
				}
			}
		}
	}
}

// Drain appends the writes already queued to group, never waiting for
// more, until group holds max.
func (h *Handoff[W]) Drain(group []W, max int) []W {
	for len(group) < max {
		select {
		case w := <-h.writes:
			group = append(group, w)
		default:
			return group
		}
	}
	return group
}
