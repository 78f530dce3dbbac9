package admission

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/go-logr/logr"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/table"
)

// cacheAdmitter answers admission from a table.Cache, as *dispatch.Dispatcher
// does for a job the table holds.
type cacheAdmitter struct{ cache *table.Cache }

func (c cacheAdmitter) Admit(_ context.Context, req dispatch.AdmissionRequest) (dispatch.Decision, error) {
	if req.Agent != "kubernetes" {
		return dispatch.Decision{Reason: table.ReasonAgent}, nil
	}
	a, ok := c.cache.Lookup(req.Job)
	if !ok {
		return dispatch.Decision{}, errors.New("unknown job")
	}
	return dispatch.Decision{Cluster: a.Cluster, Reason: a.Reason, Patch: a.Cluster != req.Cluster}, nil
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
	a, err := NewHandler(cacheAdmitter{cache}, nil, logr.Discard())
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
