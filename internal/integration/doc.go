// Package integration holds tests that put the pieces together: every real
// provider declared with fxmodule.Provide in one fx application.
package integration
