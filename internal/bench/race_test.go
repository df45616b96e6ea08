//go:build race

package bench

// raceDetector reports whether the tests run with -race.
const raceDetector = true
