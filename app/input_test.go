package app

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gleitzeit/gleitzeit/app/config"
	"github.com/gleitzeit/gleitzeit/app/taskstore"
	"github.com/gleitzeit/gleitzeit/internal/pgtest"
	"github.com/gleitzeit/gleitzeit/internal/testkit"
	"github.com/gleitzeit/gleitzeit/providers/sqldb"
)

// databaseWords are what a database's own errors say, which no answer may
// carry: PostgreSQL's codes and messages, its driver's, SQLite's.
var databaseWords = []string{"SQLSTATE", "invalid byte sequence", "pgx", "pgconn", "postgres", "dial", "connect",
	"sqlite", "SQL logic", "no such table", "sql:", "database"}

func assertNoDatabaseWords(t *testing.T, body string) {
	t.Helper()
	for _, w := range databaseWords {
		assert.NotContains(t, strings.ToLower(body), strings.ToLower(w), "the answer carries the database's words: %s", body)
	}
}

// storeDSNs are the task stores a test runs the service on: a SQLite file
// in its data_dir, and a database of its own on the tests' PostgreSQL.
func storeDSNs(t *testing.T) map[string]string {
	t.Helper()
	return map[string]string{sqldb.SQLite: "", sqldb.Postgres: emptyStores(t)[sqldb.Postgres].dsn}
}

func storeConfig(dsn string) string {
	if dsn == "" {
		return ""
	}
	return fmt.Sprintf("store: {dsn: %q}\n", dsn)
}

// rows counts the tasks in the service's store.
func (s *service) rows() int {
	s.t.Helper()
	db, err := s.engine.store.DB()
	require.NoError(s.t, err)
	var n int
	require.NoError(s.t, db.QueryRow(`SELECT count(*) FROM tasks`).Scan(&n))
	return n
}

// A task is checked before it costs a row or an audit
// line. A protocol of 1 MB is 400, answered in a few hundred bytes; one no
// template serves is 404; neither is stored or audited, on either store.
func TestTaskInputIsCheckedBeforeItIsRecorded(t *testing.T) {
	for driver, dsn := range storeDSNs(t) {
		t.Run(driver, func(t *testing.T) {
			s := start(t, storeConfig(dsn))
			s.waitHealthy()
			code, _, msg := s.task("echo/v1", "echo", []int{1})
			require.Equal(t, 200, code, msg)

			huge := strings.Repeat("x", maxBody-100)
			refused := map[string]struct {
				body string
				code int
			}{
				"a protocol of 1 MB":          {`{"protocol":"` + huge + `","method":"echo"}`, 400},
				"a method of 1 MB":            {`{"protocol":"echo/v1","method":"` + huge + `"}`, 400},
				"a timeout of 1 MB":           {`{"protocol":"echo/v1","method":"echo","timeout":"` + huge + `"}`, 400},
				"an unknown field of 1 MB":    {`{"protocol":"echo/v1","method":"echo","` + huge + `":1}`, 400},
				"a protocol of 65 bytes":      {`{"protocol":"` + strings.Repeat("p", config.MaxNameLen+1) + `","method":"echo"}`, 400},
				"NUL in the protocol":         {`{"protocol":"echo/v1\u0000","method":"echo"}`, 400},
				"NUL in the method":           {`{"protocol":"echo/v1","method":"ec\u0000ho"}`, 400},
				"NUL in the timeout":          {`{"protocol":"echo/v1","method":"echo","timeout":"1s\u0000"}`, 400},
				"invalid UTF-8 in the method": {`{"protocol":"echo/v1","method":"echo` + "\xff\xfe" + `"}`, 400},
				"a newline in the method":     {`{"protocol":"echo/v1","method":"echo\n"}`, 400},
				"a protocol none serves":      {`{"protocol":"sql/v1","method":"query"}`, 404},
				"a long protocol none serves": {`{"protocol":"` + strings.Repeat("q", config.MaxNameLen) + `","method":"query"}`, 404},
			}
			for name, r := range refused {
				code, answer := s.rawPost(strings.NewReader(r.body), nil)
				assert.Equal(t, r.code, code, "%s: %.300s", name, answer)
				assert.Less(t, len(answer), 2*maxAnswerError, "%s: the answer echoes the request: %.300s", name, answer)
				assert.NotContains(t, answer, `"id"`, "%s: a task refused before it was recorded has no id", name)
			}
			_, answer := s.rawPost(strings.NewReader(refused["a protocol of 1 MB"].body), nil)
			assert.Contains(t, answer, `protocol \"`+strings.Repeat("x", quotedLen)+`\"…`, "the answer quotes a bounded prefix")
			_, answer = s.rawPost(strings.NewReader(refused["NUL in the method"].body), nil)
			assert.Contains(t, answer, `method \"ec\\x00ho\"`, "the answer escapes what it quotes")

			code, _, msg = s.task("echo/v1", "echo", []int{2})
			require.Equal(t, 200, code, msg)
			assert.Equal(t, 2, s.rows(), "only the two tasks that ran are stored")
			s.stop() // flushes the audit log
			lines := auditLines(t, s.settings.AuditPath)
			assert.Len(t, lines, 4, "only the two tasks that ran are audited: %s", lines)
			for _, l := range lines {
				assert.Contains(t, l, `"protocol":"echo/v1"`)
				assert.Less(t, len(l), 512)
			}
		})
	}
}

