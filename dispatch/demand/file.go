package demand

import (
	"context"
	"fmt"
	"math"
	"os"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// File is demand read from a YAML or JSON map of job name -> demand. It reads
// the file on every call, so edits are seen at the next dispatch.
type File struct {
	// Path is the file's path.
	Path string
}

// Demand reads the file.
func (f File) Demand(ctx context.Context) (map[string]float64, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("demand file %s: %w", f.Path, err)
	}
	return ReadFile(f.Path)
}

// ReadFile reads a demand file. Every value must be a finite number >= 0;
// all bad entries are reported together, each with its job and value.
func ReadFile(path string) (map[string]float64, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("demand file %s: %w", path, err)
	}
	d, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("demand file %s: %w", path, err)
	}
	return d, nil
}

// Parse parses the contents of a demand file.
func Parse(data []byte) (map[string]float64, error) {
	var raw map[string]yaml.Node
	if err := yaml.Unmarshal(data, &raw); err != nil {
		return nil, err
	}
	out := make(map[string]float64, len(raw))
	var bad []string
	for job, node := range raw {
		var v float64
		if node.Kind != yaml.ScalarNode || node.Decode(&v) != nil {
			bad = append(bad, fmt.Sprintf("job %q: demand %q is not a number", job, node.Value))
			continue
		}
		if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
			bad = append(bad, fmt.Sprintf("job %q: demand %s must be a finite number >= 0", job, node.Value))
			continue
		}
		out[job] = v
	}
	if len(bad) > 0 {
		sort.Strings(bad)
		return nil, fmt.Errorf("%d bad entries: %s", len(bad), strings.Join(bad, "; "))
	}
	return out, nil
}
