// Command benchmarks stops the same provider graphs with three systems in
// one run on one machine: the Gleitzeit registry, plain fx OnStop hooks
// (what a user writes without it) and samber/do v2 (a DI container with
// parallel shutdown). It prints one table: for each scenario and system,
// the median Stop wall time over repeated runs and its ratio to the
// critical path, the longest chain of cleanup durations as they were
// really measured, which no scheduler can beat.
//
// It is a module of its own so that the library's go.mod does not carry
// samber/do. `make bench` runs it; BENCHMARKS.md explains the numbers.
package main
