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

// Parse parses the contents of a demand file: a YAML (or JSON) map of job
// name -> demand. A job listed twice is an error naming both lines. The map
// is walked as a node tree, in linear time: decoding straight into a Go map
// makes the YAML library compare every key with every other, which takes
// seconds for the tens of thousands of jobs of a real installation.
func Parse(data []byte) (map[string]float64, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, err
	}
	if len(doc.Content) == 0 {
		return map[string]float64{}, nil // an empty file: no demand
	}
	root := doc.Content[0]
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		return map[string]float64{}, nil
	}
	if root.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("line %d: cannot unmarshal a %s into a map of job name -> demand", root.Line, kindName(root.Kind))
	}
	out := make(map[string]float64, len(root.Content)/2)
	line := make(map[string]int, len(root.Content)/2)
	var bad []string
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		if v.Kind == yaml.AliasNode && v.Alias != nil {
			v = v.Alias
		}
		if k.Kind != yaml.ScalarNode || k.Value == "" {
			bad = append(bad, fmt.Sprintf("line %d: the key must be a job name", k.Line))
			continue
		}
		job := k.Value
		if first, dup := line[job]; dup {
			bad = append(bad, fmt.Sprintf("job %q: listed twice (lines %d and %d)", job, first, k.Line))
			continue
		}
		line[job] = k.Line
		var d float64
		if v.Kind != yaml.ScalarNode || v.Decode(&d) != nil {
			bad = append(bad, fmt.Sprintf("job %q: demand %q is not a number", job, v.Value))
			continue
		}
		if math.IsNaN(d) || math.IsInf(d, 0) || d < 0 {
			bad = append(bad, fmt.Sprintf("job %q: demand %s must be a finite number >= 0", job, v.Value))
			continue
		}
		out[job] = d
	}
	if len(bad) > 0 {
		sort.Strings(bad)
		return nil, fmt.Errorf("%d bad entries: %s", len(bad), strings.Join(bad, "; "))
	}
	return out, nil
}

// kindName names a YAML node kind in an error.
func kindName(k yaml.Kind) string {
	switch k {
	case yaml.SequenceNode:
		return "list"
	case yaml.ScalarNode:
		return "scalar"
	default:
		return "non-map value"
	}
}
