package config

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// fieldErrors collects every error of one file, each prefixed with the file
// and the field path, so that a load reports all problems at once.
type fieldErrors struct {
	prefix string // "dispatcher config _config.yaml"
	errs   []error
}

// add records an error at field.
func (l *fieldErrors) add(field, format string, args ...any) {
	l.errs = append(l.errs, fmt.Errorf("%s: %s: %s", l.prefix, field, fmt.Sprintf(format, args...)))
}

// addErr records an error about the whole file, wrapping err.
func (l *fieldErrors) addErr(err error) {
	l.errs = append(l.errs, fmt.Errorf("%s: %w", l.prefix, err))
}

// err returns the collected errors joined, or nil.
func (l *fieldErrors) err() error {
	return errors.Join(l.errs...)
}

// key renders a map key in a field path: groups["build01"].
func key(field, k string) string {
	return fmt.Sprintf("%s[%q]", field, k)
}

// index renders a list index in a field path: kvm[2].
func index(field string, i int) string {
	return fmt.Sprintf("%s[%d]", field, i)
}

// sortedKeys returns a map's keys in order, so errors come out deterministically.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// dispatcherPrefix and clustersPrefix name a file in error messages.
func dispatcherPrefix(file string) string { return "dispatcher config " + file }
func clustersPrefix(file string) string   { return "cluster config " + file }

// joinQuoted renders names as "a", "b".
func joinQuoted(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = fmt.Sprintf("%q", n)
	}
	return strings.Join(q, ", ")
}
