//go:build race

package privacy

// raceEnabled skips the statistical evidence tests under -race: they draw
// hundreds of thousands of samples through one goroutine, where the race
// detector finds nothing and slows them thirtyfold.
const raceEnabled = true
