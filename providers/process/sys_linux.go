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
