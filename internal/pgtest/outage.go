package pgtest

import (
	"fmt"
	"path/filepath"
)

// Halt stops the server at once, as a crash or a lost host would, and
// keeps its data: clients' connections break, and new ones are refused
// until Resume. Tests of an outage use a server of their own, since the
// others would see it too.
func (s *Server) Halt() error {
	if out, err := s.run("pg_ctl", "-D", filepath.Join(s.dir, "data"), "-m", "immediate", "-w", "stop"); err != nil {
		return fmt.Errorf("pgtest: pg_ctl stop: %w\n%s", err, out)
	}
	return nil
}

// Resume starts a halted server again, on the same port, with its data,
// and waits until it accepts connections.
func (s *Server) Resume() error { return s.launch() }
