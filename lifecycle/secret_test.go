package lifecycle_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/gleitzeit/gleitzeit/lifecycle"
)

const secret = "hunter2-s3cr3t"

func TestRedact(t *testing.T) {
	tests := []struct {
		give string
		want string
	}{
		{"dial postgres://app:" + secret + "@db:5432/app?sslmode=disable: refused",
			"dial postgres://app:xxxxx@db:5432/app?sslmode=disable: refused"},
		{`parse "https://user:` + secret + `@host/path": invalid`, `parse "https://user:xxxxx@host/path": invalid`},
		{"host=db user=app password=" + secret + " dbname=app", "host=db user=app password=xxxxx dbname=app"},
		{"host=db password='" + secret + " x' dbname=app", "host=db password=xxxxx dbname=app"},
		{"GET http://ollama:11434/api/tags?api_key=" + secret + "&x=1", "GET http://ollama:11434/api/tags?api_key=xxxxx&x=1"},
		{"app:" + secret + "@tcp(db:3306)/app", "app:xxxxx@tcp(db:3306)/app"},
		{`{"token": "` + secret + `"}`, `{"token": "xxxxx"}`},
		{"Authorization: Bearer " + secret, "Authorization: Bearer xxxxx"},
		{"access_token=" + secret, "access_token=xxxxx"},
		{"PASSWORD=" + secret, "PASSWORD=xxxxx"},
		{"sslpassword=" + secret, "sslpassword=xxxxx"},
		{"nothing to hide here: connection refused", "nothing to hide here: connection refused"},
		{"postgres://app@db:5432/app", "postgres://app@db:5432/app"},
		{`parse "postgres://app:pa/` + secret + `@db/app": invalid port`, `parse "postgres://app:xxxxx@db/app": invalid port`},
		{"host=db%20user=app%20password=" + secret, "host=db%20user=app%20password=xxxxx"},
		{"http://ollama:11434/api/generate", "http://ollama:11434/api/generate"},
		// A token as a URL's user, a password holding an "@", a space or
		// a "?" unescaped.
		{"Get \"https://" + secret + "@api.example/v1\": refused", "Get \"https://xxxxx@api.example/v1\": refused"},
		{"dial http://" + secret + "@127.0.0.1:1/api/version", "dial http://xxxxx@127.0.0.1:1/api/version"},
		{"postgres://gz:p@" + secret + "@127.0.0.1:1/db", "postgres://gz:xxxxx@127.0.0.1:1/db"},
		{"postgres://gz@" + secret + "@127.0.0.1:1/db: lookup " + secret + "@127.0.0.1: no such host", "postgres://gz:xxxxx@127.0.0.1:1/db: lookup xxxxx@127.0.0.1: no such host"},
		{`parse "http://u:SEC ` + secret + `@x:1": net/url: invalid userinfo`, `parse "http://u:xxxxx@x:1": net/url: invalid userinfo`},
		{`parse "http://u:ab?` + secret + `@x:1": invalid port`, `parse "http://u:xxxxx@x:1": invalid port`},
		{"see http://host/a?mail=me@example.org", "see http://host/a?mail=me@example.org"},
		// What is not user information keeps its host.
		{`Get "https://medium.com/@user/feed": refused`, `Get "https://medium.com/@user/feed": refused`},
		{`fetch "https://example.com/path?email=bob@example.com"`, `fetch "https://example.com/path?email=bob@example.com"`},
		{"url=https://example.com,contact=a@b.c", "url=https://example.com,contact=a@b.c"},
		{"ssh://git@github.com/o/r", "ssh://git@github.com/o/r"},
		{"https://u:" + secret + "@host/p?mail=bob@example.com", "https://u:xxxxx@host/p?mail=bob@example.com"},
	}
	for _, tt := range tests {
		t.Run(tt.give, func(t *testing.T) {
			got := lifecycle.Redact(tt.give)
			assert.Equal(t, tt.want, got)
			assert.NotContains(t, got, secret)
		})
	}
}

// secretive is a provider that leaks its DSN everywhere it can: in errors,
// panics, health messages and resources.
type secretive struct {
	id  string
	dsn string
	how string
}

func (s *secretive) ID() string { return s.id }

func (s *secretive) Initialize(context.Context) error { return nil }

func (s *secretive) Cleanup(ctx context.Context) error {
	switch s.how {
	case "panic":
		panic("cannot close " + s.dsn)
	case "timeout":
		<-ctx.Done()
		return fmt.Errorf("close %s: %w", s.dsn, ctx.Err())
	}
	return fmt.Errorf("close %s: broken pipe", s.dsn)
}

