package kubestate

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/table"
)

func TestMetrics(t *testing.T) {
	needAPI(t)
	ns := newNamespace(t)
	reg := prometheus.NewPedanticRegistry()
	opts := testOptions(ns, "replica-a")
	opts.Registerer = reg
	b := startBackend(t, apiConfig, opts)
	b.Watch(newFakeReplica(smallTable(), nil))
	runBackend(t, b, true, nil)
	eventually(t, 10*time.Second, "a publication", func() bool { return b.Status().PublicationServed > 0 })
	ctx := context.Background()
	if _, err := b.Claim(ctx, table.Assignment{Job: "j", Cluster: "build01"}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Claim(ctx, table.Assignment{Job: "j", Cluster: "build02"}, nil); err != nil {
		t.Fatal(err)
	}
	want := `
# HELP prowjob_dispatcher_leader 1 while this replica leads (holds the Lease), else 0.
# TYPE prowjob_dispatcher_leader gauge
prowjob_dispatcher_leader 1
# HELP prowjob_dispatcher_pending_claims Rows placed at admission whose JobPlacement could not be written yet and is being retried.
# TYPE prowjob_dispatcher_pending_claims gauge
prowjob_dispatcher_pending_claims 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "prowjob_dispatcher_leader", "prowjob_dispatcher_pending_claims"); err != nil {
		t.Error(err)
	}
	for _, c := range []struct {
		kind, result string
		atLeast      float64
	}{
		{kindJobPlacement, resultOK, 1}, {kindJobPlacement, resultExists, 1}, {kindTableShard, resultOK, DefaultShards}, {kindDispatcherReplica, resultOK, 1},
	} {
		if got := testutil.ToFloat64(b.k.metrics.writes.WithLabelValues(c.kind, c.result)); got < c.atLeast {
			t.Errorf("kube_writes_total{kind=%q,result=%q} = %v, want at least %v", c.kind, c.result, got, c.atLeast)
		}
	}
	if got := testutil.ToFloat64(b.k.metrics.publications.WithLabelValues(resultOK)); got != 1 {
		t.Errorf("table_publications_total{result=ok} = %v, want 1", got)
	}
	if _, err := New(apiConfig, opts); err == nil {
		t.Error("a second backend registered the same metrics")
	}
}
