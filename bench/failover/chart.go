package main

// The failover times as a picture: one row per setting and signal, each
// failover a dot on a logarithmic time axis, the median and the maximum
// marked.

import (
	"fmt"
	"html"
	"io"
	"math"
	"strings"
	"time"
)

// chartRow is one row of the failover table: its label and its
// failover times, sorted.
type chartRow struct {
	label string
	times []time.Duration
}

// The chart's geometry, in pixels.
const (
	chartWidth = 900
	chartLeft  = 170 // room for the row labels
	chartRight = 30
	chartTop   = 50
	chartRowH  = 34
	chartAxis  = 44
)

// writeChart draws rows as an SVG titled title.
func writeChart(w io.Writer, title string, rows []chartRow) error {
	lo, hi := 10*time.Millisecond, 100*time.Millisecond // the axis spans whole decades around every time
	for _, r := range rows {
		for _, t := range r.times {
			for t < lo && lo > time.Millisecond {
				lo /= 10
			}
			for t > hi {
				hi *= 10
			}
		}
	}
	plot := float64(chartWidth - chartLeft - chartRight)
	x := func(d time.Duration) float64 {
		d = max(d, lo)
		return chartLeft + plot*math.Log10(float64(d)/float64(lo))/math.Log10(float64(hi)/float64(lo))
	}
	height := chartTop + len(rows)*chartRowH + chartAxis
	b := &strings.Builder{}
	fmt.Fprintf(b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n",
		chartWidth, height, chartWidth, height)
	fmt.Fprintf(b, "<title>%s</title>\n", html.EscapeString(title))
	fmt.Fprintf(b, `<rect width="%d" height="%d" fill="#ffffff"/>`+"\n", chartWidth, height)
	fmt.Fprintf(b, `<text x="10" y="20" font-size="14" font-weight="bold">%s</text>`+"\n", html.EscapeString(title))
	fmt.Fprintf(b, `<text x="10" y="38">each dot one failover; ▮ the median, ▲ the slowest; a logarithmic axis</text>`+"\n")
	axisY := float64(chartTop + len(rows)*chartRowH)
	// Decade and half-decade grid lines.
	for d := lo; d <= hi; d *= 10 {
		for _, k := range []time.Duration{1, 2, 5} {
			t := d * k
			if t > hi {
				break
			}
			fmt.Fprintf(b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%.1f" stroke="#dddddd"/>`+"\n", x(t), chartTop, x(t), axisY)
			fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="middle">%v</text>`+"\n", x(t), axisY+18, t)
		}
	}
	for i, r := range rows {
		y := float64(chartTop+i*chartRowH) + chartRowH/2
		fmt.Fprintf(b, `<text x="10" y="%.1f" dominant-baseline="middle">%s</text>`+"\n", y, html.EscapeString(r.label))
		fmt.Fprintf(b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#eeeeee"/>`+"\n", chartLeft, y, chartWidth-chartRight, y)
		if len(r.times) == 0 {
			continue
		}
		for j, t := range r.times {
			jitter := float64(j%5-2) * 3 // spread equal times apart
			fmt.Fprintf(b, `<circle cx="%.1f" cy="%.1f" r="3.5" fill="#4e79a7" fill-opacity="0.6"><title>%v</title></circle>`+"\n", x(t), y+jitter, ms(t))
		}
		p50, top := quantile(r.times, 0.5), r.times[len(r.times)-1]
		fmt.Fprintf(b, `<rect x="%.1f" y="%.1f" width="4" height="22" fill="#e15759"><title>median %v</title></rect>`+"\n", x(p50)-2, y-11, ms(p50))
		fmt.Fprintf(b, `<path d="M %.1f %.1f l -5 9 l 10 0 z" fill="#000000"><title>slowest %v</title></path>`+"\n", x(top), y+5, ms(top))
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" font-size="11">median %v</text>`+"\n", min(x(top)+8, float64(chartWidth-chartRight)-80), y-8, ms(p50))
	}
	fmt.Fprintf(b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#000000"/>`+"\n", chartLeft, axisY, chartWidth-chartRight, axisY)
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}
