package config

import (
	"errors"
	"strings"
	"testing"
)

// assertErrors checks that err holds exactly one joined error per want, in
// order, each starting with its want (which names file, field and value).
func assertErrors(t *testing.T, err error, want []string) {
	t.Helper()
	if len(want) == 0 {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return
	}
	if err == nil {
		t.Fatalf("no error, want %d:\n%s", len(want), strings.Join(want, "\n"))
	}
	var got []string
	if joined, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range joined.Unwrap() {
			got = append(got, e.Error())
		}
	} else {
		got = []string{err.Error()}
	}
	if len(got) != len(want) {
		t.Fatalf("got %d errors, want %d:\n%s", len(got), len(want), err)
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("error %d:\n got %s\nwant %s...", i, got[i], want[i])
		}
	}
	if errors.Unwrap(err) != nil {
		t.Errorf("joined error should not have a single Unwrap: %v", err)
	}
}
