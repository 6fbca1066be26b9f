// Package twostores holds two test-support packages, x/store and y/store,
// both named store: their Client types print alike, as go-redis v8 and v9
// or two packages' config.Config do.
package twostores
