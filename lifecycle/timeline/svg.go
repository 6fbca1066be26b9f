package timeline

import (
	"bufio"
	"encoding/xml"
	"fmt"
	"io"
	"strings"
	"time"
)

// The picture's geometry, in SVG user units (pixels, as a browser shows
// it unscaled).
const (
	width     = 1000.0
	labelW    = 250.0                // the providers' names
	plotW     = width - labelW - 150 // room to the right for the bar's text
	rowH      = 22.0
	barH      = 14.0
	headH     = 46.0 // a section's heading and axis
	groupH    = 18.0 // a depth's heading
	legendH   = 40.0
	tickCount = 4
)

// style colours bars by result; the critical path is outlined, a late
// result hatched.
const style = `
text { font: 12px ui-monospace, SFMono-Regular, Menlo, monospace; fill: #222; }
.title { font-size: 15px; font-weight: bold; }
.section { font-size: 13px; font-weight: bold; }
.group, .axis, .note { fill: #666; }
.grid { stroke: #ddd; }
.bar { stroke: none; }
.result-ok { fill: #4c9a5f; }
.result-skipped { fill: #b8b8b8; }
.result-error, .result-panic { fill: #d0463b; }
.result-timeout { fill: #e8912d; }
.result-abandoned { fill: #8e6bbf; }
.critical { stroke: #111; stroke-width: 2; }
.late { fill-opacity: 0.55; stroke-dasharray: 4 2; stroke: #111; stroke-width: 1; }
`

// WriteSVG draws the timeline as an SVG document that a browser shows as
// it is: a section for the start and one for the stop, a bar per
// provider from its begin to its end, grouped by dependency depth (the
// order in which the phase runs them), coloured by result, the critical
// path outlined, and late results dashed. Each bar's <rect> carries its
// provider (data-provider), its offset from the section's begin and its
// duration in microseconds (data-began-us, data-duration-us), its result
// and whether it is critical, so that a test or a script can read the
// picture back; its <title> is the bar's tooltip.
func (t Timeline) WriteSVG(w io.Writer) error {
	height := 40 + t.Start.height() + t.Stop.height() + legendH
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, `<svg xmlns="http://www.w3.org/2000/svg" width="%g" height="%g" viewBox="0 0 %g %g">`+"\n", width, height, width, height)
	fmt.Fprintf(bw, "<title>Gleitzeit: the last start and stop</title>\n<style>%s</style>\n", style)
	fmt.Fprintf(bw, `<rect width="100%%" height="100%%" fill="#fff"/>`+"\n")
	fmt.Fprintf(bw, `<text class="title" x="8" y="22">The last start and stop, a bar per provider</text>`+"\n")
	y := 40.0
	y = t.Start.draw(bw, y)
	y = t.Stop.draw(bw, y)
	legend(bw, y)
	bw.WriteString("</svg>\n")
	return bw.Flush()
}

// height is how tall the section is drawn.
func (s Section) height() float64 {
	h := headH + float64(len(s.Bars)+len(s.Unplaced))*rowH + 10
	return h + float64(s.groups())*groupH
}

// groups counts the depths among the bars, each of which has a heading.
func (s Section) groups() int {
	n := 0
	for i, b := range s.Bars {
		if i == 0 || b.Depth != s.Bars[i-1].Depth {
			n++
		}
	}
	if len(s.Unplaced) > 0 {
		n++
	}
	return n
}

func (s Section) draw(w *bufio.Writer, y float64) float64 {
	name := "Start"
	order := "one at a time, dependencies first"
	if s.Phase == PhaseStop {
		name = "Stop"
		order = "concurrently, each once its dependents have ended"
	}
	fmt.Fprintf(w, `<g class="section-%s" data-phase="%s" data-took-us="%d">`+"\n", s.Phase, s.Phase, s.Took.Microseconds())
	if len(s.Bars)+len(s.Unplaced) == 0 {
		fmt.Fprintf(w, `<text class="section" x="8" y="%g">%s: none yet</text>`+"\n", y+16, name)
		fmt.Fprintf(w, "</g>\n")
		return y + s.height()
	}
	if s.Joined > 0 {
		order += fmt.Sprintf(" (%d more registered while running, in the stop only)", s.Joined)
	}
	fmt.Fprintf(w, `<text class="section" x="8" y="%g">%s: %d providers in %s, %s</text>`+"\n",
		y+16, name, len(s.Bars)+len(s.Unplaced), human(s.Took), order)
	// The axis: ticks from the section's begin to its end.
	top, bottom := y+headH-6, y+s.height()-10
	for i := 0; i <= tickCount; i++ {
		x := labelW + plotW*float64(i)/tickCount
		fmt.Fprintf(w, `<line class="grid" x1="%.2f" y1="%g" x2="%.2f" y2="%g"/>`+"\n", x, top, x, bottom)
		fmt.Fprintf(w, `<text class="axis" x="%.2f" y="%g" text-anchor="middle">%s</text>`+"\n",
			x, top-4, human(s.Took*time.Duration(i)/tickCount))
	}
	y += headH
	for i, b := range s.Bars {
		if i == 0 || b.Depth != s.Bars[i-1].Depth {
			fmt.Fprintf(w, `<text class="group" x="8" y="%g">depth %d%s</text>`+"\n", y+13, b.Depth, depthNote(b.Depth))
			y += groupH
		}
		s.bar(w, b, y)
		y += rowH
	}
	if len(s.Unplaced) > 0 {
		fmt.Fprintf(w, `<text class="group" x="8" y="%g">never began</text>`+"\n", y+13)
		y += groupH
		for _, b := range s.Unplaced {
			fmt.Fprintf(w, `<text class="note" x="16" y="%g" data-provider="%s" data-result="%s">%s: %s</text>`+"\n",
				y+15, esc(b.ID), b.Result, esc(clip(b.ID, 60)), esc(b.summary()))
			y += rowH
		}
	}
	fmt.Fprintf(w, "</g>\n")
	return y + 10
}

