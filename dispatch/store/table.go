package store

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/table"
)

// ReadTable reads a table from path, which holds either a state file (its
// table is returned, with the journal beside it applied) or a bare table as
// JSON ({"generatedAt":..., "assignments":[...]}).
func ReadTable(path string) (*table.Table, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("table %s: %w", path, err)
	}
	var probe struct {
		Version     *int            `json:"version"`
		Assignments json.RawMessage `json:"assignments"`
	}
	if err := json.Unmarshal(data, &probe); err != nil {
		return nil, fmt.Errorf("table %s: %w", path, err)
	}
	if probe.Version != nil {
		var st *State
		if filepath.Base(path) == FileName {
			st, err = ReadDir(filepath.Dir(path))
		} else {
			st, err = Decode(path, data)
		}
		if err != nil {
			return nil, err
		}
		if st.Table == nil {
			return &table.Table{}, nil
		}
		return st.Table, nil
	}
	var t table.Table
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&t); err != nil {
		return nil, fmt.Errorf("table %s: %w", path, err)
	}
	t.Sort()
	return &t, nil
}
