package admin

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/crmhook/crmhook"
	"github.com/crmhook/crmhook/store/console"
)

const (
	// pageSize is how many events or dead letters one page lists.
	pageSize = 50
	// eventScan bounds the candidate events one page of a filtered listing
	// examines (see console.Reader.EventPage): a filter that matches rarely
	// ends the page early, with "Older →" going on from where it stopped,
	// rather than reading the whole store. 2,000 candidates that each need
	// their event read cost some 20 ms on a million events (BENCHMARKS.md).
	eventScan = 2000
	// recentGaps is how many gaps the overview shows.
	recentGaps = 5
)

// --- Overview ---

type overviewData struct {
	Chart         chart
	Stats         crmhook.Stats
	Queues        []queueRow
	Subscriptions []crmhook.SubscriptionState
	Gaps          []crmhook.Gap
	HasControl    bool
}

type queueRow struct {
	console.Queue
	Configured bool
}

func (u *ui) overview(w http.ResponseWriter, r *http.Request, s *session) {
	ctx := r.Context()
	now := u.m.Now()
	var d overviewData
	var err error
	if d.Stats, err = u.m.Store.Stats(ctx); err != nil {
		u.fail(w, r, s, err)
		return
	}
	if u.reader != nil {
		ms, err := u.reader.Activity(ctx, now.Add(-59*time.Minute), 60)
		if err != nil {
			u.fail(w, r, s, err)
			return
		}
		d.Chart = buildChart(ms, now)
		qs, err := u.reader.Queues(ctx)
		if err != nil {
			u.fail(w, r, s, err)
			return
		}
		d.Queues = u.queueRows(qs)
	}
	if u.m.Control != nil {
		d.HasControl = true
		if d.Subscriptions, err = u.m.Control.ListSubscriptionStates(ctx); err != nil {
			u.fail(w, r, s, err)
			return
		}
		if d.Gaps, err = u.m.Control.ListGaps(ctx, "", recentGaps); err != nil {
			u.fail(w, r, s, err)
			return
		}
	}
	u.render(w, s, http.StatusOK, "overview", "Overview", "overview", d)
}

// queueRows lists every configured sink, and every other sink something
// still waits for (one removed from the config), by name.
func (u *ui) queueRows(qs []console.Queue) []queueRow {
	rows := make([]queueRow, 0, len(qs)+len(u.m.Sinks))
	seen := map[string]bool{}
	for _, q := range qs {
		seen[q.Sink] = true
		rows = append(rows, queueRow{Queue: q, Configured: slices.Contains(u.m.Sinks, q.Sink)})
	}
	for _, sink := range u.m.Sinks {
		if !seen[sink] {
			rows = append(rows, queueRow{Queue: console.Queue{Sink: sink}, Configured: true})
		}
	}
	slices.SortFunc(rows, func(a, b queueRow) int { return strings.Compare(a.Sink, b.Sink) })
	return rows
}

// --- Events ---

type eventsData struct {
	Q, Source, Type, State, Since, Until string
	States                               []crmhook.DeliveryState
	Rows                                 []console.Row
	Filtered, Paged                      bool
	More, Bounded                        bool
	NextURL, FirstURL                    string
	Error                                string
	Searched                             string // a search that found nothing
	Scan                                 int
}

