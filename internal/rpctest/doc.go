// Package rpctest turns a test binary into the child process that the
// process provider's tests, and the service's, talk to: a JSON-RPC 2.0
// server over stdin and stdout. A test package's TestMain calls Serve
// first; Command gives the command line and environment that run the test
// binary as that child.
package rpctest
