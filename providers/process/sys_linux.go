package process

import (
	"fmt"
	"syscall"
)

// DiesWithService reports whether a child is killed by the kernel when the
// service dies without cleaning up (a crash, a SIGKILL, a forced exit). On
// Linux it is: Pdeathsig.
const DiesWithService = true

func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// BecomeSubreaper makes this process the reaper of its descendants'
// orphans (Linux's PR_SET_CHILD_SUBREAPER), so that Cleanup can reap
// grandchildren whose parent died first instead of leaving them to a PID 1
// that may not reap. Call it once, early in main. Elsewhere than on Linux
// it fails with an error that wraps [errors.ErrUnsupported].
func BecomeSubreaper() error {
	const prSetChildSubreaper = 36
	if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0); errno != 0 {
		return fmt.Errorf("process: become a subreaper: %w", errno)
	}
	return nil
}

// HideEnviron makes this process non-dumpable (PR_SET_DUMPABLE 0), so that
// a child running as the same, non-root user cannot read the service's
// environment, and the secrets in it, from /proc/<ppid>/environ: the
// allow-list keeps them out of the child's own environment, not out of
// reach. A child running as root can still read it: run the service as a
// user of its own. Elsewhere than on Linux it fails with an error that
// wraps [errors.ErrUnsupported].
func HideEnviron() error {
	const prSetDumpable = 4
	if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, prSetDumpable, 0, 0); errno != 0 {
		return fmt.Errorf("process: hide the environment from children: %w", errno)
	}
	return nil
}