func (u *ui) events(w http.ResponseWriter, r *http.Request, s *session) {
	q := r.URL.Query()
	d := eventsData{
		Q: strings.TrimSpace(q.Get("q")), Source: strings.TrimSpace(q.Get("source")), Type: strings.TrimSpace(q.Get("type")),
		State: q.Get("state"), Since: strings.TrimSpace(q.Get("since")), Until: strings.TrimSpace(q.Get("until")),
		States: []crmhook.DeliveryState{crmhook.StatePending, crmhook.StateDelivered, crmhook.StateDead},
		Scan:   eventScan,
	}
	if d.Q != "" {
		u.search(w, r, s, d)
		return
	}
	f := crmhook.EventFilter{Source: d.Source, Type: d.Type, State: crmhook.DeliveryState(d.State), Limit: pageSize}
	bad := func(msg string) {
		d.Error = msg
		u.render(w, s, http.StatusBadRequest, "events", "Events", "events", d)
	}
	now := u.m.Now()
	var err error
	if err := validState(f.State); err != nil {
		bad(err.Error())
		return
	}
	if d.Since != "" {
		if f.Since, err = ParseWhen(d.Since, now); err != nil {
			bad("Since: " + err.Error())
			return
		}
	}
	if d.Until != "" {
		if f.Until, err = ParseWhen(d.Until, now); err != nil {
			bad("Until: " + err.Error())
			return
		}
	}
	c, err := decodeCursor(q.Get("before"))
	if err != nil {
		bad(err.Error())
		return
	}
	f.BeforeReceivedAt, f.BeforeID = c.ReceivedAt, c.ID
	d.Paged = !c.IsZero()
	d.Filtered = d.Source != "" || d.Type != "" || d.State != "" || d.Since != "" || d.Until != ""

	page, err := u.eventPage(r, f)
	if err != nil {
		u.fail(w, r, s, err)
		return
	}
	d.Rows, d.More, d.Bounded = page.Rows, page.More, page.Bounded
	nq := url.Values{}
	for _, k := range []string{"source", "type", "state", "since", "until"} {
		if v := strings.TrimSpace(q.Get(k)); v != "" {
			nq.Set(k, v)
		}
	}
	d.FirstURL = "/ui/events?" + nq.Encode()
	if page.More {
		// A relative time ("2h") is pinned to now, or it would slide
		// under the cursor from one page to the next.
		if d.Since != "" {
			nq.Set("since", f.Since.UTC().Format(time.RFC3339Nano))
		}
		if d.Until != "" {
			nq.Set("until", f.Until.UTC().Format(time.RFC3339Nano))
		}
		nq.Set("before", encodeCursor(page.Next))
		d.NextURL = "/ui/events?" + nq.Encode()
	}
	u.render(w, s, http.StatusOK, "events", "Events", "events", d)
}

// eventPage reads a page through the store's console reads, or, for a
// store without them, through ListEvents (unbounded, without deliveries).
func (u *ui) eventPage(r *http.Request, f crmhook.EventFilter) (console.Page, error) {
	if u.reader != nil {
		return u.reader.EventPage(r.Context(), f, eventScan)
	}
	lf := f
	lf.Limit = f.Limit + 1
	evs, err := u.m.Store.ListEvents(r.Context(), lf)
	if err != nil {
		return console.Page{}, err
	}
	var p console.Page
	for i, ev := range evs {
		if i == f.Limit {
			p.More, p.Next = true, console.CursorOf(evs[i-1])
			break
		}
		ev.Payload = nil
		p.Rows = append(p.Rows, console.Row{Event: ev})
	}
	return p, nil
}

// search finds one event by its id or its dedupe key: one match opens it,
// several are listed.
func (u *ui) search(w http.ResponseWriter, r *http.Request, s *session, d eventsData) {
	if len(d.Q) > 1000 {
		d.Error = "That is too long to be an event id or a dedupe key."
		u.render(w, s, http.StatusBadRequest, "events", "Events", "events", d)
		return
	}
	_, _, err := u.m.Store.GetEvent(r.Context(), d.Q)
	switch {
	case err == nil:
		http.Redirect(w, r, "/ui/events/"+url.PathEscape(d.Q), http.StatusSeeOther)
		return
	case !errors.Is(err, crmhook.ErrNotFound):
		u.fail(w, r, s, err)
		return
	}
	page, err := u.eventPage(r, crmhook.EventFilter{DedupeKey: d.Q, Limit: pageSize})
	if err != nil {
		u.fail(w, r, s, err)
		return
	}
	if len(page.Rows) == 1 {
		http.Redirect(w, r, "/ui/events/"+url.PathEscape(page.Rows[0].Event.ID), http.StatusSeeOther)
		return
	}
	d.Rows, d.More, d.Filtered = page.Rows, page.More, true
	if len(page.Rows) == 0 {
		d.Searched = d.Q
	}
	u.render(w, s, http.StatusOK, "events", "Events", "events", d)
}

// --- Event ---

type eventData struct {
	Event        crmhook.Event
	Deliveries   []deliveryRow
	Payload      string
	PayloadBytes int
	PayloadCut   bool
	Replayable   int // deliveries delivered or dead to configured sinks
}

type deliveryRow struct {
	crmhook.Delivery
	Configured bool // the sink is in the config (a replay needs it)
	Replayable bool // delivered or dead to a configured sink
}

func (u *ui) event(w http.ResponseWriter, r *http.Request, s *session) {
	ev, ds, err := u.m.Store.GetEvent(r.Context(), r.PathValue("id"))
	if err != nil {
		u.fail(w, r, s, err)
		return
	}
	d := eventData{Event: ev, PayloadBytes: len(ev.Payload)}
	d.Payload, d.PayloadCut = prettyPayload(ev.Payload)
	for _, dl := range ds {
		row := deliveryRow{Delivery: dl, Configured: slices.Contains(u.m.Sinks, dl.Sink)}
		row.Replayable = row.Configured && dl.State != crmhook.StatePending
		if row.Replayable {
			d.Replayable++
		}
		d.Deliveries = append(d.Deliveries, row)
	}
	u.render(w, s, http.StatusOK, "event", ev.Type, "events", d)
}

