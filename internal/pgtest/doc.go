// Package pgtest runs a real PostgreSQL server for tests: initdb and pg_ctl
// in a temporary directory, on a free loopback port, as the postgres user
// when the tests run as root (PostgreSQL refuses to run as root), with
// password authentication over TCP. It is started once per test package,
// from TestMain, and stopped at its end.
//
// A server that cannot start is an error with the reason, never a skip:
// the tests that need it must fail.
package pgtest
