package e2e

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// termWatch records every version of the leader Lease and of the
// TableShards it sees, by list and watch, so that the writes can be put in
// the API server's order: a resourceVersion is etcd's revision, and one
// etcd orders the writes of every kind, so versions of a Lease and of a
// shard compare (true of kube-apiserver on one etcd, as here; the API does
// not promise it in general).
type termWatch struct {
	ns     string
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	versions map[string]termVersion // kind/name@rv
	resyncs  int
}

// termVersion is one version of the Lease or of a TableShard.
type termVersion struct {
	kind, name string
	rv         int64
	deleted    bool
	// The Lease's holder and leaseTransitions.
	holder      string
	transitions int64
	// The shard's publication, writer and term (-1: no term field).
	publication int64
	publishedBy string
	term        int64
}

var (
	leaseListGVK = schema.GroupVersionKind{Group: "coordination.k8s.io", Version: "v1", Kind: "LeaseList"}
	shardListGVK = schema.GroupVersionKind{Group: "prowjob-dispatcher.io", Version: "v1alpha1", Kind: "TableShardList"}
)

// startTermWatch watches the Lease and TableShards of namespace ns until stop.
func startTermWatch(ctx context.Context, t *testing.T, kubeconfig, ns string) *termWatch {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatalf("kubeconfig %s: %v", kubeconfig, err)
	}
	c, err := client.NewWithWatch(cfg, client.Options{})
	if err != nil {
		t.Fatalf("watch client: %v", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	w := &termWatch{ns: ns, cancel: cancel, versions: map[string]termVersion{}}
	for _, gvk := range []schema.GroupVersionKind{leaseListGVK, shardListGVK} {
		w.wg.Add(1)
		go func() { defer w.wg.Done(); w.follow(ctx, c, gvk) }()
	}
	return w
}

// follow lists and watches one kind, listing again whenever the watch
// ends (an API server restart), until ctx is done.
func (w *termWatch) follow(ctx context.Context, c client.WithWatch, gvk schema.GroupVersionKind) {
	for ctx.Err() == nil {
		list := &unstructured.UnstructuredList{}
		list.SetGroupVersionKind(gvk)
		if err := c.List(ctx, list, client.InNamespace(w.ns)); err != nil {
			time.Sleep(200 * time.Millisecond)
			continue
		}
		for i := range list.Items {
			w.record(&list.Items[i], false)
		}
		wl := &unstructured.UnstructuredList{}
		wl.SetGroupVersionKind(gvk)
		wi, err := c.Watch(ctx, wl, client.InNamespace(w.ns), &client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: list.GetResourceVersion()}})
		if err != nil {
			time.Sleep(200 * time.Millisecond)
			continue
		}
		for ev := range wi.ResultChan() {
			if ev.Type == watch.Error {
				break
			}
			if u, ok := ev.Object.(*unstructured.Unstructured); ok {
				w.record(u, ev.Type == watch.Deleted)
			}
		}
		wi.Stop()
		w.mu.Lock()
		w.resyncs++
		w.mu.Unlock()
	}
}

func (w *termWatch) record(u *unstructured.Unstructured, deleted bool) {
	rv, err := strconv.ParseInt(u.GetResourceVersion(), 10, 64)
	if err != nil {
		return
	}
	v := termVersion{kind: u.GetKind(), name: u.GetName(), rv: rv, deleted: deleted, term: -1}
	switch v.kind {
	case "Lease":
		if v.name != haLease {
			return
		}
		v.holder, _, _ = unstructured.NestedString(u.Object, "spec", "holderIdentity")
		v.transitions, _, _ = unstructured.NestedInt64(u.Object, "spec", "leaseTransitions")
	default:
		v.publication, _, _ = unstructured.NestedInt64(u.Object, "spec", "publication")
		v.publishedBy, _, _ = unstructured.NestedString(u.Object, "spec", "publishedBy")
		if term, ok, _ := unstructured.NestedInt64(u.Object, "spec", "term"); ok {
			v.term = term
		}
	}
	w.mu.Lock()
	w.versions[fmt.Sprintf("%s/%s@%d", v.kind, v.name, rv)] = v
	w.mu.Unlock()
}

func (w *termWatch) stop() {
	w.cancel()
	w.wg.Wait()
}

// check walks the versions in resourceVersion order: each shard version
// must be written by the Lease's holder of the time (once the Lease passed
// to another replica, the old leader's term is over), its publication must
// not go back, and its term (when shards carry one) must not be older
// than a term already adopted. It returns the violations and a summary.
func (w *termWatch) check() ([]string, string) {
	w.mu.Lock()
	versions := make([]termVersion, 0, len(w.versions))
	for _, v := range w.versions {
		versions = append(versions, v)
	}
	resyncs := w.resyncs
	w.mu.Unlock()
	slices.SortFunc(versions, func(a, b termVersion) int { return int(a.rv - b.rv) })
	var (
		out                  []string
		holder               string
		transitions, sinceRV int64
		holders              []string
		shardWrites, terms   int
		maxTerm              int64 = -1
		lastPub                    = map[string]termVersion{}
	)
	for _, v := range versions {
		if v.kind == "Lease" {
			if v.holder != holder {
				holder, transitions, sinceRV = v.holder, v.transitions, v.rv
				holders = append(holders, fmt.Sprintf("%s (transitions %d, rv %d)", v.holder, v.transitions, v.rv))
			}
			continue
		}
		if v.deleted {
			continue
		}
		shardWrites++
		if holder != "" && v.publishedBy != holder {
			out = append(out, fmt.Sprintf("TableShard %s publication %d written by %s at rv %d, after the Lease passed to %s (leaseTransitions %d) at rv %d: a write of an older term",
				v.name, v.publication, v.publishedBy, v.rv, holder, transitions, sinceRV))
		}
		if prev, ok := lastPub[v.name]; ok && v.publication < prev.publication {
			out = append(out, fmt.Sprintf("TableShard %s publication went back from %d (by %s, rv %d) to %d (by %s, rv %d)",
				v.name, prev.publication, prev.publishedBy, prev.rv, v.publication, v.publishedBy, v.rv))
		}
		lastPub[v.name] = v
		if v.term >= 0 {
			terms++
			if v.term < maxTerm {
				out = append(out, fmt.Sprintf("TableShard %s term %d written by %s at rv %d, after term %d was adopted", v.name, v.term, v.publishedBy, v.rv, maxTerm))
			}
			maxTerm = max(maxTerm, v.term)
		}
	}
	termNote := "no shard carries a term field yet: checked by the Lease's holder and the shards' publishedBy and publication"
	if terms > 0 {
		termNote = fmt.Sprintf("%d shard versions carry a term (highest %d)", terms, maxTerm)
	}
	summary := fmt.Sprintf("%d shard versions seen (%d watch restarts); Lease holders in order: %v; %s", shardWrites, resyncs, holders, termNote)
	return out, summary
}
