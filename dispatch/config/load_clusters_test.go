package config

import (
	"errors"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestLoadClustersOpenShiftCI(t *testing.T) {
	c, err := LoadClusters(filepath.Join("testdata", "clusters.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if got := len(c.Providers["aws"]); got != 7 {
		t.Errorf("aws clusters = %d, want 7", got)
	}
	b04, ok := c.Get("build04")
	want := Cluster{Name: "build04", Provider: "gcp", Capacity: DefaultCapacity, Blocked: true}
	if !ok || !cmp.Equal(b04, want) {
		t.Errorf("Get(build04) = %+v, %v; want %+v", b04, ok, want)
	}
	b01, _ := c.Get("build01")
	if b01.Provider != "aws" || !b01.Has("sshd-bastion") || b01.Has("intranet") {
		t.Errorf("build01 = %+v", b01)
	}
	if _, ok := c.Get("build99"); ok {
		t.Error("Get(build99) found a cluster")
	}
	var names []string
	for _, cl := range c.All() {
		names = append(names, cl.Name)
	}
	wantNames := []string{"build01", "build02", "build03", "build04", "build05", "build06", "build07", "build09", "build11"}
	if !cmp.Equal(names, wantNames) {
		t.Errorf("All() = %v, want %v", names, wantNames)
	}
}

func TestLoadClustersCapacity(t *testing.T) {
	path := filepath.Join("testdata", "clusters", "good-capacity.yaml")
	c, err := LoadClusters(path)
	if err != nil {
		t.Fatal(err)
	}
	want := &Clusters{
		File: path,
		Providers: map[string][]Cluster{
			"aws": {
				{Name: "build01", Provider: "aws", Capacity: 60, Capabilities: []string{"arm64"}},
				{Name: "build03", Provider: "aws", Capacity: DefaultCapacity},
			},
			"gcp": {{Name: "build02", Provider: "gcp", Capacity: 40, Blocked: true}},
		},
	}
	if diff := cmp.Diff(want, c); diff != "" {
		t.Errorf("clusters (-want +got):\n%s", diff)
	}
}

func TestLoadClustersErrors(t *testing.T) {
	for _, tc := range []struct {
		file string
		want []string
	}{
		{"capacity.yaml", []string{
			`cluster config testdata/clusters/capacity.yaml: aws[0].capacity: cluster "build01": capacity 0 not in 1..100`,
			`cluster config testdata/clusters/capacity.yaml: aws[1].capacity: cluster "build03": capacity 101 not in 1..100`,
		}},
		{"empty-provider.yaml", []string{`cluster config testdata/clusters/empty-provider.yaml: "": empty provider name`}},
		{"empty-cluster.yaml", []string{`cluster config testdata/clusters/empty-cluster.yaml: aws[1].name: empty cluster name`}},
		{"duplicate-cluster.yaml", []string{
			`cluster config testdata/clusters/duplicate-cluster.yaml: gcp[1].name: cluster "build01" listed twice (also at aws[0])`,
		}},
		{"duplicate-cluster-same-provider.yaml", []string{
			`cluster config testdata/clusters/duplicate-cluster-same-provider.yaml: aws[1].name: cluster "build01" listed twice (also at aws[0])`,
		}},
		{"capabilities.yaml", []string{
			`cluster config testdata/clusters/capabilities.yaml: aws[0].capabilities[1]: cluster "build01": empty capability`,
			`cluster config testdata/clusters/capabilities.yaml: aws[0].capabilities[2]: cluster "build01": capability "arm64" listed twice (also at index 0)`,
		}},
		{"empty.yaml", []string{`cluster config testdata/clusters/empty.yaml: no clusters`}},
		{"capacity-string.yaml", []string{`cluster config testdata/clusters/capacity-string.yaml: capacity: "lots" is a string, want int`}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			c, err := LoadClusters(filepath.Join("testdata", "clusters", tc.file))
			assertErrors(t, err, tc.want)
			if c != nil {
				t.Errorf("got clusters with an error: %+v", c)
			}
		})
	}
}

// TestLoadClustersUnknownFields: keys this version does not know (ipCapacity,
// which ci-tools adds, or a typo) are ignored and named with their file and
// field path; the rest of the file is read as if they were absent.
func TestLoadClustersUnknownFields(t *testing.T) {
	for _, tc := range []struct {
		file    string
		want    *Clusters
		unknown []string
	}{
		{
			file: "ip-capacity.yaml",
			want: &Clusters{Providers: map[string][]Cluster{
				"aws": {{Name: "build01", Provider: "aws", Capacity: 60}},
				"gcp": {{Name: "build02", Provider: "gcp", Capacity: DefaultCapacity, Capabilities: []string{"arm64"}}},
			}},
			unknown: []string{
				"cluster config testdata/clusters/ip-capacity.yaml: aws[0].ipCapacity",
				"cluster config testdata/clusters/ip-capacity.yaml: gcp[0].zone",
			},
		},
		{
			file:    "unknown-field-typo.yaml",
			want:    &Clusters{Providers: map[string][]Cluster{"aws": {{Name: "build01", Provider: "aws", Capacity: DefaultCapacity}}}},
			unknown: []string{"cluster config testdata/clusters/unknown-field-typo.yaml: aws[0].capcity"},
		},
		{file: "good-capacity.yaml"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			c, err := LoadClusters(filepath.Join("testdata", "clusters", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			if tc.want != nil {
				if diff := cmp.Diff(tc.want, c, cmpopts.IgnoreFields(Clusters{}, "File", "Unknown")); diff != "" {
					t.Errorf("clusters (-want +got):\n%s", diff)
				}
			}
			if diff := cmp.Diff(tc.unknown, UnknownFields(nil, c)); diff != "" {
				t.Errorf("unknown fields (-want +got):\n%s", diff)
			}
			err = RefuseUnknownFields(nil, c)
			if (err != nil) != (len(tc.unknown) > 0) || (err != nil && !errors.Is(err, ErrUnknownFields)) {
				t.Fatalf("RefuseUnknownFields = %v, want an error iff there are unknown fields", err)
			}
			for _, f := range tc.unknown {
				if !strings.Contains(err.Error(), f) {
					t.Errorf("RefuseUnknownFields = %v, does not name %s", err, f)
				}
			}
		})
	}
}

func TestLoadClustersMissingFile(t *testing.T) {
	if _, err := LoadClusters(filepath.Join(t.TempDir(), "absent.yaml")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("want a not-exist error, got %v", err)
	}
}

func TestClusterHasAll(t *testing.T) {
	cl := Cluster{Name: "build01", Capabilities: []string{"arm64", "highperf"}}
	for _, tc := range []struct {
		caps []string
		want bool
	}{
		{nil, true},
		{[]string{"arm64"}, true},
		{[]string{"highperf", "arm64"}, true},
		{[]string{"arm64", "intranet"}, false},
		{[]string{"intranet"}, false},
	} {
		if got := cl.HasAll(tc.caps); got != tc.want {
			t.Errorf("HasAll(%v) = %v, want %v", tc.caps, got, tc.want)
		}
	}
}
