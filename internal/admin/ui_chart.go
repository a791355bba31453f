package admin

import (
	"fmt"
	"strings"
	"time"

	"github.com/crmhook/crmhook/store/console"
)

// The overview's chart: the last hour minute by minute, drawn on the server
// as inline SVG (no script, no image request): events received as an area,
// deliveries delivered as a line, failed attempts as bars. Colours come
// from the stylesheet's classes.

const (
	chartW, chartH   = 760.0, 200.0
	chartLeft        = 44.0 // room for the y labels
	chartRight       = 8.0
	chartTop         = 12.0
	chartBottom      = 26.0 // room for the x labels
	chartPlotW       = chartW - chartLeft - chartRight
	chartPlotH       = chartH - chartTop - chartBottom
	chartMinTopValue = 4
)

type chart struct {
	W, H                      float64
	Area, Received, Delivered string // SVG path data and polyline points
	Failed                    []chartRect
	Columns                   []chartColumn // one per minute, for the tooltips
	YTicks, XTicks            []chartTick
	Left, Right, Top, Bottom  float64
	TotalReceived, TotalDeliv int64
	TotalFailed, Peak         int64
	PeakReceived              int64
	Empty                     bool
	From, To                  time.Time
	// The minute under way is drawn as dots: a line to it would dive,
	// since its count is not complete.
	Partial                     bool
	ReceivedLast, DeliveredLast chartPoint
}

type chartPoint struct{ X, Y string }

type chartRect struct{ X, Y, W, H string }

type chartColumn struct {
	X, W  string
	Title string
}

type chartTick struct {
	X, Y   string
	Label  string
	Anchor string // SVG text-anchor
}

func f1(v float64) string { return fmt.Sprintf("%.1f", v) }

// niceMax rounds the largest value up to a scale with round ticks.
func niceMax(v int64) int64 {
	if v < chartMinTopValue {
		return chartMinTopValue
	}
	step := int64(1)
	for {
		for _, m := range []int64{1, 2, 5} {
			if top := step * m * 4; top >= v {
				return top
			}
		}
		step *= 10
	}
}

func buildChart(ms []console.Minute, now time.Time) chart {
	c := chart{W: chartW, H: chartH, Left: chartLeft, Right: chartW - chartRight, Top: chartTop, Bottom: chartH - chartBottom}
	if len(ms) == 0 {
		c.Empty = true
		return c
	}
	var peak int64
	for _, m := range ms {
		peak = max(peak, m.Received, m.Delivered, m.Failed)
		c.PeakReceived = max(c.PeakReceived, m.Received)
		c.TotalReceived += m.Received
		c.TotalDeliv += m.Delivered
		c.TotalFailed += m.Failed
	}
	last := len(ms) - 1
	c.Partial = ms[last].Start.Add(time.Minute).After(now)
	lines := len(ms) // the minutes the lines go through
	if c.Partial {
		lines--
	}
	c.Peak = peak
	c.Empty = peak == 0
	top := niceMax(peak)
	n := float64(len(ms))
	colW := chartPlotW / n
	x := func(i int) float64 { return chartLeft + colW*(float64(i)+0.5) }
	y := func(v int64) float64 { return chartTop + chartPlotH*(1-float64(v)/float64(top)) }
	base := chartTop + chartPlotH

	var area, rcv, dlv strings.Builder
	if lines > 0 {
		fmt.Fprintf(&area, "M%s,%s", f1(x(0)), f1(base))
	}
	for i, m := range ms {
		if i < lines {
			fmt.Fprintf(&area, " L%s,%s", f1(x(i)), f1(y(m.Received)))
			fmt.Fprintf(&rcv, "%s,%s ", f1(x(i)), f1(y(m.Received)))
			fmt.Fprintf(&dlv, "%s,%s ", f1(x(i)), f1(y(m.Delivered)))
		}
		if m.Failed > 0 {
			bw := max(colW*0.5, 2)
			c.Failed = append(c.Failed, chartRect{X: f1(x(i) - bw/2), Y: f1(y(m.Failed)), W: f1(bw), H: f1(base - y(m.Failed))})
		}
		when := m.Start.UTC().Format("15:04") + " UTC"
		if c.Partial && i == last {
			when += " (so far)"
		}
		c.Columns = append(c.Columns, chartColumn{
			X: f1(chartLeft + colW*float64(i)), W: f1(colW),
			Title: fmt.Sprintf("%s — %s received, %s delivered, %s failed", when, num(m.Received), num(m.Delivered), num(m.Failed)),
		})
	}
	if lines > 0 {
		fmt.Fprintf(&area, " L%s,%s Z", f1(x(lines-1)), f1(base))
		c.Area, c.Received, c.Delivered = area.String(), strings.TrimSpace(rcv.String()), strings.TrimSpace(dlv.String())
	}
	c.ReceivedLast = chartPoint{f1(x(last)), f1(y(ms[last].Received))}
	c.DeliveredLast = chartPoint{f1(x(last)), f1(y(ms[last].Delivered))}
	for i := 0; i <= 4; i++ {
		v := top * int64(i) / 4
		c.YTicks = append(c.YTicks, chartTick{X: f1(chartLeft - 8), Y: f1(y(v)), Label: num(v), Anchor: "end"})
	}
	c.From, c.To = ms[0].Start, ms[last].Start.Add(time.Minute)
	for _, back := range []int{60, 45, 30, 15, 0} {
		i := len(ms) - back
		label := fmt.Sprintf("−%d min", back)
		if back == 0 {
			i, label = last, "now"
		}
		if i < 0 || i > last {
			continue
		}
		xx, anchor := x(i), "middle"
		if back == 60 {
			xx, anchor = chartLeft, "start"
		}
		if back == 0 {
			xx, anchor = chartW-chartRight, "end"
		}
		c.XTicks = append(c.XTicks, chartTick{X: f1(xx), Y: f1(chartH - 8), Label: label, Anchor: anchor})
	}
	return c
}
