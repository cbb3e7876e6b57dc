package brief

import (
	"bytes"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"math"
	"strconv"
	"strings"
	"time"
)

//go:embed brief.html
var pageTemplate string

//go:embed brief.css
var pageCSS string

var tmpl = template.Must(template.New("brief").Parse(pageTemplate))

// Pages is the number of A4 pages a brief prints on: the overview, the
// countries, corridors and forms of exploitation, the budget, and the
// methods note. Each is one <section class="page"> that starts a new
// page and is laid out to fit on one; the print test holds every
// language to it.
const Pages = 5

// Options are the inputs of a brief besides the data.
type Options struct {
	Lang string    // a code of web.Languages(); "" is English
	Date time.Time // the day the brief is made, shown in its header
	// Server is the node URL the verify command in the methods note
	// names (the one the data came from).
	Server string
}

// Render writes the brief for d as one self-contained HTML page: inline
// CSS and SVG, no script, nothing fetched from anywhere. The same d and o
// give the same bytes.
func Render(d *Data, o Options) ([]byte, error) {
	if o.Lang == "" {
		o.Lang = "en"
	}
	if o.Date.IsZero() {
		return nil, errors.New("brief: no date")
	}
	l, err := newLocale(o.Lang)
	if err != nil {
		return nil, err
	}
	v, err := buildView(d, o, l)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := tmpl.Execute(&buf, v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// view is what the template shows, every string already translated.
type view struct {
	Lang                                 string
	CSS                                  template.CSS
	DocTitle, Title, Subtitle, AsOf      string
	Empty                                string
	Running                              [Pages]string
	OverviewTitle, Headline, HeadChange  string
	Incomplete                           string
	TrendTitle, TrendCaption             string
	Trend                                template.HTML
	ChangesTitle, ChangesHelp            string
	ChangeCols                           []string
	Changes                              []changeRow
	CountriesTitle, CountriesHelp        string
	Countries                            []figure
	CorridorsTitle, CorridorsHelp, Axes  string
	Corridors                            template.HTML
	FormsTitle, FormsHelp                string
	Forms                                template.HTML
	BudgetTitle, BudgetHelp, BudgetEmpty string
	BudgetCols                           []string
	BudgetRows                           []budgetRow
	MethodsTitle                         string
	Methods                              []string
	Sources, Earlier                     string
	ReleaseCols                          []string
	Releases                             []releaseRow
	CheckpointText, Root, Signers        string
	VerifyText, VerifyCmd                string
}

type changeRow struct {
	Area, Estimate, Interval, Change, ChangeInterval, Reading, Class string
}

type figure struct {
	Caption, Note string
	Chart         template.HTML
}

type budgetRow struct {
	Partner string
	Cells   []budgetCell
}

type budgetCell struct {
	Text string
	Pct  int
}

type releaseRow struct {
	Partner, Period, Leaf, ID string
}

// builder carries the locale and the first translation error.
type builder struct {
	l   *locale
	err error
	d   *Data
	y   string
}

func (b *builder) t(id string, args ...any) string { return b.l.tr(&b.err, id, args...) }

// label translates a catalog key or partner code (key.CODE), falling back
// to the code for one the translations do not know yet.
func (b *builder) label(code string) string {
	if s, err := b.l.t("key." + code); err == nil {
		return s
	}
	return code
}

func (b *builder) interval(e *Interval) string {
	return b.l.num(e.CILow) + " – " + b.l.num(e.CIHigh)
}

func (b *builder) reading(r string) string {
	switch r {
	case "increase":
		return b.t("trends.change.increase")
	case "decrease":
		return b.t("trends.change.decrease")
	}
	return b.t("trends.change.none")
}

func pointOf(pts []Point, period string) *Point {
	for i := range pts {
		if pts[i].Period == period {
			return &pts[i]
		}
	}
	return nil
}

func linePoints(pts []Point) []linePoint {
	out := make([]linePoint, len(pts))
	for i, p := range pts {
		out[i] = linePoint{label: p.Period, est: p.Estimate, raw: p.Raw, uncertain: p.TooUncertain || p.Estimate == nil}
	}
	return out
}

func buildView(d *Data, o Options, l *locale) (*view, error) {
	b := &builder{l: l, d: d, y: strconv.Itoa(d.Year)}
	v := &view{Lang: o.Lang, CSS: template.CSS(pageCSS)}
	names := make([]string, len(d.Partners))
	for i, p := range d.Partners {
		names[i] = b.label(p)
	}
	v.DocTitle = b.t("brief.doctitle", "year", d.Year)
	v.Empty = b.t("brief.empty")
	v.Title = b.t("brief.title", "year", d.Year)
	v.Subtitle = b.t("brief.subtitle", "partners", strings.Join(names, ", "))
	root := hex.EncodeToString(d.Checkpoint.Root)
	v.AsOf = b.t("brief.asof", "date", l.date(&b.err, o.Date), "size", l.num(float64(d.Checkpoint.Size)), "root", root[:min(16, len(root))])
	for i := range v.Running {
		v.Running[i] = b.t("brief.running", "year", d.Year, "page", i+1, "pages", Pages)
	}
	b.overview(v)
	b.countries(v)
	b.tables(v)
	b.budget(v)
	b.methods(v, o)
	if b.err != nil {
		return nil, b.err
	}
	return v, nil
}

func (b *builder) overview(v *view) {
	d, l := b.d, b.l
	v.OverviewTitle = b.t("brief.overview.title", "year", d.Year)
	p := pointOf(d.Region, b.y)
	switch {
	case p == nil || p.Estimate == nil:
		v.Headline = b.t("brief.headline.undetermined", "year", d.Year)
	case p.TooUncertain:
		v.Headline = b.t("brief.headline.uncertain", "year", d.Year, "value", l.num(p.Estimate.Value), "lo", l.num(p.Estimate.CILow), "hi", l.num(p.Estimate.CIHigh))
	default:
		v.Headline = b.t("brief.headline", "year", d.Year, "value", l.num(p.Estimate.Value), "lo", l.num(p.Estimate.CILow), "hi", l.num(p.Estimate.CIHigh))
	}
	if p != nil && p.Change != nil {
		c := p.Change
		v.HeadChange = b.t("brief.headline.change", "from", c.From, "value", l.signed(c.Value), "lo", l.signed(c.CILow), "hi", l.signed(c.CIHigh), "reading", b.reading(c.Reading))
	} else {
		v.HeadChange = b.t("brief.headline.nochange")
	}
	var published []string
	for _, c := range d.Countries {
		if pointOf(c.Points, b.y) != nil {
			published = append(published, b.label(c.Code))
		}
	}
	if len(published) < len(d.Partners) {
		v.Incomplete = b.t("brief.headline.incomplete", "year", d.Year, "partners", strings.Join(published, ", "))
	}
	v.TrendTitle = b.t("brief.trend.title")
	v.TrendCaption = b.t("brief.trend.caption")
	pts := linePoints(d.Region)
	v.Trend = lineChart(pts, 688, 230, topOf(pts), v.TrendTitle, b.t("brief.empty"), l)

	v.ChangesTitle = b.t("brief.changes.title", "prev", d.Year-1, "year", d.Year)
	v.ChangesHelp = b.t("brief.changes.help")
	v.ChangeCols = []string{b.t("brief.col.area"), b.t("brief.col.estimate") + " " + b.y, b.t("brief.col.interval"),
		b.t("brief.col.change"), b.t("brief.col.interval"), b.t("brief.col.reading")}
	v.Changes = append(v.Changes, b.changeRow(b.t("brief.region"), pointOf(d.Region, b.y)))
	for _, c := range d.Countries {
		v.Changes = append(v.Changes, b.changeRow(b.label(c.Code), pointOf(c.Points, b.y)))
	}
}

func (b *builder) changeRow(area string, p *Point) changeRow {
	none := b.t("brief.none")
	r := changeRow{Area: area, Estimate: none, Interval: none, Change: none, ChangeInterval: none, Reading: none}
	if p == nil {
		return r
	}
	if p.Estimate == nil {
		r.Estimate = b.t("brief.undetermined")
	} else {
		r.Estimate, r.Interval = b.l.num(p.Estimate.Value), b.interval(p.Estimate)
		if p.TooUncertain {
			r.Estimate += " (" + b.t("brief.uncertain") + ")"
		}
	}
	if c := p.Change; c != nil {
		r.Change = b.l.signed(c.Value)
		r.ChangeInterval = b.l.signed(c.CILow) + " – " + b.l.signed(c.CIHigh)
		r.Reading = b.reading(c.Reading)
		r.Class = "nochange"
		if c.Reading == "increase" || c.Reading == "decrease" {
			r.Class = "detectable"
		}
	}
	return r
}

func (b *builder) countries(v *view) {
	d, l := b.d, b.l
	v.CountriesTitle = b.t("brief.countries.title")
	v.CountriesHelp = b.t("brief.countries.help")
	var all [][]linePoint
	for _, c := range d.Countries {
		all = append(all, linePoints(c.Points))
	}
	top := topOf(all...)
	for i, c := range d.Countries {
		name := b.label(c.Code)
		f := figure{Caption: name}
		f.Chart = lineChart(all[i], 336, 150, top, name, b.t("brief.empty"), l)
		switch p := pointOf(c.Points, b.y); {
		case p == nil:
			f.Note = b.t("brief.empty")
		case p.Estimate == nil:
			f.Note = b.t("chart.point.undetermined", "label", name, "period", p.Period)
		case p.TooUncertain:
			f.Note = b.t("chart.uncertain.long", "period", p.Period)
		default:
			f.Note = b.t("chart.point", "label", name, "period", p.Period, "value", l.num(p.Estimate.Value), "lo", l.num(p.Estimate.CILow), "hi", l.num(p.Estimate.CIHigh))
		}
		v.Countries = append(v.Countries, f)
	}
}

func (b *builder) tables(v *view) {
	d, l := b.d, b.l
	v.CorridorsTitle = b.t("brief.corridors.title", "year", d.Year)
	v.CorridorsHelp = b.t("brief.corridors.help")
	v.Axes = b.t("corridors.rows") + " ↓   " + b.t("corridors.cols") + " →"
	v.FormsTitle = b.t("brief.forms.title", "year", d.Year)
	v.FormsHelp = b.t("brief.forms.help")
	if t := d.Corridors; t.Indicator != "" {
		cells := cellIndex(t)
		v.Corridors = heatmap(b.labels(t.Rows), b.labels(t.Cols), func(r, c int) heatCell {
			p := cells[t.Rows[r]+"\x00"+t.Cols[c]]
			if p == nil || p.Estimate == nil {
				return heatCell{}
			}
			return heatCell{est: p.Estimate, faint: p.Small || p.TooUncertain}
		}, 688, v.CorridorsTitle, l)
	}
	if t := d.Forms; t.Indicator != "" {
		cells := cellIndex(t)
		var groups []barGroup
		for _, row := range t.Rows {
			g := barGroup{label: b.label(row)}
			for _, col := range t.Cols {
				p := cells[row+"\x00"+col]
				if p == nil || p.Estimate == nil {
					g.bars, g.faint = append(g.bars, nil), append(g.faint, false)
					continue
				}
				g.bars, g.faint = append(g.bars, p.Estimate), append(g.faint, p.Small || p.TooUncertain)
			}
			groups = append(groups, g)
		}
		v.Forms = barChart(groups, b.labels(t.Cols), 688, v.FormsTitle, l)
	}
}

func (b *builder) labels(codes []string) []string {
	out := make([]string, len(codes))
	for i, c := range codes {
		out[i] = b.label(c)
	}
	return out
}

func cellIndex(t Table) map[string]*Point {
	m := map[string]*Point{}
	for i := range t.Cells {
		if p := &t.Cells[i]; len(p.Key) == 2 {
			m[p.Key[0]+"\x00"+p.Key[1]] = p
		}
	}
	return m
}

func (b *builder) budget(v *view) {
	d, l := b.d, b.l
	acc := "ε"
	if d.Budget.Accounting == "zcdp" {
		acc = "ρ"
	}
	v.BudgetTitle = b.t("brief.budget.title", "year", d.Year)
	v.BudgetHelp = b.t("brief.budget.help", "accounting", acc, "year", d.Year, "cap", l.decimalNum(d.Budget.Cap, 2))
	v.BudgetCols = []string{b.t("brief.col.partner")}
	for q := 1; q <= 4; q++ {
		v.BudgetCols = append(v.BudgetCols, b.t("format.quarter", "quarter", q, "year", d.Year))
	}
	any := false
	for _, p := range d.Budget.Partners {
		row := budgetRow{Partner: b.label(p.Partner)}
		for q := 1; q <= 4; q++ {
			spent := 0.0
			for _, s := range p.Quarters {
				if s.Quarter == fmt.Sprintf("%d-Q%d", d.Year, q) {
					spent = s.Spent
				}
			}
			any = any || spent > 0
			pct := 0
			if d.Budget.Cap > 0 {
				pct = int(math.Round(math.Min(spent/d.Budget.Cap, 1) * 100))
			}
			row.Cells = append(row.Cells, budgetCell{Text: l.decimalNum(spent, 2), Pct: pct})
		}
		v.BudgetRows = append(v.BudgetRows, row)
	}
	if !any {
		v.BudgetEmpty = b.t("brief.budget.none", "year", d.Year)
	}
}

func (b *builder) methods(v *view, o Options) {
	d := b.d
	v.MethodsTitle = b.t("brief.methods.title")
	for _, id := range []string{"brief.methods.raw", "brief.methods.dp", "brief.methods.interval", "brief.methods.consistent"} {
		v.Methods = append(v.Methods, b.t(id))
	}
	v.Sources = b.t("brief.methods.sources", "count", b.l.num(float64(len(d.Releases)+d.EarlierReleases)), "year", d.Year)
	if d.EarlierReleases > 0 {
		v.Earlier = b.t("brief.methods.earlier", "count", d.EarlierReleases)
	}
	v.ReleaseCols = []string{b.t("brief.col.partner"), b.t("brief.col.period"), b.t("brief.col.leaf"), b.t("brief.col.release")}
	for _, r := range d.Releases {
		v.Releases = append(v.Releases, releaseRow{Partner: r.Partner, Period: r.Period, Leaf: strconv.FormatInt(r.Leaf, 10), ID: r.ID})
	}
	v.CheckpointText = b.t("brief.methods.checkpoint", "size", b.l.num(float64(d.Checkpoint.Size)))
	v.Root = hex.EncodeToString(d.Checkpoint.Root)
	v.Signers = b.t("brief.methods.signers", "signers", strings.Join(b.labels(d.Checkpoint.Signers), ", "))
	v.VerifyText = b.t("brief.methods.verify")
	server := o.Server
	if server == "" {
		server = "URL"
	}
	v.VerifyCmd = "roundtable verify --server " + server + " --genesis genesis.json"
	if d.ConsortiumID != "" {
		v.VerifyCmd += " --consortium " + d.ConsortiumID
	}
}