// bar draws one bar at row y.
func (s Section) bar(w *bufio.Writer, b Bar, y float64) {
	took := s.Took
	if took <= 0 {
		took = time.Microsecond
	}
	offset := b.Began.Sub(s.Began)
	x := labelW + plotW*float64(offset)/float64(took)
	bw := max(plotW*float64(b.Duration)/float64(took), 1.5) // an instant still shows
	class := "bar result-" + b.Result
	if b.Critical {
		class += " critical"
	}
	if b.Late {
		class += " late"
	}
	fmt.Fprintf(w, `<text x="16" y="%g">%s</text>`+"\n", y+barH-2, esc(clip(b.ID, 30)))
	fmt.Fprintf(w, `<rect class="%s" x="%.2f" y="%g" width="%.2f" height="%g" data-provider="%s" data-result="%s" data-began-us="%d" data-duration-us="%d" data-critical="%t" data-late="%t"><title>%s</title></rect>`+"\n",
		class, x, y+2, bw, barH, esc(b.ID), b.Result, offset.Microseconds(), b.Duration.Microseconds(), b.Critical, b.Late,
		esc(b.ID+": "+b.summary()))
	fmt.Fprintf(w, `<text class="note" x="%.2f" y="%g">%s</text>`+"\n", x+bw+4, y+barH-2, esc(clip(b.label(), 40)))
}

// summary says what became of the bar, for its tooltip.
func (b Bar) summary() string {
	s := b.Result + " after " + human(b.Duration)
	if b.Reason != "" {
		s = b.Result + ": " + b.Reason
	}
	if b.Late {
		s += ", late: returned after the registry stopped waiting"
	}
	if b.Critical {
		s += ", on the critical path"
	}
	if b.Err != "" {
		s += "\n" + b.Err
	}
	return s
}

// label is the short text beside the bar.
func (b Bar) label() string {
	s := human(b.Duration)
	if b.Result != "ok" {
		s += " " + b.Result
	}
	if b.Late {
		s += " (late)"
	}
	return s
}

func depthNote(d int) string {
	if d == 0 {
		return ": depends on nothing"
	}
	return ""
}

func legend(w *bufio.Writer, y float64) {
	x := 8.0
	for _, r := range []string{"ok", "skipped", "error", "panic", "timeout", "abandoned"} {
		fmt.Fprintf(w, `<rect class="result-%s" x="%g" y="%g" width="12" height="12"/><text x="%g" y="%g">%s</text>`+"\n", r, x, y+6, x+16, y+16, r)
		x += 24 + float64(len(r))*7.5
	}
	fmt.Fprintf(w, `<rect class="result-ok critical" x="%g" y="%g" width="12" height="12"/><text x="%g" y="%g">critical path</text>`+"\n", x, y+6, x+16, y+16)
	x += 130
	fmt.Fprintf(w, `<rect class="result-ok late" x="%g" y="%g" width="12" height="12"/><text x="%g" y="%g">late result</text>`+"\n", x, y+6, x+16, y+16)
}

// human writes a duration the way a person reads a stop: 3 significant
// figures.
func human(d time.Duration) string {
	switch {
	case d >= time.Second:
		return fmt.Sprintf("%.3gs", d.Seconds())
	case d >= time.Millisecond:
		return fmt.Sprintf("%.3gms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%.3gµs", float64(d)/float64(time.Microsecond))
}

func clip(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

// esc escapes text for XML character data and attribute values.
func esc(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}