// An answer quotes a bounded part of what a client sent, escaped, and the
// store keeps a bounded text with nothing PostgreSQL refuses. (The names
// the service takes are app/config's TestNamesAreShortIdentifiers.)
func TestQuotesAndStoredTextAreBounded(t *testing.T) {
	assert.Equal(t, `"`+strings.Repeat("é", quotedLen/2)+`"…`, quote(strings.Repeat("é", 100)), "never half a character")
	assert.Equal(t, `"a\x00b\xff"`, quote("a\x00b\xff"))
	assert.Equal(t, "a\uFFFDb\uFFFD", boundText("a\x00b\xff"), "what PostgreSQL refuses is not stored")
	assert.Equal(t, strings.Repeat("é", maxAnswerError/2)+"…", boundText(strings.Repeat("é", maxAnswerError)))
}

// On PostgreSQL, bad input is a 4xx that carries none of
// the database's words: NUL in a method or protocol is refused before the
// store sees it; a lookup of an id the service never makes does not reach
// the store. A NUL in params is the provider's to refuse: its error, which
// quotes it, is recorded like any other.
func TestPostgresBadInputIsAClientError(t *testing.T) {
	s := start(t, storeConfig(storeDSNs(t)[sqldb.Postgres]))
	s.waitHealthy()
	for name, body := range map[string]string{
		"NUL in the method":   `{"protocol":"llm/v1","method":"gen\u0000erate","params":{"model":"llama3.2","prompt":"x"}}`,
		"NUL in the protocol": `{"protocol":"llm/v1\u0000","method":"generate","params":{"model":"llama3.2","prompt":"x"}}`,
		"NUL alone":           `{"protocol":"\u0000","method":"\u0000"}`,
	} {
		code, answer := s.rawPost(strings.NewReader(body), nil)
		assert.Equal(t, 400, code, "%s: %s", name, answer)
		assertNoDatabaseWords(t, answer)
	}
	for _, path := range []string{"/v1/tasks/%00", "/v1/tasks/%00%00", "/v1/tasks/%FF", "/v1/tasks/" + strings.Repeat("A", 24),
		"/v1/tasks/" + strings.Repeat("a", 4000)} {
		resp, err := http.Get(s.base + path)
		require.NoError(t, err)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		assert.Equal(t, 404, resp.StatusCode, "%s: %s", path, b)
		assert.Contains(t, string(b), "no such task")
		assertNoDatabaseWords(t, string(b))
	}

	code, rec, msg := s.task("llm/v1", "generate", map[string]any{"model": "nope\u0000", "prompt": "x"})
	assert.Equal(t, 404, code, "the provider's own 404, recorded: %s", msg)
	assert.Equal(t, "error", rec.Status)
	assertNoDatabaseWords(t, msg)
	var stored taskstore.Record
	require.Equal(t, 200, s.call("GET", "/v1/tasks/"+rec.ID, "", nil, &stored))
	assert.Equal(t, "error", stored.Status)
	assert.NotContains(t, stored.Error, "\x00")
	assert.Equal(t, 1, s.rows())
}

// While PostgreSQL is down, every endpoint that needs
// the store answers 503 without the database's words, and logs them.
func TestStoreDownIs503OnEveryEndpointThatNeedsIt(t *testing.T) {
	pg, err := pgtest.Start() // its own server: this test stops it
	require.NoError(t, err)
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			pg.Stop()
		}
	})
	s := start(t, storeConfig(pg.DSN("postgres")))
	s.waitHealthy()
	code, rec, msg := s.task("echo/v1", "echo", []int{1})
	require.Equal(t, 200, code, msg)

	pg.Stop()
	stopped = true

	resp, err := http.Get(s.base + "/v1/tasks/" + rec.ID)
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, 503, resp.StatusCode, "a lookup while the store is down: %s", b)
	assert.Contains(t, string(b), "the task store is unavailable")
	assertNoDatabaseWords(t, string(b))

	code, answer := s.rawPost(strings.NewReader(`{"protocol":"echo/v1","method":"echo","params":[1]}`), nil)
	assert.Equal(t, 503, code, answer)
	assert.Contains(t, answer, "the task store is unavailable")
	assert.NotContains(t, answer, `"id"`)
	assertNoDatabaseWords(t, answer)

	var readyBody string
	require.Eventually(t, func() bool { c, b := s.rawReady(); readyBody = b; return c == 503 }, testkit.Wait, 20*time.Millisecond,
		"readiness needs the store")
	assert.Contains(t, readyBody, "the task store is unavailable")
	assertNoDatabaseWords(t, readyBody)
	assert.NotContains(t, readyBody, "connect", "/readyz answers anyone: the database's words are for the log")
	var providers struct{ Providers []ProviderView }
	assert.Equal(t, 200, s.call("GET", "/v1/providers", "", nil, &providers), "the provider list does not need the store")

	require.Eventually(t, func() bool {
		return strings.Contains(s.logs.String(), "task record failed: the task could not be looked up")
	},
		testkit.Wait, 10*time.Millisecond, "the store's error is logged")
	assert.Contains(t, s.logs.String(), "connect", "the log has the database's own error")
	assert.NotContains(t, s.logs.String(), pg.Password)
}

