package synth

import "math/rand/v2"

// w is one weighted alternative.
type w[T any] struct {
	v T
	p float64
}

// choice draws one of a fixed list of values with given weights. The list
// is a slice, not a map, so draws never depend on map iteration order.
type choice[T any] struct {
	vals []T
	cum  []float64 // running sums of the weights
}

func newChoice[T any](alts ...w[T]) choice[T] {
	c := choice[T]{vals: make([]T, len(alts)), cum: make([]float64, len(alts))}
	total := 0.0
	for i, a := range alts {
		total += a.p
		c.vals[i] = a.v
		c.cum[i] = total
	}
	return c
}

// pick draws a value; an empty choice returns the zero value.
func (c choice[T]) pick(r *rand.Rand) T {
	var zero T
	if len(c.vals) == 0 {
		return zero
	}
	x := r.Float64() * c.cum[len(c.cum)-1]
	for i, s := range c.cum {
		if x < s {
			return c.vals[i]
		}
	}
	return c.vals[len(c.vals)-1]
}

// chance reports true with probability p.
func chance(r *rand.Rand, p float64) bool { return r.Float64() < p }

// between draws an integer in [lo, hi].
func between(r *rand.Rand, lo, hi int) int { return lo + r.IntN(hi-lo+1) }
