// Command service is the Gleitzeit service: the execution engine and the
// admin server, configured by -config FILE, GLEITZEIT_* environment
// variables and flags, with embedded defaults that need no server
// installed. `make run` starts it.
package main
