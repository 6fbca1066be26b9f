package lifecycletest

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.uber.org/goleak"
)

// procfs reports whether /proc can be read for this process.
func procfs() bool {
	_, err := os.Stat("/proc/self/fd")
	return err == nil
}

// held is what the process holds at one moment: its goroutines (as
// goleak's option to ignore them), file descriptors, children and
// listening sockets.
type held struct {
	goroutines goleak.Option
	fds        map[string]string // by number: what it is
	children   map[int]bool
	listeners  map[string]bool // socket inodes
}

func snapshot() held {
	h := held{goroutines: goleak.IgnoreCurrent()}
	if procfs() {
		h.fds, h.children, h.listeners = fds(), children(), listeners()
	}
	return h
}

// leftover waits, at most wait, until the process holds nothing that it
// did not hold at the snapshot, and says what it still holds then.
func (h held) leftover(wait time.Duration) string {
	var left []string
	for deadline := time.Now().Add(wait); ; time.Sleep(20 * time.Millisecond) {
		left = left[:0]
		if procfs() {
			for fd, what := range fds() {
				if h.fds[fd] != what && !strings.HasPrefix(what, "/proc/") {
					left = append(left, fmt.Sprintf("file descriptor %s (%s)", fd, what))
				}
			}
			for pid := range children() {
				if !h.children[pid] {
					left = append(left, fmt.Sprintf("child process %d (%s)", pid, comm(pid)))
				}
			}
			for inode := range listeners() {
				if !h.listeners[inode] {
					left = append(left, "a listening socket (inode "+inode+")")
				}
			}
		}
		if len(left) == 0 || time.Now().After(deadline) {
			break
		}
	}
	if err := goleak.Find(h.goroutines); err != nil {
		left = append(left, "goroutines: "+err.Error())
	}
	slices.Sort(left)
	return strings.Join(left, "; ")
}

// fds lists the process's file descriptors and what each is.
func fds() map[string]string {
	out := map[string]string{}
	entries, _ := os.ReadDir("/proc/self/fd")
	for _, e := range entries {
		target, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name()))
		if err == nil { // the directory's own descriptor is gone by now
			out[e.Name()] = target
		}
	}
	return out
}

// children lists the processes whose parent is this one, zombies too: a
// child not waited for is a leak as well.
func children() map[int]bool {
	out := map[int]bool{}
	self := os.Getpid()
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces and parentheses.
		rest := string(stat[strings.LastIndexByte(string(stat), ')')+1:])
		fields := strings.Fields(rest)
		if len(fields) > 1 {
			if ppid, err := strconv.Atoi(fields[1]); err == nil && ppid == self {
				out[pid] = true
			}
		}
	}
	return out
}

func comm(pid int) string {
	b, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "comm"))
	return strings.TrimSpace(string(b))
}

// listeners lists the inodes of the TCP sockets this process listens on.
func listeners() map[string]bool {
	mine := map[string]bool{}
	for _, what := range fds() {
		if inode, ok := strings.CutPrefix(what, "socket:["); ok {
			mine[strings.TrimSuffix(inode, "]")] = true
		}
	}
	out := map[string]bool{}
	for _, table := range []string{"/proc/self/net/tcp", "/proc/self/net/tcp6"} {
		f, err := os.Open(table)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		sc.Scan() // the heading
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			const listen = "0A"
			if len(fields) > 9 && fields[3] == listen && mine[fields[9]] {
				out[fields[9]] = true
			}
		}
		_ = f.Close()
	}
	return out
}
