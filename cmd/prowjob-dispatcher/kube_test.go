package main

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestKubeFlagsNeedTheReplicaSecret: replicas sharing state forward writes
// to the leader, which they can only authenticate with a shared secret.
func TestKubeFlagsNeedTheReplicaSecret(t *testing.T) {
	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secret, []byte(strings.Repeat("s", 40)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	short := filepath.Join(t.TempDir(), "short")
	if err := os.WriteFile(short, []byte("short\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		args    []string
		wantErr string // of validate, then of replicaAuth
	}{
		{name: "file backend needs none", args: []string{"--state-backend=file"}},
		{name: "kubernetes without a secret", args: []string{"--state-backend=kubernetes"}, wantErr: "needs --replica-secret-file"},
		{name: "kubernetes with a secret", args: []string{"--state-backend=kubernetes", "--replica-secret-file=" + secret}},
		{name: "a secret too short", args: []string{"--state-backend=kubernetes", "--replica-secret-file=" + short}, wantErr: "at least 32"},
		{name: "a missing secret file", args: []string{"--state-backend=kubernetes", "--replica-secret-file=" + secret + ".missing"}, wantErr: "no such file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var f kubeFlags
			fs := flag.NewFlagSet("serve", flag.ContinueOnError)
			f.AddFlags(fs)
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			err := f.Validate()
			if err == nil && f.enabled() {
				_, err = f.replicaAuth()
			}
			if (tc.wantErr == "" && err != nil) || (tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr))) {
				t.Errorf("%v, want %q", err, tc.wantErr)
			}
		})
	}
}
