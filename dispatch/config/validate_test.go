package config

import (
	"path/filepath"
	"testing"
)

func TestValidate(t *testing.T) {
	clusters, err := LoadClusters(filepath.Join("testdata", "clusters.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	const prefix = `dispatcher config testdata/dispatcher/cross-file-bad.yaml (with cluster config testdata/clusters.yaml): `
	for _, tc := range []struct {
		file string
		want []string
	}{
		{"good.yaml", nil},
		{"cross-file-bad.yaml", []string{
			prefix + `manualClusters[0]: cluster "build01" is manual but also in the cluster config`,
			prefix + `default: unknown cluster "build99": neither in the cluster config nor in manualClusters`,
			prefix + `buildFarm["gcp"]["build95"]: unknown cluster "build95": neither in the cluster config nor in manualClusters`,
			prefix + `groups["HIVE"]: cluster "HIVE" differs only in case from "hive"`,
			prefix + `kvm[1]: cluster "Build02" differs only in case from "build02"`,
			prefix + `noBuilds[1]: service cluster "App.CI" differs only in case from service cluster "app.ci"`,
			prefix + `cloudMapping["azure"]: "azure4" is not a provider of the cluster config`,
		}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			d, err := LoadDispatcher(filepath.Join("testdata", "dispatcher", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			assertErrors(t, Validate(d, clusters), tc.want)
		})
	}
}

func TestValidateNil(t *testing.T) {
	if err := Validate(nil, &Clusters{}); err == nil {
		t.Error("Validate(nil, clusters) = nil")
	}
	if err := Validate(&DispatcherConfig{Default: "a"}, nil); err == nil {
		t.Error("Validate(dispatcher, nil) = nil")
	}
}
