package app

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"

	"go.uber.org/zap"

	"github.com/gleitzeit/gleitzeit/lifecycle"
	"github.com/gleitzeit/gleitzeit/lifecycle/timeline"
)

// timeline answers GET /v1/report/timeline: the SVG of the registry's
// last start and stop. While the service runs, its stop is the one to
// come; -timeline writes the picture of the service's own stop as it
// exits.
func (a *adminServer) timeline(w http.ResponseWriter, _ *http.Request) {
	var buf bytes.Buffer
	if err := timeline.Of(a.engine.reg).WriteSVG(&buf); err != nil {
		writeError(w, http.StatusInternalServerError, err)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "image/svg+xml")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	// An SVG opened as a page may run script: this one has none, and a
	// provider id in it could never add one.
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
	_, _ = w.Write(buf.Bytes())
}

// writeTimeline writes the SVG of the start and stop of reg to path, the
// -timeline flag's, as the service exits: by way of a new file of its own
// beside it (never one that another user could have put there) and a
// rename, so that a reader never sees half of it.
func writeTimeline(log *zap.Logger, reg *lifecycle.Registry, path string) {
	if path == "" || reg == nil {
		return
	}
	var buf bytes.Buffer
	err := timeline.Of(reg).WriteSVG(&buf)
	if err == nil {
		err = replaceFile(path, buf.Bytes())
	}
	if err != nil {
		log.Warn("cannot write the timeline", zap.String("path", path), zap.Error(err))
		return
	}
	log.Info("timeline written", zap.String("path", path))
}

// replaceFile puts data at path through a temporary file in its directory.
func replaceFile(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(f.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		_ = os.Remove(f.Name())
	}
	return err
}
