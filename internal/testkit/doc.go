// Package testkit holds what the tests of several packages share: a
// journal of what happened in which order, and bounded waits, so that a
// test that would hang fails instead.
package testkit
