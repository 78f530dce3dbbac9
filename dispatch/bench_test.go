package dispatch

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/table"
)

func BenchmarkLookup(b *testing.B) {
	c := table.NewCache()
	tbl := &table.Table{GeneratedAt: time.Now()}
	for i := 0; i < 30000; i++ {
		tbl.Assignments = append(tbl.Assignments, table.Assignment{Job: fmt.Sprintf("pull-ci-org-repo-main-job-%d", i), Cluster: "build01"})
	}
	c.Replace(tbl)
	d := &Dispatcher{cache: c}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, ok := d.Lookup("pull-ci-org-repo-main-job-12345"); !ok {
			b.Fatal("miss")
		}
	}
}

func BenchmarkAssignHit(b *testing.B) {
	c := table.NewCache()
	c.Replace(&table.Table{Assignments: []table.Assignment{{Job: "j", Cluster: "build01"}}})
	d := &Dispatcher{cache: c}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := d.Assign(ctx, "j", nil, false); err != nil {
			b.Fatal(err)
		}
	}
}
