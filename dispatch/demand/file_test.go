package demand

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

func TestFile(t *testing.T) {
	want := map[string]float64{"pull-ci-a": 900, "pull-ci-b": 12.5, "periodic-c": 0}
	for _, tc := range []struct {
		path    string
		want    map[string]float64
		wantErr []string
	}{
		{path: "testdata/demand.yaml", want: want},
		{path: "testdata/demand.json", want: want},
		{path: "testdata/negative.yaml", wantErr: []string{
			"testdata/negative.yaml", "3 bad entries",
			`job "pull-ci-b": demand -3 must be a finite number >= 0`,
			`job "periodic-c": demand .nan must be`,
			`job "periodic-d": demand "many" is not a number`,
		}},
		{path: "testdata/list.yaml", wantErr: []string{"testdata/list.yaml", "cannot unmarshal a list"}},
		{path: "testdata/duplicate.yaml", wantErr: []string{"testdata/duplicate.yaml", `job "pull-ci-a": listed twice (lines 1 and 3)`}},
		{path: "testdata/empty.yaml", want: map[string]float64{}},
		{path: "testdata/missing.yaml", wantErr: []string{"testdata/missing.yaml", "no such file"}},
	} {
		t.Run(tc.path, func(t *testing.T) {
			got, err := File{Path: tc.path}.Demand(context.Background())
			if tc.wantErr != nil {
				if err == nil {
					t.Fatalf("no error, want %q", tc.wantErr)
				}
				for _, w := range tc.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q lacks %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

// BenchmarkParse parses a demand file of 50,000 jobs, the size of a large
// installation; it must stay linear in the number of jobs.
func BenchmarkParse(b *testing.B) {
	var sb strings.Builder
	for i := range 50000 {
		fmt.Fprintf(&sb, "pull-ci-org-repo-main-job-%05d: %d\n", i, i%977)
	}
	data := []byte(sb.String())
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		d, err := Parse(data)
		if err != nil || len(d) != 50000 {
			b.Fatalf("%d jobs, %v", len(d), err)
		}
	}
}
