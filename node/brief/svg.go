package brief

import (
	"fmt"
	"html"
	"html/template"
	"math"
	"strconv"
	"strings"
)

// The brief's charts are inline SVG written here: a line with its shaded
// 95% band, a heat map and bars with interval whiskers, the shapes the
// dashboard's charts.js draws. Coordinates are in CSS pixels of a chart
// as wide as the printable A4 width (182 mm ≈ 688 px), so text sizes in
// the SVG are the sizes on paper. Output depends only on the input:
// numbers are written with a fixed precision.

// svg accumulates one chart.
type svg struct {
	b    strings.Builder
	w, h float64
}

func newSVG(w, h float64, label string) *svg {
	s := &svg{w: w, h: h}
	fmt.Fprintf(&s.b, `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %s %s" role="img" aria-label="%s">`, f1(w), f1(h), html.EscapeString(label))
	fmt.Fprintf(&s.b, `<title>%s</title>`, html.EscapeString(label))
	return s
}

func (s *svg) add(format string, args ...any) { fmt.Fprintf(&s.b, format, args...) }

func (s *svg) text(x, y float64, anchor, class, text string) {
	s.add(`<text x="%s" y="%s" text-anchor="%s" class="%s">%s</text>`, f1(x), f1(y), anchor, class, html.EscapeString(text))
}

func (s *svg) html() template.HTML {
	return template.HTML(s.b.String() + "</svg>") // built from escaped text and numbers only
}

func f1(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }

