package aggregate

// HalfWidth95 is the half-width of the 95% interval that series points use
// (see ci95) for a linear estimate whose noise has the given variance, of
// which laplaceVar comes from its largest single Laplace term (0 for all
// Gaussian noise). The planner calls it so that the accuracy it promises
// is the accuracy the combined series show.
func HalfWidth95(variance, laplaceVar float64) float64 {
	if !(variance > 0) {
		return 0
	}
	return halfWidth95(variance, min(max(laplaceVar, 0), variance))
}
