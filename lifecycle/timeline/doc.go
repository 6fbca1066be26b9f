// Package timeline draws a registry's last start and stop: a bar per
// provider from the begin of its Initialize or cleanup to its end, grouped
// by dependency depth, coloured by result, with the critical path marked,
// as an SVG a browser shows as it is.
//
// Its door is [Of], which reads a [lifecycle.Registry], and
// [Timeline.WriteSVG]. [New] draws reports kept elsewhere (a stop report
// read back from JSON, say); the [Bar] values are there for anyone who
// draws it another way.
//
// The critical path of a stop is the chain that held it up: from the
// cleanup that ended last, back to the dependent whose end it waited for,
// taking the one that ended last each time. A start's runs through
// dependencies the same way.
package timeline