// niceMax rounds v up to 1, 2 or 5 times a power of ten.
func niceMax(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

// linePoint is one point of a trend chart.
type linePoint struct {
	label     string
	est, raw  *Interval
	uncertain bool // too uncertain to read, or undetermined
}

func (p linePoint) readable() bool { return !p.uncertain && p.est != nil }

// topOf is the scale a set of trends shares: the largest readable upper
// bound, rounded up.
func topOf(series ...[]linePoint) float64 {
	top := 1.0
	for _, pts := range series {
		for _, p := range pts {
			if p.readable() {
				top = math.Max(top, math.Max(p.est.CIHigh, p.est.Value))
				if p.raw != nil {
					top = math.Max(top, p.raw.Value)
				}
			}
		}
	}
	return niceMax(top)
}

// lineChart draws a trend: a shaded band and a line through runs of
// readable points, a dot for each direct measurement, and a hollow "?"
// for a point too uncertain to read (it sets no scale and joins no line,
// so noise never reads as a trend).
func lineChart(pts []linePoint, w, h, top float64, label, empty string, l *locale) template.HTML {
	s := newSVG(w, h, label)
	if len(pts) == 0 {
		s.text(w/2, h/2, "middle", "", empty)
		return s.html()
	}
	ml, mr, mt, mb := 44.0, 12.0, 8.0, 22.0
	iw, ih := w-ml-mr, h-mt-mb
	x := func(i int) float64 {
		if len(pts) == 1 {
			return ml + iw/2
		}
		return ml + float64(i)*iw/float64(len(pts)-1)
	}
	y := func(v float64) float64 { return mt + ih - math.Max(0, math.Min(v, top))/top*ih }
	for k := 0; k <= 4; k++ {
		v := top * float64(k) / 4
		s.add(`<line class="grid" x1="%s" x2="%s" y1="%s" y2="%s"/>`, f1(ml), f1(w-mr), f1(y(v)), f1(y(v)))
		s.text(ml-5, y(v)+3.5, "end", "tick", l.num(v))
	}
	s.add(`<line class="axis" x1="%s" x2="%s" y1="%s" y2="%s"/>`, f1(ml), f1(w-mr), f1(y(0)), f1(y(0)))
	step := 1
	for float64(len(pts))/float64(step)*34 > iw {
		step++
	}
	for i, p := range pts {
		if (len(pts)-1-i)%step == 0 {
			anchor := "middle"
			switch {
			case len(pts) > 1 && i == len(pts)-1:
				anchor = "end"
			case len(pts) > 1 && i == 0:
				anchor = "start"
			}
			s.text(x(i), h-mb+14, anchor, "tick", p.label)
		}
	}
	var runs [][]int
	for i, p := range pts {
		if !p.readable() {
			continue
		}
		if n := len(runs); n > 0 && runs[n-1][len(runs[n-1])-1] == i-1 {
			runs[n-1] = append(runs[n-1], i)
		} else {
			runs = append(runs, []int{i})
		}
	}
	for _, run := range runs {
		var band, line strings.Builder
		for k, i := range run {
			fmt.Fprintf(&band, "%s%s %s", map[bool]string{true: "M", false: "L"}[k == 0], f1(x(i)), f1(y(pts[i].est.CIHigh)))
			fmt.Fprintf(&line, "%s%s %s", map[bool]string{true: "M", false: "L"}[k == 0], f1(x(i)), f1(y(pts[i].est.Value)))
		}
		for k := len(run) - 1; k >= 0; k-- {
			fmt.Fprintf(&band, "L%s %s", f1(x(run[k])), f1(y(pts[run[k]].est.CILow)))
		}
		if len(run) == 1 { // a lone point: an interval bar instead of a band
			i := run[0]
			s.add(`<line class="whisker" x1="%s" x2="%s" y1="%s" y2="%s"/>`, f1(x(i)), f1(x(i)), f1(y(pts[i].est.CILow)), f1(y(pts[i].est.CIHigh)))
			s.add(`<circle class="dot" cx="%s" cy="%s" r="3"/>`, f1(x(i)), f1(y(pts[i].est.Value)))
			continue
		}
		s.add(`<path class="band" d="%sZ"/>`, band.String())
		s.add(`<path class="line" d="%s"/>`, line.String())
	}
	for i, p := range pts {
		switch {
		case p.readable():
			if p.raw != nil {
				s.add(`<circle class="raw" cx="%s" cy="%s" r="2.2"/>`, f1(x(i)), f1(y(p.raw.Value)))
			}
		default:
			cy := y(0)
			if p.est != nil {
				cy = y(p.est.Value)
			}
			s.add(`<g class="uncertain"><circle cx="%s" cy="%s" r="5.5"/>`, f1(x(i)), f1(cy))
			s.text(x(i), cy+3, "middle", "q", "?")
			s.add(`</g>`)
		}
	}
	return s.html()
}

// heatCell is one cell of a heat map; nil est means not published.
type heatCell struct {
	est   *Interval
	faint bool // small or too uncertain: shown, but greyed
}

// heatmap draws rows × cols with each cell's value; darker is more.
func heatmap(rows, cols []string, cell func(r, c int) heatCell, w float64, label string, l *locale) template.HTML {
	ml, mt := 150.0, 86.0
	cw := math.Min(52, (w-ml-4)/float64(len(cols)))
	ch := 17.0
	h := mt + float64(len(rows))*ch + 4
	s := newSVG(w, h, label)
	top := 1.0
	for r := range rows {
		for c := range cols {
			if v := cell(r, c); v.est != nil && !v.faint {
				top = math.Max(top, v.est.Value)
			}
		}
	}
	for c, name := range cols {
		s.add(`<text class="tick" transform="translate(%s,%s) rotate(-45)">%s</text>`, f1(ml+float64(c)*cw+cw/2), f1(mt-5), html.EscapeString(name))
	}
	for r, name := range rows {
		yy := mt + float64(r)*ch
		s.text(ml-5, yy+ch/2+3.5, "end", "tick", name)
		for c := range cols {
			v := cell(r, c)
			xx := ml + float64(c)*cw
			light := 97.0
			if v.est != nil && !v.faint {
				light = 96 - math.Sqrt(math.Max(v.est.Value, 0)/top)*62
			}
			s.add(`<rect x="%s" y="%s" width="%s" height="%s" fill="hsl(210,65%%,%s%%)"/>`, f1(xx), f1(yy), f1(cw-1.5), f1(ch-1.5), f1(light))
			if v.est == nil {
				continue
			}
			class := "cell"
			switch {
			case v.faint:
				class = "cell faint"
			case light < 58:
				class = "cell dark"
			}
			s.text(xx+cw/2-0.75, yy+ch/2+3, "middle", class, l.num(v.est.Value))
		}
	}
	return s.html()
}

// barGroup is one row of a bar chart: a label and one bar per series.
type barGroup struct {
	label string
	bars  []*Interval // nil: not published
	faint []bool
}

// barChart draws horizontal bars with 95% interval whiskers, one group
// per row and one colour per series, with the value at each bar's end.
func barChart(groups []barGroup, series []string, w float64, label string, l *locale) template.HTML {
	ml, mr, mt := 150.0, 44.0, 18.0
	bh, gap := 7.0, 5.0
	gh := float64(len(series))*bh + gap
	h := mt + float64(len(groups))*gh + 14
	s := newSVG(w, h, label)
	top := 1.0
	for _, g := range groups {
		for _, b := range g.bars {
			if b != nil {
				top = math.Max(top, math.Max(b.Value, b.CIHigh))
			}
		}
	}
	top = niceMax(top)
	iw := w - ml - mr
	x := func(v float64) float64 { return ml + math.Max(0, math.Min(v, top))/top*iw }
	for k := 0; k <= 4; k++ {
		v := top * float64(k) / 4
		s.add(`<line class="grid" x1="%s" x2="%s" y1="%s" y2="%s"/>`, f1(x(v)), f1(x(v)), f1(mt-4), f1(h-14))
		s.text(x(v), h-3, "middle", "tick", l.num(v))
	}
	lx := ml
	for i, name := range series {
		s.add(`<rect class="s%d" x="%s" y="2" width="9" height="7"/>`, i, f1(lx))
		s.text(lx+12, 9, "start", "tick", name)
		lx += 12 + 6.2*float64(len([]rune(name))) + 14
	}
	for gi, g := range groups {
		y0 := mt + float64(gi)*gh
		s.text(ml-5, y0+float64(len(series))*bh/2+3, "end", "tick", g.label)
		for i, b := range g.bars {
			if b == nil {
				continue
			}
			yy := y0 + float64(i)*bh
			class := fmt.Sprintf("s%d", i)
			if g.faint[i] {
				class += " faint"
			}
			s.add(`<rect class="%s" x="%s" y="%s" width="%s" height="%s"/>`, class, f1(ml), f1(yy), f1(x(b.Value)-ml), f1(bh-1))
			s.add(`<line class="whisker" x1="%s" x2="%s" y1="%s" y2="%s"/>`, f1(x(b.CILow)), f1(x(b.CIHigh)), f1(yy+(bh-1)/2), f1(yy+(bh-1)/2))
			s.text(x(math.Max(b.Value, b.CIHigh))+3, yy+bh-1.5, "start", "val", l.num(b.Value))
		}
	}
	return s.html()
}
