package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestReadDispatcherToken: the plugin's token file holds the token alone; a
// name before it, several lines or nothing is an error naming the file, never
// a bearer the dispatcher would refuse at every command.
func TestReadDispatcherToken(t *testing.T) {
	tests := []struct {
		name, content, want, wantErr string
	}{
		{name: "token", content: "s3cret\n", want: "s3cret"},
		{name: "token with CRLF", content: "s3cret\r\n", want: "s3cret"},
		{name: "empty", content: " \n", wantErr: "empty"},
		{name: "name and token", content: "plugin s3cret\n", wantErr: "want the token alone"},
		{name: "two lines", content: "s3cret\nother\n", wantErr: "want the token alone"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "token")
			if err := os.WriteFile(path, []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			got, err := readDispatcherToken(path)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), path) {
					t.Fatalf("error %v, want one naming %s with %q", err, path, tc.wantErr)
				}
				if strings.Contains(err.Error(), "s3cret") {
					t.Errorf("error %q shows the token", err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("readDispatcherToken = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}
