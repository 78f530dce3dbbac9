package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// decode decodes YAML data into v. Keys that v has no field for do not
// fail the decode: they are returned as field paths (`aws[0].ipCapacity`),
// sorted, so that a file shared with a newer tool (ci-tools owns
// _config.yaml and _clusters.yaml) stays readable. Keys match field names
// case-sensitively.
func decode(data []byte, v any) (unknown []string, err error) {
	j, err := yaml.YAMLToJSON(data)
	if err != nil {
		return nil, err
	}
	strict, err := sigsjson.UnmarshalStrict(j, v, sigsjson.DisallowUnknownFields)
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return nil, fmt.Errorf("%s: %s is a %s, want %s", te.Field, literalBefore(j, te.Offset), te.Value, te.Type)
	}
	if err != nil {
		return nil, err
	}
	for _, e := range strict {
		var fe sigsjson.FieldError
		if errors.As(e, &fe) {
			unknown = append(unknown, fe.FieldPath())
			continue
		}
		unknown = append(unknown, e.Error())
	}
	sort.Strings(unknown)
	return unknown, nil
}

// literalBefore returns the JSON literal that ends at off in j (where a
// type error's offset points), so that the error names the value.
func literalBefore(j []byte, off int64) string {
	if off <= 0 || off > int64(len(j)) {
		return "the value"
	}
	end := int(off)
	start := end - 1
	if j[start] == '"' {
		for start--; start > 0 && (j[start] != '"' || j[start-1] == '\\'); start-- {
		}
	} else {
		for start > 0 && !strings.ContainsRune(":,[{", rune(j[start-1])) {
			start--
		}
	}
	return string(j[start:end])
}

// UnknownFields names the keys of both configs that this version does not
// know and ignores, each as "FILE KIND: FIELD" ("cluster config
// _clusters.yaml: aws[0].ipCapacity"). Either config may be nil.
func UnknownFields(d *DispatcherConfig, c *Clusters) []string {
	var out []string
	if d != nil {
		for _, f := range d.Unknown {
			out = append(out, fmt.Sprintf("%s: %s", dispatcherPrefix(d.File), f))
		}
	}
	if c != nil {
		for _, f := range c.Unknown {
			out = append(out, fmt.Sprintf("%s: %s", clustersPrefix(c.File), f))
		}
	}
	return out
}

// ErrUnknownFields is wrapped by RefuseUnknownFields' error.
var ErrUnknownFields = errors.New("unknown fields")

// RefuseUnknownFields returns an error naming every unknown key of both
// configs, or nil if they have none: what a presubmit that wants the files
// to hold only keys this version knows (plan --strict) checks.
func RefuseUnknownFields(d *DispatcherConfig, c *Clusters) error {
	fields := UnknownFields(d, c)
	if len(fields) == 0 {
		return nil
	}
	errs := make([]error, len(fields))
	for i, f := range fields {
		errs[i] = fmt.Errorf("%s: %w (this version does not know the key)", f, ErrUnknownFields)
	}
	return errors.Join(errs...)
}