// replayEvent replays one event to one sink, or to every sink (no sink in
// the form): the deliveries delivered or dead; pending ones are left alone.
func (u *ui) replayEvent(w http.ResponseWriter, r *http.Request, s *session) {
	id := r.PathValue("id")
	sink := r.PostForm.Get("sink")
	back := "/ui/events/" + url.PathEscape(id)
	n, err := u.m.replay(r.Context(), u.log, crmhook.DeliveryFilter{EventID: id, Sink: sink}, false)
	if err != nil {
		u.actionFailed(w, r, s, back, err)
		return
	}
	to := "every sink"
	if sink != "" {
		to = sink
	}
	msg := fmt.Sprintf("Replayed %s to %s: due now.", plural(int64(n), "delivery"), to)
	if n == 0 {
		msg = "Nothing to replay: a pending delivery is already on its way."
	}
	u.redirectWith(w, r, s, back, flash{OK: n > 0, Text: msg})
}

// actionFailed ends an action that could not be done: a refusal or a
// conflict goes back with its reason, a store failure is a 503 page.
func (u *ui) actionFailed(w http.ResponseWriter, r *http.Request, s *session, back string, err error) {
	var re *requestError
	switch {
	case errors.As(err, &re):
		u.redirectWith(w, r, s, back, flash{Text: re.msg})
	case errors.Is(err, crmhook.ErrAlreadyReleased):
		u.redirectWith(w, r, s, back, flash{Text: "That rejection was already released."})
	case errors.Is(err, crmhook.ErrNotFound):
		u.redirectWith(w, r, s, back, flash{Text: "Not found: it may have been removed meanwhile."})
	default:
		u.fail(w, r, s, err)
	}
}

// --- Dead letters ---

type deadData struct {
	Tabs       []deadTab
	Sink       string
	Configured bool
	Dead       int64
	Letters    []console.DeadLetter
	Paged      bool
	NextURL    string
}

type deadTab struct {
	Sink   string
	Dead   int64
	Active bool
}

func (u *ui) deadLetters(w http.ResponseWriter, r *http.Request, s *session) {
	if u.reader == nil {
		u.message(w, r, s, http.StatusNotImplemented, "Dead letters", "This store does not list dead letters by sink; use crmhook events list --status dead.")
		return
	}
	ctx := r.Context()
	q := r.URL.Query()
	qs, err := u.reader.Queues(ctx)
	if err != nil {
		u.fail(w, r, s, err)
		return
	}
	d := deadData{Sink: q.Get("sink")}
	for _, row := range u.queueRows(qs) {
		if row.Dead > 0 || row.Configured {
			d.Tabs = append(d.Tabs, deadTab{Sink: row.Sink, Dead: row.Dead})
		}
	}
	if d.Sink == "" {
		// The first sink with dead letters, or the first sink.
		for _, t := range d.Tabs {
			if t.Dead > 0 {
				d.Sink = t.Sink
				break
			}
		}
		if d.Sink == "" && len(d.Tabs) > 0 {
			d.Sink = d.Tabs[0].Sink
		}
	}
	for i := range d.Tabs {
		if d.Tabs[i].Sink == d.Sink {
			d.Tabs[i].Active = true
			d.Dead = d.Tabs[i].Dead
		}
	}
	d.Configured = slices.Contains(u.m.Sinks, d.Sink)
	if d.Sink != "" {
		after, err := decodeCursor(q.Get("after"))
		if err != nil {
			u.message(w, r, s, http.StatusBadRequest, "Bad request", err.Error())
			return
		}
		d.Paged = !after.IsZero()
		if d.Letters, err = u.reader.DeadLetters(ctx, d.Sink, after, pageSize+1); err != nil {
			u.fail(w, r, s, err)
			return
		}
		if len(d.Letters) > pageSize {
			d.Letters = d.Letters[:pageSize]
			last := d.Letters[pageSize-1].Event
			d.NextURL = "/ui/dead?" + url.Values{"sink": {d.Sink}, "after": {encodeCursor(console.CursorOf(last))}}.Encode()
		}
	}
	u.render(w, s, http.StatusOK, "dead", "Dead letters", "dead", d)
}

