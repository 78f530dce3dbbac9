package demand

import (
	"errors"
	"math"
	"strings"
	"testing"
)

func TestPlausible(t *testing.T) {
	last := map[string]float64{"a": 100, "b": 100}
	for _, tc := range []struct {
		name    string
		next    map[string]float64
		last    map[string]float64
		maxDrop float64
		want    string // substring of the error; empty: accepted
	}{
		{name: "same", next: map[string]float64{"a": 90, "b": 120}, last: last, maxDrop: 0.5},
		{name: "first answer", next: map[string]float64{"a": 1}, maxDrop: 0.5},
		{name: "empty", next: map[string]float64{}, last: last, maxDrop: 0.5, want: "holds no job"},
		{name: "empty without a last one", next: nil, maxDrop: 0.5, want: "holds no job"},
		{name: "collapse", next: map[string]float64{"a": 1, "b": 1}, last: last, maxDrop: 0.5, want: "99% below"},
		{name: "collapse accepted with max drop 1", next: map[string]float64{"a": 1}, last: last, maxDrop: 1},
		{name: "huge", next: map[string]float64{"a": 1e308}, last: last, maxDrop: 0.5, want: `job "a": demand 1e+308`},
		{name: "infinite", next: map[string]float64{"a": math.Inf(1)}, maxDrop: 0.5, want: "+Inf"},
		{name: "nan", next: map[string]float64{"a": math.NaN()}, maxDrop: 0.5, want: "NaN"},
		{name: "negative", next: map[string]float64{"a": -1}, maxDrop: 0.5, want: "-1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Plausible(tc.next, tc.last, tc.maxDrop)
			if tc.want == "" {
				if err != nil {
					t.Errorf("refused: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrImplausible) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want ErrImplausible containing %q", err, tc.want)
			}
		})
	}
}