func (s *secretive) HealthCheck(context.Context) lifecycle.Health {
	u, _ := url.Parse(s.dsn)
	return lifecycle.Health{
		Status:  lifecycle.StatusDegraded,
		Message: "pinging " + s.dsn,
		Resources: map[string]any{
			"dsn":   s.dsn,
			"url":   u,
			"error": errors.New("auth failed for " + s.dsn),
		},
	}
}

// Property 12: no log line, health message, resource or report carries a
// secret from a URL or DSN. On synctest's clock the 20ms timeout passes
// only while every goroutine waits: only the cleanup that waits for its
// context times out, however slowly the machine runs the others.
func TestSecretsStaySecret(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		core, logs := observer.New(zapcore.DebugLevel)
		obs := &events{}
		r := lifecycle.NewRegistry(lifecycle.WithLogger(zap.New(core)), lifecycle.WithObserver(obs),
			lifecycle.WithDefaultTimeout(20*time.Millisecond))
		providers := []*secretive{
			{id: "pg", dsn: "postgres://app:" + secret + "@db:5432/app", how: "error"},
			{id: "ollama", dsn: "http://admin:" + secret + "@ollama:11434", how: "panic"},
			{id: "libpq", dsn: "host=db user=app password=" + secret, how: "timeout"},
		}
		for _, p := range providers {
			mustRegister(t, r, p)
		}
		broken := newFake("broken", &journal{})
		broken.initialize = failing(errors.New("connect postgres://app:" + secret + "@db/app: refused"))
		require.NoError(t, r.Start(context.Background()))
		require.Error(t, r.Register(broken), "late registration fails and rolls back")

		health := r.Health(context.Background())
		for id, h := range health.Providers {
			assert.NotContains(t, h.Message, secret, id)
			for k, v := range h.Resources {
				assert.NotContains(t, fmt.Sprint(v), secret, "%s resource %s", id, k)
			}
		}

		err := r.Stop(context.Background())
		require.Error(t, err)
		assert.NotContains(t, err.Error(), secret)
		for _, id := range []string{"pg", "ollama", "libpq"} {
			assert.Contains(t, err.Error(), `provider "`+id+`"`)
		}
		for id, o := range r.Report().Providers {
			if o.Err != nil {
				assert.NotContains(t, o.Err.Error(), secret, id)
			}
		}
		// Every event an observer sees, printed in full.
		synctest.Wait()
		require.NotEmpty(t, logs.FilterMessage("provider returned after the registry stopped waiting").All(), "the timed-out cleanup returns late")
		for _, e := range obs.snapshot() {
			assert.NotContains(t, fmt.Sprintf("%+v", e), secret)
		}
		// Every log line, encoded as production would encode it.
		enc := zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
		require.NotZero(t, logs.Len())
		for _, entry := range logs.All() {
			buf, err := enc.EncodeEntry(entry.Entry, entry.Context)
			require.NoError(t, err)
			line := buf.String()
			assert.False(t, strings.Contains(line, secret), "log line leaks a secret: %s", line)
		}
	})
}

func TestRedactErrorKeepsTheChain(t *testing.T) {
	cause := fmt.Errorf("dial postgres://app:%s@db/app: %w", secret, context.DeadlineExceeded)
	err := lifecycle.RedactError(cause)
	assert.NotContains(t, err.Error(), secret)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Nil(t, lifecycle.RedactError(nil))
}

func TestOutcomeAndHealthJSON(t *testing.T) {
	o := lifecycle.Outcome{Method: "Cleanup", Result: lifecycle.ResultError, Duration: 1500 * time.Microsecond,
		Err: errors.New("close postgres://app:" + secret + "@db/app: broken pipe")}
	b, err := json.Marshal(o)
	require.NoError(t, err)
	assert.JSONEq(t, `{"method":"Cleanup","result":"error","duration_ms":1.5,"error":"close postgres://app:xxxxx@db/app: broken pipe"}`, string(b))
	b, err = json.Marshal(lifecycle.Health{Status: lifecycle.StatusDegraded, Message: "slow", Resources: map[string]any{"n": 1}})
	require.NoError(t, err)
	assert.JSONEq(t, `{"status":"degraded","message":"slow","resources":{"n":1}}`, string(b))

	var back lifecycle.Outcome
	b, _ = json.Marshal(o)
	require.NoError(t, json.Unmarshal(b, &back))
	assert.Equal(t, o.Method, back.Method)
	assert.Equal(t, o.Result, back.Result)
	assert.Equal(t, o.Duration, back.Duration)
	assert.EqualError(t, back.Err, lifecycle.Redact(o.Err.Error()))
	var h lifecycle.Health
	require.NoError(t, json.Unmarshal([]byte(`{"status":"unhealthy"}`), &h))
	assert.Equal(t, lifecycle.StatusUnhealthy, h.Status)
	require.Error(t, json.Unmarshal([]byte(`{"status":"sick"}`), &h))
}