// Task_token guards the task endpoints (401 with
// WWW-Authenticate), and only it: the admin token is not a task token.
func TestTaskTokenGuardsTasks(t *testing.T) {
	const taskToken = "t4sk-t0ken"
	s := start(t, "admin_token: "+token+"\ntask_token: "+taskToken+"\n")
	s.waitHealthy()
	body := map[string]any{"protocol": "echo/v1", "method": "echo", "params": []int{1}}
	for _, tok := range []string{"", "wrong", token, taskToken + "x"} {
		var out map[string]any
		assert.Equal(t, 401, s.call("POST", "/v1/tasks", tok, body, &out), "token %q", tok)
		assert.Contains(t, out["error"], "needs the task token")
	}
	req, err := http.NewRequest("POST", s.base+"/v1/tasks", strings.NewReader(`{"protocol":"echo/v1","method":"echo"}`))
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, 401, resp.StatusCode)
	assert.Equal(t, `Bearer realm="gleitzeit-tasks"`, resp.Header.Get("WWW-Authenticate"))
	assert.Equal(t, 0, s.rows(), "a task without the token is not recorded")
	assert.Equal(t, 5, s.refusedTotal("unauthorized"), "each task refused for its token is counted")

	var rec taskstore.Record
	require.Equal(t, 200, s.call("POST", "/v1/tasks", taskToken, body, &rec))
	assert.Equal(t, "ok", rec.Status)
	assert.Equal(t, 401, s.call("GET", "/v1/tasks/"+rec.ID, "", nil, nil))
	assert.Equal(t, 401, s.call("GET", "/v1/tasks/"+rec.ID, token, nil, nil))
	var stored taskstore.Record
	require.Equal(t, 200, s.call("GET", "/v1/tasks/"+rec.ID, taskToken, nil, &stored))
	assert.Equal(t, rec.ID, stored.ID)
	assert.Equal(t, 200, s.call("GET", "/healthz", "", nil, nil), "the probes need no token")

	s2, err := config.Load(nil, func(k string) string { return map[string]string{"GLEITZEIT_TASK_TOKEN": "from-env"}[k] }, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, "from-env", s2.TaskToken)
}

// A child may answer bytes that are not UTF-8 (here Latin-1's é), which
// PostgreSQL refuses in a text column. The output is made valid (U+FFFD
// for each run of bad bytes) before it is answered and stored, so the answer and
// the store agree, and one odd answer neither fails its task's record nor
// takes the store for unavailable.
func TestAnAnswerThatIsNotUTF8IsAnsweredAndStoredValid(t *testing.T) {
	for driver, dsn := range storeDSNs(t) {
		t.Run(driver, func(t *testing.T) {
			s := start(t, storeConfig(dsn))
			s.waitHealthy()
			code, rec, msg := s.task("echo/v1", "latin1", nil)
			require.Equal(t, 200, code, msg)
			assert.Equal(t, `"caf`+"\uFFFD"+`"`, string(rec.Output))
			var stored taskstore.Record
			require.Equal(t, 200, s.call("GET", "/v1/tasks/"+rec.ID, "", nil, &stored))
			assert.Equal(t, "ok", stored.Status)
			assert.Equal(t, string(rec.Output), string(stored.Output))
			assert.NotContains(t, s.logs.String(), "task store unavailable")
		})
	}
}

