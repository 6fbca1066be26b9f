package main

import (
	"context"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gleitzeit/gleitzeit/internal/ollamatest"
	"github.com/gleitzeit/gleitzeit/internal/testkit"
)

// chromium finds the browser: Debian's chromium, which make test installs
// when it runs as root (scripts/test.sh), or another Chrome on the PATH.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("no Chromium on the PATH: this test drives a real browser; install Debian's chromium (apt-get install chromium), as make test does when run as root")
	return ""
}

// A real browser loads /v1/report/timeline as it is: an SVG document,
// with a bar per provider, and no error on its console, no exception, no
// failed load.
func TestABrowserShowsTheTimeline(t *testing.T) {
	bin := chromium(t)
	llm := ollamatest.Start()
	defer llm.Close()
	addr := freeAddr(t)
	r := run(t, config(t, addr, t.TempDir(), llm.URL(), ""))
	r.waitReady(addr)
	providers := len(r.providers())

	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(bin), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.UserDataDir(t.TempDir()),
		// This machine's network is closed: Chromium's own calls out would
		// only fail, and slowly.
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("disable-quic", true))
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(alloc)
	defer cancel()
	ctx, cancelWait := context.WithTimeout(ctx, testkit.Wait)
	defer cancelWait()

	var mu sync.Mutex
	var problems []string
	require.NoError(t, chromedp.Listen(ctx, func(ev any) {
		var p string
		switch e := ev.(type) {
		case *runtime.EventExceptionThrown:
			p = "exception: " + (&chromedp.ExceptionError{ExceptionDetails: e.ExceptionDetails}).Error()
		case *runtime.EventConsoleAPICalled:
			if e.Type == runtime.ConsoleAPICalledTypeError || e.Type == runtime.ConsoleAPICalledTypeWarning {
				p = "console." + string(e.Type)
			}
		case *log.EventEntryAdded:
			if e.Entry.Level == log.EntryLevelError || e.Entry.Level == log.EntryLevelWarning {
				p = "log: " + e.Entry.Text + " " + e.Entry.URL
			}
		case *network.EventLoadingFailed:
			p = "load failed: " + e.ErrorText
		}
		if p != "" {
			mu.Lock()
			problems = append(problems, p)
			mu.Unlock()
		}
	}))
	_, err := chromedp.Call(ctx, runtime.Enable, cdp.Empty{})
	require.NoError(t, err)
	_, err = chromedp.Call(ctx, log.Enable, cdp.Empty{})
	require.NoError(t, err)
	_, err = chromedp.Call(ctx, network.Enable, network.EnableParams{})
	require.NoError(t, err)

	resp, err := chromedp.Run(ctx, chromedp.NavigateResponse(r.base+"/v1/report/timeline"))
	require.NoError(t, err, "%s", r.stderr)
	assert.EqualValues(t, 200, resp.Status)
	require.NoError(t, chromedp.Do(ctx, chromedp.WaitReady(chromedp.CSS(`rect[data-provider]`))))
	eval := func(js string) any {
		v, err := chromedp.Run(ctx, chromedp.Evaluate[any](js))
		require.NoError(t, err, js)
		return v
	}
	contentType := eval(`document.contentType`)
	title := eval(`document.querySelector("title").textContent`)
	bars := eval(`document.querySelectorAll('[data-phase="start"] rect[data-provider]').length`)
	critical := eval(`document.querySelectorAll('[data-phase="start"] rect.critical').length`)
	// Laid out, not only parsed: the bars have a size on the screen.
	width := eval(`Math.max(...[...document.querySelectorAll('rect[data-provider]')].map(r => r.getBoundingClientRect().width))`)

	assert.Equal(t, "image/svg+xml", contentType)
	assert.Contains(t, title, "start and stop")
	assert.EqualValues(t, providers, bars, "a bar per provider in the start")
	assert.Positive(t, critical.(float64), "the critical path is marked")
	assert.Greater(t, width.(float64), 1.0)
	mu.Lock()
	for _, p := range problems {
		// Chromium asks every page for /favicon.ico, which the service has not.
		if !strings.Contains(p, "favicon") {
			t.Errorf("the browser reported: %s", p)
		}
	}
	mu.Unlock()

	cancel()
	require.NoError(t, r.cmd.Process.Signal(syscall.SIGTERM))
	assert.Equal(t, 0, r.exitCode(), "%s", r.stderr)
}
