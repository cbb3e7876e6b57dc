package privacy

import (
	"fmt"
	"math"

	"github.com/google/differential-privacy/go/v3/dpagg"
	"github.com/google/differential-privacy/go/v3/noise"
)

// countShare is the part of a quantile indicator's budget spent on a noisy
// count of the people behind the quantiles. The count is published (it
// tells a reader how many ages a median rests on) and it turns the rank
// error of the quantile tree into an interval.
const countShare = 0.1

// DefaultRanks are published when the catalog names none.
var defaultRanks = []float64{0.25, 0.5, 0.75}

// quantileNoise is the calibration for one quantile indicator: a count
// mechanism for N and the library's BoundedQuantiles tree for the ranks.
type quantileNoise struct {
	count        cellNoise
	mechanism    string
	treeEpsilon  float64 // the library's ε for the tree
	treeDelta    float64
	nodeSD       float64 // standard deviation of the noise on one tree node
	lower, upper float64
	ranks        []float64
}

// newQuantileNoise splits a budget (ε under PureDP, ρ under ZCDP) between
// the count and the tree and calibrates both.
func newQuantileNoise(accounting string, budget, lower, upper float64, ranks []float64) (quantileNoise, error) {
	if !(lower < upper) {
		return quantileNoise{}, fmt.Errorf("quantiles: bounds [%v, %v] are empty", lower, upper)
	}
	if len(ranks) == 0 {
		ranks = defaultRanks
	}
	for _, r := range ranks {
		if !(r > 0 && r < 1) {
			return quantileNoise{}, fmt.Errorf("quantiles: rank %v is not in (0, 1)", r)
		}
	}
	q := quantileNoise{lower: lower, upper: upper, ranks: ranks}
	h := int64(dpagg.DefaultTreeHeight)
	var err error
	switch accounting {
	case PureDP:
		if q.count, err = newLaplaceNoise(1, 1, quantileCountBudget(budget)); err != nil {
			return quantileNoise{}, err
		}
		q.mechanism, q.treeEpsilon = Laplace, budget*(1-countShare)
		// One person adds 1 to one node per level: L1 = tree height.
		q.nodeSD = math.Sqrt2 * float64(h) / q.treeEpsilon
	case ZCDP:
		if q.count, err = newGaussianNoise(1, 1, quantileCountBudget(budget)); err != nil {
			return quantileNoise{}, err
		}
		rho := budget * (1 - countShare)
		// L2 = √height; the library calibrates per node with l0 = height.
		target := math.Sqrt(float64(h)) / math.Sqrt(2*rho)
		if q.treeEpsilon, err = epsilonForSigma(h, 1, target, GaussianDelta); err != nil {
			return quantileNoise{}, err
		}
		q.mechanism, q.treeDelta = Gaussian, GaussianDelta
		q.nodeSD = noise.SigmaForGaussian(h, 1, q.treeEpsilon, q.treeDelta)
	default:
		return quantileNoise{}, fmt.Errorf("quantiles: unknown accounting %q", accounting)
	}
	return q, nil
}

// quantileCountBudget is the part of a quantile table's budget its count
// is calibrated with.
func quantileCountBudget(budget float64) float64 { return budget * countShare }

// rankError is a conservative 95% bound, in people, on how far the rank of
// a returned quantile is from the rank asked for. At each of the tree's H
// levels the descent compares a noisy partial sum with a noisy total over
// B children; to first order the position error there is
// Σ_{i≤j} e_i − r·Σ_i e_i, whose variance is at most B·s² for node noise
// of standard deviation s. Levels are independent, so the total error has
// standard deviation at most s·√(H·B); we take z(0.975) of that.
func (q quantileNoise) rankError() float64 {
	return z975 * q.nodeSD * math.Sqrt(float64(dpagg.DefaultTreeHeight*dpagg.DefaultBranchingFactor))
}

func (q quantileNoise) leafWidth() float64 {
	return (q.upper - q.lower) / math.Pow(dpagg.DefaultBranchingFactor, dpagg.DefaultTreeHeight)
}

func (q quantileNoise) newTree() (*dpagg.BoundedQuantiles, error) {
	var n noise.Noise = noise.Laplace()
	if q.mechanism == Gaussian {
		n = noise.Gaussian()
	}
	// A fresh aggregator per release: the library is not thread-safe and
	// its state must never outlive the call (it is never serialised).
	return dpagg.NewBoundedQuantiles(&dpagg.BoundedQuantilesOptions{
		Epsilon:                      q.treeEpsilon,
		Delta:                        q.treeDelta,
		MaxPartitionsContributed:     1,
		MaxContributionsPerPartition: 1,
		Lower:                        q.lower,
		Upper:                        q.upper,
		Noise:                        n,
	})
}

// release draws the noisy count and quantiles of values (one per person).
// The intervals reuse the same noisy tree at ranks r ± Δr, which is
// post-processing and costs no budget; Δr is rankError over the lower end
// of the count's interval, so a small or uncertain N widens the interval.
func (q quantileNoise) release(values []float64) (Cell, []Quantile, error) {
	count, err := q.count.cell([]string{}, int64(len(values)))
	if err != nil {
		return Cell{}, nil, fmt.Errorf("quantiles count: %w", err)
	}
	tree, err := q.newTree()
	if err != nil {
		return Cell{}, nil, fmt.Errorf("quantiles: %w", err)
	}
	for _, v := range values {
		if err := tree.Add(v); err != nil {
			return Cell{}, nil, fmt.Errorf("quantiles: %w", err)
		}
	}
	n := math.Max(count.CILow, 1)
	dr := q.rankError() / n
	out := make([]Quantile, 0, len(q.ranks))
	for _, r := range q.ranks {
		v, err := tree.Result(r)
		if err != nil {
			return Cell{}, nil, fmt.Errorf("quantile %v: %w", r, err)
		}
		lo, hi := q.lower, q.upper
		if r-dr > 0 {
			if lo, err = tree.Result(r - dr); err != nil {
				return Cell{}, nil, fmt.Errorf("quantile %v: %w", r-dr, err)
			}
			// The tree interpolates inside a leaf; step back one leaf so
			// a true value at the leaf's left edge stays covered.
			lo = math.Max(q.lower, math.Min(lo-q.leafWidth(), v))
		}
		if r+dr < 1 {
			if hi, err = tree.Result(r + dr); err != nil {
				return Cell{}, nil, fmt.Errorf("quantile %v: %w", r+dr, err)
			}
			hi = math.Min(q.upper, math.Max(hi+q.leafWidth(), v))
		}
		out = append(out, Quantile{Rank: r, Value: v, CILow: lo, CIHigh: hi})
	}
	return count, out, nil
}
