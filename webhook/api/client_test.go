package api

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// The client reads a rotating token once per request through TokenFunc,
// and sends no request whose token it cannot read.
func TestClientTokenFunc(t *testing.T) {
	var (
		mu   sync.Mutex
		seen []string
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Get("Authorization"))
		mu.Unlock()
		_, _ = w.Write([]byte(`{}`))
	}))
	defer srv.Close()
	path := filepath.Join(t.TempDir(), "token")
	write := func(token string) {
		if err := os.WriteFile(path, []byte(token+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	c := &Client{BaseURL: srv.URL, Token: "ignored", TokenFunc: func() (string, error) {
		b, err := os.ReadFile(path)
		return strings.TrimSpace(string(b)), err
	}}
	ctx := context.Background()
	write("first")
	if _, err := c.Dispatch(ctx); err != nil {
		t.Fatal(err)
	}
	write("rotated")
	if _, err := c.Dispatch(ctx); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	_, err := c.Dispatch(ctx)
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "not sent") {
		t.Errorf("with the token file gone: %v, want a 'not sent' error wrapping ErrNotExist", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"Bearer first", "Bearer rotated"}; strings.Join(seen, ",") != strings.Join(want, ",") {
		t.Errorf("Authorization headers %q, want %q", seen, want)
	}
}