// A task's timeout is a number of seconds or a duration string, as a
// client of an HTTP API would write either; anything else is refused with
// an answer that names both forms.
func TestTaskTimeoutTakesSecondsOrADuration(t *testing.T) {
	const limit = time.Minute
	for body, want := range map[string]time.Duration{
		`{"protocol":"echo/v1","method":"echo","timeout":5}`:     5 * time.Second,
		`{"protocol":"echo/v1","method":"echo","timeout":0.25}`:  250 * time.Millisecond,
		`{"protocol":"echo/v1","method":"echo","timeout":"2s"}`:  2 * time.Second,
		`{"protocol":"echo/v1","method":"echo","timeout":3600}`:  limit, // never past task_timeout
		`{"protocol":"echo/v1","method":"echo"}`:                 limit,
		`{"protocol":"echo/v1","method":"echo","timeout":"1m"}`:  limit,
		`{"protocol":"echo/v1","method":"echo","timeout":1e-3}`:  time.Millisecond,
		`{"protocol":"echo/v1","method":"echo","timeout":"90s"}`: limit,
		`{"protocol":"echo/v1","method":"echo","timeout":"5"}`:   5 * time.Second, // the number in quotes, as the refusal below offers it
	} {
		var task Task
		require.NoError(t, json.Unmarshal([]byte(body), &task), body)
		got, err := checkTask(task, limit)
		require.NoError(t, err, body)
		assert.Equal(t, want, got, body)
	}
	for _, body := range []string{
		`{"protocol":"echo/v1","method":"echo","timeout":true}`,
		`{"protocol":"echo/v1","method":"echo","timeout":[5]}`,
	} {
		var task Task
		err := json.Unmarshal([]byte(body), &task)
		require.Error(t, err, body)
		assert.ErrorContains(t, err, `want a number of seconds such as 5, or a duration such as "5s"`)
	}
	for _, body := range []string{
		`{"protocol":"echo/v1","method":"echo","timeout":0}`,
		`{"protocol":"echo/v1","method":"echo","timeout":-5}`,
		`{"protocol":"echo/v1","method":"echo","timeout":"soon"}`,
		`{"protocol":"echo/v1","method":"echo","timeout":1e300}`,
		`{"protocol":"echo/v1","method":"echo","timeout":"-5"}`,
		`{"protocol":"echo/v1","method":"echo","timeout":"1e300"}`,
	} {
		var task Task
		require.NoError(t, json.Unmarshal([]byte(body), &task), body)
		_, err := checkTask(task, limit)
		require.ErrorIs(t, err, errBadRequest, body)
		assert.ErrorContains(t, err, `timeout: want a positive number of seconds such as 5, or a duration such as "5s"`)
	}
}

// A task its providers could never take is the caller's mistake, 400,
// whether or not an instance is up: with the Ollama server down, stream:
// true and an unknown method are 400 as they are while it is up, not
// "come back later", and only a task that could run is 503.
func TestACallersMistakeIs400WhileTheProviderIsDown(t *testing.T) {
	s := start(t, "")
	s.llm.Close()
	require.Eventually(t, func() bool {
		code, _, _ := s.task("llm/v1", "generate", map[string]any{"model": "llama3.2", "prompt": "hi"})
		return code == 503
	}, testkit.Wait, 10*time.Millisecond, "the server's going is noticed")
	code, _, msg := s.task("llm/v1", "generate", map[string]any{"model": "llama3.2", "prompt": "hi", "stream": true})
	assert.Equal(t, 400, code, msg)
	assert.Contains(t, msg, "send the header Accept: text/event-stream")
	code, _, msg = s.task("llm/v1", "nosuch", nil)
	assert.Equal(t, 400, code, msg)
	assert.Contains(t, msg, `llm/v1 has no method "nosuch"`)
}

// MCP requests that lack what they require are refused before they are
// sent: the reference server reports them as its own internal error,
// which would be answered 502 and logged at warn as the provider's failure.
func TestMCPParamsOfTheWrongShapeAre400(t *testing.T) {
	s := startEverythingPool(t, "{min: 1, max: 1, per_instance: 4}")
	for _, tt := range []struct {
		method string
		params any
		want   string
	}{
		{"tools/call", map[string]any{"name": 5}, "params.name of tools/call is a JSON number, not a string"},
		{"tools/call", map[string]any{"arguments": map[string]any{}}, "tools/call needs params.name, a JSON string"},
		{"tools/call", map[string]any{"name": "echo", "arguments": "x"}, "params.arguments of tools/call is a JSON string, not a object"},
		{"tools/call", nil, "tools/call needs params.name"},
		{"prompts/get", map[string]any{}, "prompts/get needs params.name"},
		{"completion/complete", map[string]any{}, "completion/complete needs params.ref"},
	} {
		code, _, msg := s.task("mcp/v1", tt.method, tt.params)
		assert.Equal(t, 400, code, "%s %v: %s", tt.method, tt.params, msg)
		assert.Contains(t, msg, tt.want)
	}
	assert.NotContains(t, s.logs.String(), "task failed", "a caller's mistake is logged at debug")
	code, _, msg := s.task("mcp/v1", "tools/call", map[string]any{"name": "echo", "arguments": map[string]any{"message": "hi"}})
	assert.Equal(t, 200, code, msg)
}