// replayDead replays the selected dead letters of a sink (the checked
// boxes, "delivery" in the form), or all of them ("all").
func (u *ui) replayDead(w http.ResponseWriter, r *http.Request, s *session) {
	sink := r.PostForm.Get("sink")
	back := "/ui/dead?" + url.Values{"sink": {sink}}.Encode()
	f := crmhook.DeliveryFilter{State: crmhook.StateDead, Sink: sink}
	if sink == "" {
		u.redirectWith(w, r, s, "/ui/dead", flash{Text: "Choose a sink first."})
		return
	}
	all := r.PostForm.Get("all") == "1"
	if !all {
		for _, v := range r.PostForm["delivery"] {
			id, err := strconv.ParseInt(v, 10, 64)
			if err != nil || id <= 0 {
				u.redirectWith(w, r, s, back, flash{Text: fmt.Sprintf("%q is not a delivery id.", v)})
				return
			}
			f.IDs = append(f.IDs, id)
		}
		if len(f.IDs) == 0 {
			u.redirectWith(w, r, s, back, flash{Text: "Nothing selected: tick the dead letters to replay."})
			return
		}
	}
	n, err := u.m.replay(r.Context(), u.log, f, false)
	if err != nil {
		u.actionFailed(w, r, s, back, err)
		return
	}
	msg := fmt.Sprintf("Replayed %s to %s: due now.", plural(int64(n), "dead letter"), sink)
	if n == 0 {
		msg = "Nothing replayed: those were replayed already."
	}
	u.redirectWith(w, r, s, back, flash{OK: n > 0, Text: msg})
}

// --- Rejections ---

type rejectionsData struct {
	Rows    []crmhook.Rejection
	Waiting int64
}

const rejectionsShown = 100

func (u *ui) rejections(w http.ResponseWriter, r *http.Request, s *session) {
	ctx := r.Context()
	no := false
	rs, err := u.m.Store.ListRejections(ctx, crmhook.RejectionFilter{Released: &no, Limit: rejectionsShown})
	if err != nil {
		u.fail(w, r, s, err)
		return
	}
	st, err := u.m.Store.Stats(ctx)
	if err != nil {
		u.fail(w, r, s, err)
		return
	}
	for i := range rs {
		rs[i].Event.Payload = nil // never shown here
	}
	u.render(w, s, http.StatusOK, "rejections", "Rejections", "rejections", rejectionsData{Rows: rs, Waiting: st.Rejections})
}

func (u *ui) releaseRejection(w http.ResponseWriter, r *http.Request, s *session) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		u.redirectWith(w, r, s, "/ui/rejections", flash{Text: "That is not a rejection id."})
		return
	}
	res, err := u.m.release(r.Context(), u.log, id)
	if err != nil {
		u.actionFailed(w, r, s, "/ui/rejections", err)
		return
	}
	msg := fmt.Sprintf("Released rejection %d: event %s is stored and on its way to its sinks.", id, res.EventID)
	if res.Duplicate {
		msg = fmt.Sprintf("Released rejection %d: the event was already stored (event %s), so nothing was added.", id, res.EventID)
	}
	u.redirectWith(w, r, s, "/ui/rejections", flash{OK: true, Text: msg})
}

// --- Subscriptions ---

type subscriptionsData struct {
	HasControl bool
	Rows       []subscriptionRow
	Gaps       []crmhook.Gap
}

type subscriptionRow struct {
	crmhook.SubscriptionState
	LastEventAt time.Time
}

func (u *ui) subscriptions(w http.ResponseWriter, r *http.Request, s *session) {
	ctx := r.Context()
	var d subscriptionsData
	if u.m.Control != nil {
		d.HasControl = true
		states, err := u.m.Control.ListSubscriptionStates(ctx)
		if err != nil {
			u.fail(w, r, s, err)
			return
		}
		last := map[string]time.Time{}
		for _, st := range states {
			if _, ok := last[st.Source]; !ok {
				if last[st.Source], err = u.m.Control.LastEventAt(ctx, st.Source); err != nil {
					u.fail(w, r, s, err)
					return
				}
			}
			d.Rows = append(d.Rows, subscriptionRow{SubscriptionState: st, LastEventAt: last[st.Source]})
		}
		if d.Gaps, err = u.m.Control.ListGaps(ctx, "", 100); err != nil {
			u.fail(w, r, s, err)
			return
		}
	}
	u.render(w, s, http.StatusOK, "subscriptions", "Subscriptions", "subscriptions", d)
}
