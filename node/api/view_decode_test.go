package api

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"roundtable/aggregate"
	"roundtable/privacy"
)

// viewFields is what the series view reads of a release.
func viewFields(s *privacy.Signed) privacy.Signed {
	out := privacy.Signed{ID: s.ID}
	out.Release.Partner, out.Release.Period = s.Release.Partner, s.Release.Period
	for _, ir := range s.Release.Indicators {
		out.Release.Indicators = append(out.Release.Indicators, privacy.IndicatorRelease{
			Name: ir.Name, Mechanism: ir.Mechanism, Dimensions: ir.Dimensions, Cells: ir.Cells, Quantiles: ir.Quantiles})
	}
	return out
}

func wholeCatalogRelease(t testing.TB, cat *aggregate.Catalog, accounting string) []byte {
	t.Helper()
	ctx := context.Background()
	var names []string
	for _, ind := range cat.Indicators {
		names = append(names, ind.Name)
	}
	period := aggregate.Period{Year: 2024, Quarter: 2}
	tables, err := aggregate.Tabulate(ctx, cat, period, names, func(func(*aggregate.Case) error) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	res := privacy.Reservation{ID: "r", Consortium: "c", Partner: "BA", CatalogHash: cat.Hash(), Period: period,
		Accounting: accounting, SpendMicro: 500_000, Indicators: names}
	key := ed25519.NewKeyFromSeed(make([]byte, 32))
	s, err := privacy.BuildRelease(ctx, cat, tables, res.Params(), res, key)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestReleaseDecoderAgrees: the series view's release decoder reads what
// encoding/json reads, for stored whole-catalog releases of both catalogs
// and both accountings, for re-encodings (indented, fields reordered,
// unknown fields, escapes, case-variant names), and for 4,000 random
// corruptions: whenever the fast path accepts an input, encoding/json
// accepts it too and reads the same values; otherwise the view falls back
// to encoding/json's answer.
func TestReleaseDecoderAgrees(t *testing.T) {
	var inputs [][]byte
	for _, cat := range []*aggregate.Catalog{aggregate.CatalogV1(), aggregate.CatalogV2()} {
		for _, acc := range []string{privacy.PureDP, privacy.ZCDP} {
			inputs = append(inputs, wholeCatalogRelease(t, cat, acc))
		}
	}
	base := string(inputs[0])
	var generic map[string]any
	if err := json.Unmarshal(inputs[0], &generic); err != nil {
		t.Fatal(err)
	}
	indented, _ := json.MarshalIndent(generic, "", "  ")
	reordered, _ := json.Marshal(generic) // map keys sorted: "id" after "release"
	inputs = append(inputs, indented, reordered,
		[]byte(strings.Replace(base, `{"id":`, `{"extra":{"a":[1,2.5e3,"x\"y",null,true,false,{}]},"id":`, 1)),
		[]byte(strings.Replace(base, `"partner":"BA"`, `"partner":"B\u0041"`, 1)),
		[]byte(strings.Replace(base, `"partner":"BA"`, `"Partner":"XX","partner":"BA"`, 1)),
		[]byte(strings.Replace(base, `"partner":"BA"`, `"partner":"BA","PARTNER":"XX"`, 1)),
		[]byte(strings.Replace(base, `"value":`, `"Value":`, 3)),
		[]byte(strings.Replace(base, `"quantiles":`, `"quantiles":null,"q":`, 1)),
		[]byte(strings.Replace(base, `"key":[`, `"key":null,"key":[`, 1)),
		[]byte(` `+base+"\n"),
	)
	d := newReleaseDecoder()
	counts := newReleaseDecoder()
	counts.skipIntervals = func(string) bool { return true }
	check := func(i int, in []byte, mustFast bool) {
		t.Helper()
		var want privacy.Signed
		wantErr := json.Unmarshal(in, &want)
		fastErr := d.decode(in)
		var syntax *json.SyntaxError
		if fastErr == nil {
			// encoding/json may refuse a field the view does not read (a
			// string where the version is a number); never the syntax.
			if errors.As(wantErr, &syntax) {
				t.Fatalf("input %d: fast path accepted what encoding/json refuses (%v): %.200q", i, wantErr, in)
			}
			if got, w := viewFields(d.rel), viewFields(&want); !reflect.DeepEqual(got, w) {
				t.Fatalf("input %d: fast path read %+v, encoding/json %+v", i, got.Release.Partner, w.Release.Partner)
			}
		} else if mustFast {
			t.Fatalf("input %d: fast path refused a stored release: %v", i, fastErr)
		}
		if i < 4 { // stored releases (name before cells), without the cells' intervals
			if err := counts.decode(in); err != nil {
				t.Fatalf("input %d: counts only: %v", i, err)
			}
			w := viewFields(&want)
			for k := range w.Release.Indicators {
				ir := &w.Release.Indicators[k]
				ir.Cells = slices.Clone(ir.Cells)
				for j := range ir.Cells {
					ir.Cells[j].CILow, ir.Cells[j].CIHigh = 0, 0
				}
			}
			if got := viewFields(counts.rel); !reflect.DeepEqual(got, w) {
				t.Fatalf("input %d: counts only: fast path read another release", i)
			}
		}
		got, err := d.decodeViewRelease(in)
		switch {
		case wantErr == nil && (err != nil || !reflect.DeepEqual(viewFields(got), viewFields(&want))):
			t.Fatalf("input %d: decodeViewRelease %v where encoding/json reads it", i, err)
		case errors.As(wantErr, &syntax) && err == nil:
			t.Fatalf("input %d: decodeViewRelease accepted invalid JSON (%v)", i, wantErr)
		}
	}
	for i, in := range inputs {
		check(i, in, i < 6)
	}
	r := rand.New(rand.NewPCG(4, 2))
	alphabet := []byte(`{}[]":,.-+eE0123456789 \nabnulltruefalse`)
	for i := range 4_000 {
		in := []byte(string(inputs[r.IntN(len(inputs))]))
		for range 1 + r.IntN(3) {
			at := r.IntN(len(in))
			switch r.IntN(3) {
			case 0:
				in[at] = alphabet[r.IntN(len(alphabet))]
			case 1:
				in = append(in[:at], in[at+1:]...)
			default:
				in = append(in[:at], append([]byte{alphabet[r.IntN(len(alphabet))]}, in[at:]...)...)
			}
		}
		check(1000+i, in, false)
	}
}

// BenchmarkReleaseDecode compares the view's decoder with encoding/json
// on a stored whole-catalog release; cpu-µs/op is the process's CPU time
// per decode, which a loaded machine distorts less than the wall clock.
func BenchmarkReleaseDecode(b *testing.B) {
	in := wholeCatalogRelease(b, aggregate.CatalogV1(), privacy.PureDP)
	run := func(name string, decode func() error) {
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(in)))
			c0 := cpuTime(b)
			for b.Loop() {
				if err := decode(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64((cpuTime(b)-c0).Microseconds())/float64(b.N), "cpu-µs/op")
		})
	}
	d := newReleaseDecoder()
	run("view", func() error { return d.decode(in) })
	counts := newReleaseDecoder()
	counts.skipIntervals = func(string) bool { return true } // as the view reads count indicators
	run("view-counts", func() error { return counts.decode(in) })
	run("encoding-json", func() error {
		var s privacy.Signed
		return json.Unmarshal(in, &s)
	})
}

func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
