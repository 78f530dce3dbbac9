package demand

import (
	"context"
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
		{path: "testdata/list.yaml", wantErr: []string{"testdata/list.yaml", "cannot unmarshal"}},
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
