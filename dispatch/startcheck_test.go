package dispatch

import (
	"os"
	"strings"
	"testing"
)

// blockBuild03 edits the env's cluster config to block build03.
func blockBuild03(t *testing.T, e *env) {
	t.Helper()
	data, err := os.ReadFile(e.clusterConfig)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, e.clusterConfig, strings.Replace(string(data), "- name: build03\n", "- name: build03\n  blocked: true\n", 1))
}

// movableOn counts the rows on cluster that the rules may move (balanced
// by capacity, by capability, kvm or no-builds).
func movableOn(d *Dispatcher, cluster string) int {
	n := 0
	for _, a := range d.cache.Snapshot().Assignments {
		if a.Cluster == cluster && a.Reason != "override" && a.Reason != "cluster-job" && a.Reason != "manual" &&
			a.Reason != "ssh-bastion" && a.Reason != "default" {
			n++
		}
	}
	return n
}

// A table loaded at start (from the state dir, or a follower's from the
// shared state) is held to the configs as they are now: rows the rules may
// move, on a cluster blocked while the dispatcher was down, are placed anew
// before the first admission, not at the next scheduled dispatch.
func TestStartHoldsTheLoadedTableToTheConfigs(t *testing.T) {
	t.Run("state dir", func(t *testing.T) {
		e := newEnv(t)
		d := e.newDispatcher(e.options())
		e.dispatch(d)
		if movableOn(d, "build03") == 0 {
			t.Fatal("build03 runs no movable job: the test proves nothing")
		}
		if err := d.flush(); err != nil {
			t.Fatal(err)
		}
		blockBuild03(t, e)
		restarted := e.newDispatcher(e.options())
		if n := movableOn(restarted, "build03"); n != 0 {
			t.Errorf("after a restart, %d jobs stay on build03, blocked while the dispatcher was down", n)
		}
		if restarted.cache.Len() != d.cache.Len() {
			t.Errorf("the restarted table holds %d rows, want the saved %d", restarted.cache.Len(), d.cache.Len())
		}
	})
	t.Run("shared state", func(t *testing.T) {
		e, sh, leader, _ := replicas(t, 0)
		if movableOn(leader, "build03") == 0 {
			t.Fatal("build03 runs no movable job: the test proves nothing")
		}
		blockBuild03(t, e)
		st, _ := leader.published() // made before build03 was blocked
		f := e.newDispatcherOn(e.options(), sh.from(st))
		if n := movableOn(f, "build03"); n != 0 {
			t.Errorf("a follower starting from a publication older than the cluster config keeps %d jobs on the blocked build03", n)
		}
	})
}
