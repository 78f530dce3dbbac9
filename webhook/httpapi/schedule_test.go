package httpapi

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	prowv1 "sigs.k8s.io/prow/pkg/apis/prowjobs/v1"
	"sigs.k8s.io/prow/pkg/config"
	"sigs.k8s.io/prow/pkg/scheduler/strategy"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/webhook/api"
)

// TestProwExternalStrategy asks the API with Prow's own `external`
// scheduling client, as prow-controller-manager's scheduler does: a job of
// the table gets its cluster, and any other answer leaves Prow with the
// ProwJob's own spec.cluster.
func TestProwExternalStrategy(t *testing.T) {
	srv := startAPI(t, newFakeBackend())
	down := httptest.NewServer(nil)
	down.Close()

	cases := []struct {
		name, url, job, specCluster, want string
	}{
		{name: "a job of the table", url: srv.URL + api.SchedulePath, job: unitJob, specCluster: "default", want: "build01"},
		{name: "a capability job", url: srv.URL + api.SchedulePath, job: armJob, specCluster: "default", want: "build05"},
		{name: "a job the table lacks keeps spec.cluster", url: srv.URL + api.SchedulePath, job: "rehearse-1-unit", specCluster: "build03", want: "build03"},
		{name: "the API down keeps spec.cluster", url: down.URL + api.SchedulePath, job: unitJob, specCluster: "build03", want: "build03"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ext := strategy.NewExternal(config.ExternalScheduling{
				URL: tc.url,
				Cache: config.ExternalSchedulingCache{
					EntryTimeoutInterval: &metav1.Duration{Duration: time.Minute},
					CleanupInterval:      &metav1.Duration{Duration: time.Minute},
				},
			}, logrus.NewEntry(logrus.New()))
			pj := &prowv1.ProwJob{Spec: prowv1.ProwJobSpec{Job: tc.job, Cluster: tc.specCluster}}
			got, err := ext.Schedule(context.Background(), pj)
			if err != nil {
				t.Fatalf("Schedule: %v", err)
			}
			if got.Cluster != tc.want {
				t.Errorf("cluster = %q, want %q", got.Cluster, tc.want)
			}
		})
	}
}
