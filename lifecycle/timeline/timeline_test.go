package timeline_test

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"io"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/gleitzeit/gleitzeit/lifecycle"
	"github.com/gleitzeit/gleitzeit/lifecycle/timeline"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// prov is a provider whose cleanup does what it is told.
type prov struct {
	id      string
	cleanup func(context.Context) error
}

func (p *prov) ID() string                       { return p.id }
func (p *prov) Initialize(context.Context) error { return nil }
func (p *prov) Cleanup(ctx context.Context) error {
	if p.cleanup != nil {
		return p.cleanup(ctx)
	}
	return nil
}

// rect is one bar as the SVG draws it.
type rect struct {
	class, result       string
	x, width            float64
	beganUS, durationUS int64
	critical, late      bool
	phase               string
}

// bars reads the SVG back: every bar's <rect>, by phase and provider.
func bars(t *testing.T, svg []byte) map[string]map[string]rect {
	t.Helper()
	out := map[string]map[string]rect{}
	d := xml.NewDecoder(bytes.NewReader(svg))
	phase := ""
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err, "the SVG is well-formed XML")
		se, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		a := map[string]string{}
		for _, at := range se.Attr {
			a[at.Name.Local] = at.Value
		}
		if se.Name.Local == "g" && a["data-phase"] != "" {
			phase = a["data-phase"]
		}
		if se.Name.Local != "rect" || a["data-provider"] == "" {
			continue
		}
		num := func(k string) float64 { f, err := strconv.ParseFloat(a[k], 64); require.NoError(t, err, k); return f }
		r := rect{class: a["class"], result: a["data-result"], x: num("x"), width: num("width"),
			beganUS: int64(num("data-began-us")), durationUS: int64(num("data-duration-us")),
			critical: a["data-critical"] == "true", late: a["data-late"] == "true", phase: phase}
		if out[phase] == nil {
			out[phase] = map[string]rect{}
		}
		require.NotContains(t, out[phase], a["data-provider"])
		out[phase][a["data-provider"]] = r
	}
	return out
}

// A known stop: api waits for cache and db; cache ends after flaky, which
// overruns its 15ms timeout, api's cleanup fails. The bars must say what
// the report says, and mark api, cache, db as the critical path.
func TestTheTimelinesBarsAreTheReports(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	r := lifecycle.NewRegistry()
	require.NoError(t, r.Register(&prov{id: "db"}))
	// cache ends only once flaky has timed out, however late a loaded
	// machine fires that timer: the critical path is cache's by order,
	// not by a margin of time.
	flakyOver := func(context.Context) error {
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			if i := slices.IndexFunc(r.Providers(), func(p lifecycle.ProviderInfo) bool { return p.ID == "flaky" }); i >= 0 &&
				r.Providers()[i].State == lifecycle.StateCleaned {
				break
			}
			time.Sleep(time.Millisecond)
		}
		time.Sleep(time.Millisecond)
		return nil
	}
	require.NoError(t, r.Register(&prov{id: "cache", cleanup: flakyOver}, lifecycle.DependsOn("db")))
	require.NoError(t, r.Register(&prov{id: "flaky", cleanup: func(context.Context) error { <-release; return nil }},
		lifecycle.DependsOn("db"), lifecycle.Timeout(15*time.Millisecond)))
	require.NoError(t, r.Register(&prov{id: "api", cleanup: func(context.Context) error { return errors.New("flush: broken pipe") }},
		lifecycle.DependsOn("db", "cache")))
	require.NoError(t, r.Start(context.Background()))
	require.Error(t, r.Stop(context.Background()))

	tl := timeline.Of(r)
	var buf bytes.Buffer
	require.NoError(t, tl.WriteSVG(&buf))
	got := bars(t, buf.Bytes())

	stop := r.Report()
	require.Len(t, got["stop"], len(stop.Providers))
	for id, o := range stop.Providers {
		b := got["stop"][id]
		assert.Equal(t, o.Result.String(), b.result, id)
		assert.Equal(t, o.Began.Sub(tl.Stop.Began).Microseconds(), b.beganUS, id)
		assert.Equal(t, o.Duration.Microseconds(), b.durationUS, id)
		assert.Contains(t, b.class, "result-"+o.Result.String(), id)
		// Drawn to scale: 600 units for the whole stop.
		took := float64(tl.Stop.Took)
		assert.InDelta(t, 250+600*float64(o.Began.Sub(tl.Stop.Began))/took, b.x, 0.01, id)
		assert.InDelta(t, max(600*float64(o.Duration)/took, 1.5), b.width, 0.01, id)
	}
	assert.Equal(t, "error", got["stop"]["api"].result)
	assert.Equal(t, "timeout", got["stop"]["flaky"].result)
	for id, want := range map[string]bool{"api": true, "cache": true, "db": true, "flaky": false} {
		assert.Equal(t, want, got["stop"][id].critical, "%s on the critical path", id)
		assert.Equal(t, want, strings.Contains(got["stop"][id].class, "critical"), id)
	}
	assert.Equal(t, stop.Providers["db"].End().Sub(tl.Stop.Began), tl.Stop.Took, "the stop ends with db")

	start := r.StartReport()
	require.Len(t, got["start"], 4)
	for id, i := range start.Providers {
		assert.Equal(t, i.Began.Sub(start.Began).Microseconds(), got["start"][id].beganUS, id)
		assert.Equal(t, "ok", got["start"][id].result, id)
	}

	// Grouped by depth, in the order the stop runs them: api (2), then
	// cache and flaky (1), then db (0).
	var order []string
	for _, b := range tl.Stop.Bars {
		order = append(order, b.ID)
	}
	assert.Equal(t, "api", order[0])
	assert.ElementsMatch(t, []string{"cache", "flaky"}, order[1:3])
	assert.Equal(t, "db", order[3])
}

