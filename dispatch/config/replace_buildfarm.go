package config

import (
	"bytes"
	"errors"
	"fmt"

	yamlv3 "go.yaml.in/yaml/v3"
	"sigs.k8s.io/yaml"
)

// buildFarmKey is the dispatcher config's key of the buildFarm section.
const buildFarmKey = "buildFarm"

// ReplaceBuildFarm returns content, a dispatcher config file, with only its
// top-level buildFarm section replaced by farm, rendered as Marshal renders
// it. Every other line is kept byte for byte: the other keys, their order,
// their comments and their formatting, so that a pull request that rewrites
// the section shows only the section's changes. A file without a buildFarm
// key gets the section appended. The result of a second call with the same
// farm equals the first.
func ReplaceBuildFarm(content []byte, farm map[string]map[string]*BuildFarmCluster) ([]byte, error) {
	section, err := renderBuildFarm(farm)
	if err != nil {
		return nil, err
	}
	var doc yamlv3.Node
	if err := yamlv3.Unmarshal(content, &doc); err != nil {
		return nil, fmt.Errorf("dispatcher config: %w", err)
	}
	if doc.Kind == 0 { // an empty file
		return section, nil
	}
	if doc.Kind != yamlv3.DocumentNode || len(doc.Content) != 1 || doc.Content[0].Kind != yamlv3.MappingNode {
		return nil, errors.New("dispatcher config: the document is not a mapping")
	}
	root := doc.Content[0]
	if root.Style&yamlv3.FlowStyle != 0 {
		return nil, errors.New("dispatcher config: a flow-style document ({...}) cannot be edited line by line")
	}
	keyAt := -1
	for i := 0; i < len(root.Content); i += 2 {
		if root.Content[i].Value == buildFarmKey {
			if keyAt >= 0 {
				return nil, fmt.Errorf("dispatcher config: %s appears twice (lines %d and %d)", buildFarmKey, root.Content[keyAt].Line, root.Content[i].Line)
			}
			keyAt = i
		}
	}
	lines := splitLines(content)
	if keyAt < 0 {
		var out bytes.Buffer
		out.Write(content)
		if len(content) > 0 && content[len(content)-1] != '\n' {
			out.WriteByte('\n')
		}
		out.Write(section)
		return out.Bytes(), nil
	}
	key, value := root.Content[keyAt], root.Content[keyAt+1]
	if key.Column != 1 {
		return nil, fmt.Errorf("dispatcher config: line %d: %s is not at the start of its line", key.Line, buildFarmKey)
	}
	// The section runs from its key's line to the last line of its value,
	// and on over the indented lines that follow (the continuation of a
	// multi-line scalar, an indented comment), but never into the next key.
	first, last := key.Line, lastLine(value)
	limit := len(lines)
	if keyAt+2 < len(root.Content) {
		limit = root.Content[keyAt+2].Line - 1
	}
	for last < limit && isIndented(lines[last]) { // lines[last] is line last+1
		last++
	}
	var out bytes.Buffer
	for _, l := range lines[:first-1] {
		out.Write(l)
	}
	out.Write(section)
	for _, l := range lines[last:] {
		out.Write(l)
	}
	result := out.Bytes()
	var check yamlv3.Node
	if err := yamlv3.Unmarshal(result, &check); err != nil {
		return nil, fmt.Errorf("dispatcher config: the edited file does not parse (line %d-%d replaced): %w", first, last, err)
	}
	return result, nil
}

// renderBuildFarm renders the buildFarm section as Marshal does.
func renderBuildFarm(farm map[string]map[string]*BuildFarmCluster) ([]byte, error) {
	if farm == nil {
		farm = map[string]map[string]*BuildFarmCluster{}
	}
	out, err := yaml.Marshal(map[string]any{buildFarmKey: farm})
	if err != nil {
		return nil, fmt.Errorf("rendering %s: %w", buildFarmKey, err)
	}
	return out, nil
}

// lastLine is the highest line any node under n starts on.
func lastLine(n *yamlv3.Node) int {
	last := n.Line
	for _, c := range n.Content {
		last = max(last, lastLine(c))
	}
	return last
}

// isIndented reports whether a line starts with a space or tab and has
// more than white space.
func isIndented(l []byte) bool {
	if len(l) == 0 || (l[0] != ' ' && l[0] != '\t') {
		return false
	}
	return len(bytes.TrimSpace(l)) > 0
}

// splitLines splits content after each newline; the last line may lack one.
func splitLines(content []byte) [][]byte {
	var lines [][]byte
	for len(content) > 0 {
		i := bytes.IndexByte(content, '\n')
		if i < 0 {
			lines = append(lines, content)
			break
		}
		lines = append(lines, content[:i+1])
		content = content[i+1:]
	}
	return lines
}
