//go:build !linux

package process

import (
	"errors"
	"fmt"
	"runtime"
	"syscall"
)

// DiesWithService reports whether a child is killed by the kernel when the
// service dies without cleaning up. Only Linux offers that (Pdeathsig):
// here a child outlives a service that crashed or was killed, and only
// Cleanup stops it.
const DiesWithService = false

func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}

// BecomeSubreaper is Linux's PR_SET_CHILD_SUBREAPER; elsewhere it fails
// with an error that wraps [errors.ErrUnsupported].
func BecomeSubreaper() error {
	return fmt.Errorf("process: become a subreaper: not available on %s: %w", runtime.GOOS, errors.ErrUnsupported)
}

// HideEnviron is Linux's PR_SET_DUMPABLE 0; elsewhere it fails with an
// error that wraps [errors.ErrUnsupported].
func HideEnviron() error {
	return fmt.Errorf("process: hide the environment from children: not available on %s: %w", runtime.GOOS, errors.ErrUnsupported)
}
