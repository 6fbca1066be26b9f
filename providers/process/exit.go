package process

import (
	"errors"
	"os"
	"os/exec"
	"strconv"
	"syscall"
)

// Exit describes how a child ended, for [Config.OnExit].
type Exit struct {
	// Pid is the child's process id, which was also its process group's.
	Pid int
	// Err is what cmd.Wait returned: nil for an exit with status 0, an
	// *exec.ExitError for another status or a signal, or another error
	// (exec.ErrWaitDelay when a grandchild held stderr open too long).
	Err error
	// Code is the exit status, or -1 if a signal ended the child.
	Code int
	// Signal names the signal that ended the child ("killed",
	// "terminated"), or is empty if it exited.
	Signal string
	// CleanedUp reports whether Cleanup had begun before the child exited:
	// an exit that was asked for, rather than a crash.
	CleanedUp bool
	// Calls is how many calls, other than health calls, were waiting for
	// an answer when the child's output ended, before they were failed: a
	// child that died with calls in flight may have died of one of them.
	Calls int64
}

// String describes the exit as os.ProcessState does: "exit status 3",
// "signal: killed", followed by Err in parentheses if Err is not the exit
// itself.
func (e Exit) String() string {
	s := "exit status " + strconv.Itoa(e.Code)
	if e.Signal != "" {
		s = "signal: " + e.Signal
	}
	var exitErr *exec.ExitError
	if e.Err != nil && !errors.As(e.Err, &exitErr) {
		s += " (" + e.Err.Error() + ")"
	}
	return s
}

// exitOf describes the end of the child pid, whose cmd.Wait returned
// state and err. A Wait that failed without reaping leaves no state.
func exitOf(pid int, state *os.ProcessState, err error, cleanedUp bool) Exit {
	e := Exit{Pid: pid, Err: err, Code: -1, CleanedUp: cleanedUp}
	if state == nil {
		return e
	}
	e.Code = state.ExitCode()
	if ws, ok := state.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		e.Signal = ws.Signal().String()
	}
	return e
}
