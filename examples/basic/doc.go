// Command basic is the smallest Gleitzeit service: three providers, one
// built from another, run until SIGINT or SIGTERM, then cleaned up in
// dependency order and reported. `go run ./examples/basic` starts it.
package main
