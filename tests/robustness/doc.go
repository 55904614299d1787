// Package robustness breaks clusters of real `ensemble` processes on purpose
// (kills, pauses, network cuts, leader churn, membership changes) under
// concurrent client traffic and checks every recorded history.
//
// The short mode runs with `go test ./...`; the long mode is
//
//	go test ./tests/robustness -run TestRobustness -timeout 0 -args -duration=30m [-seed=N]
//
// A failing run prints its seed and scenario; `-seed=N -scenario=NAME`
// replays it (the faults and the choice of operations are drawn from the
// seed; the interleaving with the processes is not deterministic).
package robustness