func TestALateResultIsDrawnLateAndANeverBegunOneIsListed(t *testing.T) {
	release := make(chan struct{})
	r := lifecycle.NewRegistry()
	require.NoError(t, r.Register(&prov{id: "slow", cleanup: func(context.Context) error { <-release; return nil }}, lifecycle.Timeout(time.Hour)))
	require.NoError(t, r.Register(&prov{id: `a<b&"c"`}, lifecycle.Staged())) // never started
	require.NoError(t, r.Start(context.Background()))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	require.Error(t, r.Stop(ctx))
	close(release)
	require.Eventually(t, func() bool { return r.Report().Providers["slow"].Late }, 10*time.Second, time.Millisecond)

	var buf bytes.Buffer
	require.NoError(t, timeline.Of(r).WriteSVG(&buf))
	got := bars(t, buf.Bytes())
	assert.True(t, got["stop"]["slow"].late)
	assert.Equal(t, "ok", got["stop"]["slow"].result, "what it finally returned")
	assert.Contains(t, got["stop"]["slow"].class, "late")
	assert.NotContains(t, got["stop"], `a<b&"c"`, "it never began: no bar")
	assert.Contains(t, buf.String(), `data-provider="a&lt;b&amp;&#34;c&#34;" data-result="skipped"`)
	assert.Contains(t, buf.String(), "never initialized")
	assert.NotContains(t, buf.String(), "registered while running", "never initialized is not joined")
}

func TestATimelineBeforeAnyStopSaysSo(t *testing.T) {
	r := lifecycle.NewRegistry()
	require.NoError(t, r.Register(&prov{id: "db"}))
	var buf bytes.Buffer
	require.NoError(t, timeline.Of(r).WriteSVG(&buf))
	assert.Contains(t, buf.String(), "Start: none yet")
	assert.Contains(t, buf.String(), "Stop: none yet")
	require.NoError(t, r.Start(context.Background()))
	buf.Reset()
	require.NoError(t, timeline.Of(r).WriteSVG(&buf))
	assert.Len(t, bars(t, buf.Bytes())["start"], 1)
	assert.Contains(t, buf.String(), "Stop: none yet")

	// One registered while the registry runs is the stop's, not the start's.
	require.NoError(t, r.Register(&prov{id: "joined"}))
	require.NoError(t, r.Stop(context.Background()))
	buf.Reset()
	require.NoError(t, timeline.Of(r).WriteSVG(&buf))
	got := bars(t, buf.Bytes())
	assert.Len(t, got["start"], 1)
	assert.Len(t, got["stop"], 2)
	assert.Contains(t, buf.String(), "(1 more registered while running, in the stop only)")
}
