package process_test

import (
	"context"
	"testing"

	"github.com/sourcegraph/jsonrpc2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gleitzeit/gleitzeit/internal/rpctest"
	"github.com/gleitzeit/gleitzeit/internal/testkit"
	"github.com/gleitzeit/gleitzeit/providers/process"
)

// answerAll is a handler that breaks JSON-RPC: it answers notifications
// too. It shows that the child's count of stray responses sees one.
type answerAll struct{}

func (answerAll) Handle(ctx context.Context, conn *jsonrpc2.Conn, req *jsonrpc2.Request) {
	_ = conn.Reply(ctx, req.ID, "answered")
}

// Without a Handler, the child's requests are refused with method not
// found and its notifications get no answer at all.
func TestChildTrafficIsRefusedWithoutAHandler(t *testing.T) {
	p := start(t, rpctest.Server, false, process.Config{})
	var got struct {
		Error struct {
			Code    int64
			Message string
		}
	}
	require.NoError(t, p.Call(context.Background(), "ask", []string{"roots/list"}, &got))
	assert.EqualValues(t, jsonrpc2.CodeMethodNotFound, got.Error.Code)
	assert.Equal(t, "the client serves no methods", got.Error.Message)

	require.NoError(t, p.Call(context.Background(), "tell", []string{"note"}, nil))
	// The child read any answer to "note" before this call, sent after it.
	var strays int
	require.NoError(t, p.Call(context.Background(), "strays", nil, &strays))
	assert.Zero(t, strays, "a notification was answered")
}

// The child counts answers to its notifications: the check above can fail.
func TestAnAnsweredNotificationIsSeen(t *testing.T) {
	p := start(t, rpctest.Server, false, process.Config{Handler: answerAll{}})
	require.NoError(t, p.Call(context.Background(), "tell", []string{"note"}, nil))
	var strays int
	require.NoError(t, p.Call(context.Background(), "strays", nil, &strays))
	assert.Equal(t, 1, strays)
}

// A Handler gets the child's requests, whose answers go back to it, and its
// notifications, in the order they were sent.
func TestHandlerGetsTheChildsTraffic(t *testing.T) {
	var journal testkit.Journal
	handler := jsonrpc2.HandlerWithError(func(_ context.Context, _ *jsonrpc2.Conn, req *jsonrpc2.Request) (any, error) {
		if req.Notif {
			journal.Add("notification " + req.Method)
			return nil, nil
		}
		journal.Add("request " + req.Method)
		return map[string]string{"got": req.Method}, nil
	})
	p := start(t, rpctest.Server, false, process.Config{Handler: handler})

	var got struct{ Result map[string]string }
	require.NoError(t, p.Call(context.Background(), "ask", []string{"hello"}, &got))
	assert.Equal(t, map[string]string{"got": "hello"}, got.Result)
	// The child sends "note" before its answer to "tell", and the handler
	// runs on the goroutine that reads both, so it has seen "note" by now.
	require.NoError(t, p.Call(context.Background(), "tell", []string{"note"}, nil))
	assert.Equal(t, []string{"request hello", "notification note"}, journal.All())
}

// Notifications reach the child in order; one whose context has ended is
// not sent.
func TestNotifyReachesTheChild(t *testing.T) {
	p := start(t, rpctest.Server, false, process.Config{})
	ended, cancel := context.WithCancel(context.Background())
	cancel()
	require.NoError(t, p.Notify(context.Background(), "first", map[string]int{"n": 1}))
	require.ErrorIs(t, p.Notify(ended, "lost", nil), context.Canceled)
	require.NoError(t, p.Notify(context.Background(), "second", nil))

	var heard []string
	require.NoError(t, p.Call(context.Background(), "heard", nil, &heard))
	assert.Equal(t, []string{"first", "second"}, heard)

	require.NoError(t, p.Cleanup(context.Background()))
	require.ErrorIs(t, p.Notify(context.Background(), "late", nil), process.ErrClosed)
}

func TestNotifyBeforeInitializeFails(t *testing.T) {
	argv, env := rpctest.Command(rpctest.Server, false)
	p, err := process.New(process.Config{Command: argv, Env: env})
	require.NoError(t, err)
	require.ErrorIs(t, p.Notify(context.Background(), "early", nil), process.ErrClosed)
}

// A caller that picks a request's id, to name the request later, sends it
// with that id.
func TestCallSendsAPickedID(t *testing.T) {
	p := start(t, rpctest.Server, false, process.Config{})
	tests := []struct {
		name string
		give jsonrpc2.ID
		want any
	}{
		{"string", jsonrpc2.ID{Str: "mine-7", IsString: true}, "mine-7"},
		{"number", jsonrpc2.ID{Num: 1000}, float64(1000)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got any
			require.NoError(t, p.Call(context.Background(), "id", nil, &got, jsonrpc2.PickID(tt.give)))
			assert.Equal(t, tt.want, got)
		})
	}
}

// A call whose context has ended is not sent: the child never sees it.
func TestCallWithAnEndedContextIsNotSent(t *testing.T) {
	var journal testkit.Journal
	handler := jsonrpc2.HandlerWithError(func(_ context.Context, _ *jsonrpc2.Conn, req *jsonrpc2.Request) (any, error) {
		journal.Add(req.Method)
		return nil, nil
	})
	p := start(t, rpctest.Server, false, process.Config{Handler: handler})
	ended, cancel := context.WithCancel(context.Background())
	cancel()
	require.ErrorIs(t, p.Call(ended, "tell", []string{"sent"}, nil), context.Canceled)
	require.NoError(t, p.Call(context.Background(), "tell", []string{"after"}, nil))
	assert.Equal(t, []string{"after"}, journal.All())
}
