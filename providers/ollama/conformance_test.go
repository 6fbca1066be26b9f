package ollama_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gleitzeit/gleitzeit/lifecycle"
	"github.com/gleitzeit/gleitzeit/lifecycle/lifecycletest"
	"github.com/gleitzeit/gleitzeit/providers/ollama"
)

// The provider keeps the contract against a server speaking Ollama's API,
// a password in its URL.
func TestTheProviderKeepsTheContract(t *testing.T) {
	s := serve(t)
	url := strings.Replace(s.URL(), "http://", "http://svc:hunter2@", 1)
	lifecycletest.Run(t, func(t *testing.T) lifecycle.Provider {
		p, err := ollama.New(ollama.Config{URL: url})
		require.NoError(t, err)
		return p
	}, lifecycletest.Secret("hunter2"), lifecycletest.Failing(func(t *testing.T) lifecycle.Provider {
		p, err := ollama.New(ollama.Config{URL: "http://svc:hunter2@127.0.0.1:1"})
		require.NoError(t, err)
		return p
	}))
}
