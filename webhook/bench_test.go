package webhook

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/go-logr/logr"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/table"
)

// cacheAdmitter answers admission from a table.Cache, as *dispatch.Dispatcher does.
type cacheAdmitter struct{ cache *table.Cache }

func (c cacheAdmitter) Status() Status                             { return Status{Ready: true, TableSize: c.cache.Len()} }
func (c cacheAdmitter) Lookup(job string) (table.Assignment, bool) { return c.cache.Lookup(job) }
func (c cacheAdmitter) IsManual(string) bool                       { return false }
func (c cacheAdmitter) RecordAdmission(string)                     {}
func (c cacheAdmitter) Assign(_ context.Context, job string, _ map[string]string, _ bool) (table.Assignment, error) {
	if a, ok := c.cache.Lookup(job); ok {
		return a, nil
	}
	return table.Assignment{}, errors.New("unknown job")
}

// BenchmarkAdmissionHandle measures one admission decision, decoding and
// patching included, against a 50,000-job table (no network; the TLS load
// harness is in ./loadtest).
func BenchmarkAdmissionHandle(b *testing.B) {
	rows := make([]table.Assignment, 50000)
	for i := range rows {
		rows[i] = table.Assignment{Job: fmt.Sprintf("job-%05d", i), Cluster: fmt.Sprintf("build%02d", i%10), Reason: table.ReasonBalanced}
	}
	rows[0].Job = armJob // the fixture's job, on build00
	cache := table.NewCache()
	cache.Replace(&table.Table{GeneratedAt: time.Now(), Assignments: rows})
	a, err := NewAdmission(cacheAdmitter{cache}, nil, logr.Discard())
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name    string
		cluster string
		agent   string
		want    Outcome
	}{
		{"patched", "default", "kubernetes", OutcomePatched},
		{"unchanged", "build00", "kubernetes", OutcomeUnchanged},
		{"not-kubernetes", "default", "jenkins", OutcomeNotKubernetes},
	} {
		b.Run(bc.name, func(b *testing.B) {
			req := request(b, withSpec(map[string]any{"cluster": bc.cluster, "agent": bc.agent}))
			if _, d := a.decide(context.Background(), req); d.outcome != bc.want {
				b.Fatalf("outcome %s, want %s", d.outcome, bc.want)
			}
			b.ReportAllocs()
			for b.Loop() {
				a.Handle(context.Background(), req)
			}
		})
	}
}
