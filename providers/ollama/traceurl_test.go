package ollama

import (
	"net/url"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestShownURL(t *testing.T) {
	tests := []struct{ base, u, want string }{
		{"http://h:11434", "http://h:11434/api/chat?api_key=x", "http://h:11434/api/chat"},
		{"http://h:11434/", "http://h:11434/api/tags", "http://h:11434/api/tags"},
		{"https://proxy/secret-token/", "https://proxy/secret-token/api/chat", "https://proxy/…/api/chat"},
		{"https://proxy//tok/", "https://proxy/tok/api/chat", "https://proxy/…/api/chat"},
		{"https://proxy/x/../tok", "https://proxy/tok/api/chat", "https://proxy/…/api/chat"},
	}
	for _, tt := range tests {
		base, u := mustParse(t, tt.base), mustParse(t, tt.u)
		assert.Equal(t, tt.want, shownURL(base, u), tt.u)
	}
}

func mustParse(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
