package report

import (
	"fmt"
	"html/template"
	"strings"
	"time"
)

// Charts are inline SVG drawn here, not by a script: the HTML report
// needs no JavaScript and prints as it shows. Their size comes from the
// viewBox alone, so they scale to the page's width and are never cut.

// Geometry of the charts, in viewBox units.
const (
	chartWidth  = 720.0
	chartHeight = 130.0
	plotLeft    = 4.0
	plotRight   = 4.0
	plotTop     = 20.0
	plotBottom  = 20.0
	barGap      = 0.15 // of a day's width
	timelineH   = 60.0
)

// Colours of the charts; print keeps them (print-color-adjust).
const (
	colourBar     = "#4a78b5"
	colourSurge   = "#d9480f"
	colourDenied  = "#a61e4d"
	colourAxis    = "#666"
	colourUp      = "#2b8a3e"
	colourDown    = "#e03131"
	colourUnknown = "#ced4da"
)

var esc = template.HTMLEscapeString

// trafficChart draws a rule's packets per day over the period's days,
// one bar a day, surges in their own colour. Each bar carries its date
// and packets as data attributes and a title for a tooltip.
func trafficChart(rt RuleTraffic, firstDay, lastDay string, barColour string) template.HTML {
	first, err1 := time.Parse(time.DateOnly, firstDay)
	last, err2 := time.Parse(time.DateOnly, lastDay)
	if err1 != nil || err2 != nil || last.Before(first) {
		return ""
	}
	n := int(last.Sub(first)/(24*time.Hour)) + 1
	peak := uint64(1)
	for _, d := range rt.Days {
		peak = max(peak, d.Packets)
	}
	plotW, plotH := chartWidth-plotLeft-plotRight, chartHeight-plotTop-plotBottom
	step := plotW / float64(n)
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart" data-chart="traffic" data-rule="%s" data-days="%d" viewBox="0 0 %g %g" role="img" aria-label="%s" xmlns="http://www.w3.org/2000/svg">`,
		esc(rt.Rule), len(rt.Days), chartWidth, chartHeight, esc("packets per day counted by "+rt.Rule))
	fmt.Fprintf(&b, `<title>%s</title>`, esc("Packets per day counted by "+rt.Rule))
	axes(&b, plotW, plotH, "peak day: "+count(peak)+" packets", firstDay, lastDay)
	for _, d := range rt.Days {
		day, err := time.Parse(time.DateOnly, d.Date)
		if err != nil || d.Packets == 0 {
			continue
		}
		i := float64(day.Sub(first) / (24 * time.Hour))
		h := max(plotH*float64(d.Packets)/float64(peak), 0.5)
		colour, note := barColour, ""
		if d.Surge {
			colour, note = colourSurge, " (surge)"
		}
		fmt.Fprintf(&b, `<rect data-date="%s" data-packets="%d" x="%.2f" y="%.2f" width="%.2f" height="%.2f" fill="%s"><title>%s</title></rect>`,
			d.Date, d.Packets, plotLeft+i*step+step*barGap/2, plotTop+plotH-h, max(step*(1-barGap), 0.4), h, colour,
			esc(fmt.Sprintf("%s: %s packets, %s%s", d.Date, count(d.Packets), bytesText(d.Bytes), note)))
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// axes draws the plot's frame, its scale (the peak, above the plot, and
// a line at its height) and its first and last days.
func axes(b *strings.Builder, plotW, plotH float64, peak, firstDay, lastDay string) {
	bottom := plotTop + plotH
	fmt.Fprintf(b, `<g fill="none" stroke="%s" stroke-width="1"><path d="M%g %gV%gH%g"/>`, colourAxis, plotLeft, plotTop, bottom, plotLeft+plotW)
	fmt.Fprintf(b, `<path d="M%g %gH%g" stroke-dasharray="3 3" stroke-width="0.5"/></g>`, plotLeft, plotTop, plotLeft+plotW)
	fmt.Fprintf(b, `<g font-size="11" fill="%s" font-family="sans-serif">`, colourAxis)
	fmt.Fprintf(b, `<text x="%g" y="%g">%s</text>`, plotLeft+4, plotTop-6, esc(peak))
	fmt.Fprintf(b, `<text x="%g" y="%g">%s</text>`, plotLeft, bottom+16, esc(firstDay))
	fmt.Fprintf(b, `<text x="%g" y="%g" text-anchor="end">%s</text>`, plotLeft+plotW, bottom+16, esc(lastDay))
	b.WriteString(`</g>`)
}

// timelineChart draws a peer's states over the period as one bar: up,
// down and unknown in their colours, each segment with its times.
func timelineChart(p PeerAvailability, from, to time.Time) template.HTML {
	total := to.Sub(from).Seconds()
	if total <= 0 {
		return ""
	}
	plotW := chartWidth - plotLeft - plotRight
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart" data-chart="tunnel" data-peer="%s" viewBox="0 0 %g %g" role="img" aria-label="%s" xmlns="http://www.w3.org/2000/svg">`,
		esc(p.Interface+"/"+p.Peer), chartWidth, timelineH, esc("availability of peer "+p.Peer+" of "+p.Interface))
	fmt.Fprintf(&b, `<title>%s</title>`, esc(fmt.Sprintf("Peer %s of %s: up %s of the period", p.Peer, p.Interface, percent(p.ShareUp))))
	fmt.Fprintf(&b, `<g font-size="11" fill="%s" font-family="sans-serif"><text x="%g" y="12">%s</text>`,
		colourAxis, plotLeft, esc(fmt.Sprintf("%s up, longest outage %s", percent(p.ShareUp), outageLength(p.LongestOutage))))
	fmt.Fprintf(&b, `<text x="%g" y="54">%s</text><text x="%g" y="54" text-anchor="end">%s</text></g>`,
		plotLeft, esc(stamp(from)), plotLeft+plotW, esc(stamp(to)))
	colours := map[string]string{StateUp: colourUp, StateDown: colourDown, StateUnknown: colourUnknown}
	for _, s := range p.Segments {
		x := plotLeft + plotW*s.From.Sub(from).Seconds()/total
		w := max(plotW*s.To.Sub(s.From).Seconds()/total, 0.4)
		fmt.Fprintf(&b, `<rect data-state="%s" data-from="%s" x="%.2f" y="18" width="%.2f" height="20" fill="%s"><title>%s</title></rect>`,
			s.State, s.From.Format(time.RFC3339), x, w, colours[s.State],
			esc(fmt.Sprintf("%s from %s to %s", s.State, stamp(s.From), stamp(s.To))))
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

func outageLength(o *Outage) string {
	if o == nil {
		return "none"
	}
	return duration(o.Seconds)
}
