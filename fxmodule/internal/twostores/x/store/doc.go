// Package store is one of two test-support packages named store, whose
// Client types print alike (*store.Client): fxmodule's tests check that
// providers of such types are told apart. The other is ../../y/store.
package store
