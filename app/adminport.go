package app

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path"
	"strings"

	"go.uber.org/zap"
)

// The admin port. With admin_addr set, the admin API (/v1/providers in
// every method, /v1/pools) and /metrics are served on a listener of their
// own, and only there: a NetworkPolicy tells ports apart, not paths, so this
// is what lets a cluster admit the admin API from fewer places than the
// tasks (deploy/base/networkpolicy.yaml). The main listener keeps the probes
// and the tasks, and answers 404 for the admin paths; the admin listener
// answers 404 for everything else. Without admin_addr, one listener serves
// it all.

// adminPaths are the admin port's paths, and those under them.
var adminPaths = []string{"/v1/providers", "/v1/pools", "/v1/report", "/metrics"}

// isAdminPath reports whether a request's path is the admin port's. The
// path is cleaned first, as the mux would before redirecting, so that no
// spelling of an admin path (/v1//providers, /metrics/) gets past the main
// listener.
func isAdminPath(p string) bool {
	p = path.Clean("/" + p)
	for _, a := range adminPaths {
		if p == a || strings.HasPrefix(p, a+"/") {
			return true
		}
	}
	return false
}

// servingOnly serves the requests for the admin port's paths (admin true)
// or for the others (admin false), and answers 404 to the rest, saying
// which port serves them.
func servingOnly(admin bool, next http.Handler) http.Handler {
	elsewhere := errors.New("not found: the admin API and /metrics are served on admin_addr")
	if admin {
		elsewhere = errors.New("not found: admin_addr serves the admin API and /metrics only")
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if isAdminPath(r.URL.Path) != admin {
			writeError(w, http.StatusNotFound, elsewhere)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// adminPort is the admin API's own listener, when admin_addr is set.
type adminPort struct {
	srv    *http.Server
	served chan error // Serve's result, once the listener is closed
	addr   net.Addr
}

// splitAdminPort moves the admin API to a server of its own, if admin_addr
// is set, with the main server's timeouts.
func (a *adminServer) splitAdminPort() {
	if a.settings.AdminAddr == "" {
		return
	}
	all := a.srv.Handler
	a.srv.Handler = servingOnly(false, all)
	a.port = &adminPort{srv: &http.Server{
		Handler:           servingOnly(true, all),
		ReadHeaderTimeout: a.srv.ReadHeaderTimeout,
		ReadTimeout:       a.srv.ReadTimeout,
		IdleTimeout:       a.srv.IdleTimeout,
		ErrorLog:          a.srv.ErrorLog,
	}}
}

// listenAdminPort listens on admin_addr and serves there, if it is set, so
// that a port in use fails the start naming admin_addr.
func (a *adminServer) listenAdminPort() error {
	if a.port == nil {
		return nil
	}
	l, err := net.Listen("tcp", a.settings.AdminAddr)
	if err != nil {
		return fmt.Errorf("admin server: listen on admin_addr %s: %w", a.settings.AdminAddr, err)
	}
	a.port.addr = l.Addr()
	a.port.served = make(chan error, 1)
	go func() { a.port.served <- a.port.srv.Serve(l) }()
	a.log.Info("admin API listening on its own port", zap.Stringer("admin_addr", a.port.addr))
	return nil
}

// stopAdminPort closes the admin listener and waits for its requests within
// ctx, then cuts those left, on a goroutine: the task listener's shutdown
// runs meanwhile. The channel is closed once the admin listener is done.
func (a *adminServer) stopAdminPort(ctx context.Context) <-chan struct{} {
	done := make(chan struct{})
	if a.port == nil || a.port.served == nil {
		close(done)
		return done
	}
	go func() {
		defer close(done)
		if err := a.port.srv.Shutdown(ctx); err != nil {
			_ = a.port.srv.Close()
			a.log.Warn("admin API closed with requests unanswered", zap.Error(err))
		}
		<-a.port.served // ErrServerClosed, once Shutdown or Close has closed the listener
	}()
	return done
}
