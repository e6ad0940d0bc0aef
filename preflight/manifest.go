package preflight

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	yaml "go.yaml.in/yaml/v3"
)

// manifestObject is one Kubernetes object in a YAML or JSON document.
type manifestObject struct {
	APIVersion, Kind, Namespace, Name string
	Line                              int
	// Template is the Helm template it came from (the "# Source:" comment), if any.
	Template string
}

func (o manifestObject) String() string {
	s := o.Kind
	if o.Name != "" {
		s += " "
		if o.Namespace != "" {
			s += o.Namespace + "/"
		}
		s += o.Name
	}
	return s
}

// ParseError is a document that is not valid YAML.
type ParseError struct {
	File string
	Line int
	Err  string
}

func (e *ParseError) Error() string {
	return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Err)
}

var yamlLine = regexp.MustCompile(`^yaml: (?:line (\d+): )?`)

// parseManifest reads every object of a multi-document YAML or JSON text, descending into
// `kind: List` items. name is used in errors.
func parseManifest(name string, data []byte) ([]manifestObject, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var out []manifestObject
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			pe := &ParseError{File: name, Line: 1, Err: err.Error()}
			if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
				if m[1] != "" {
					pe.Line, _ = strconv.Atoi(m[1])
				}
				pe.Err = strings.TrimPrefix(err.Error(), m[0])
			}
			if bytes.Contains(data, []byte("{{")) {
				pe.Err += " (an unrendered template? render it first, e.g. helm template, and scan the output)"
			}
			return out, pe
		}
		if len(doc.Content) == 0 {
			continue
		}
		template := sourceComment(doc.HeadComment)
		if template == "" {
			template = sourceComment(doc.Content[0].HeadComment)
		}
		if template == "" && doc.Content[0].Kind == yaml.MappingNode && len(doc.Content[0].Content) > 0 {
			template = sourceComment(doc.Content[0].Content[0].HeadComment)
		}
		out = collect(out, doc.Content[0], template)
	}
}

func sourceComment(c string) string {
	for _, line := range strings.Split(c, "\n") {
		if s, ok := strings.CutPrefix(strings.TrimSpace(line), "# Source: "); ok {
			return strings.TrimSpace(s)
		}
	}
	return ""
}

func field(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

func scalar(n *yaml.Node, key string) string {
	if v := field(n, key); v != nil && v.Kind == yaml.ScalarNode {
		return v.Value
	}
	return ""
}

func collect(out []manifestObject, n *yaml.Node, template string) []manifestObject {
	apiVersion, kind := scalar(n, "apiVersion"), scalar(n, "kind")
	if apiVersion == "" || kind == "" {
		return out // not a Kubernetes object (values.yaml, Chart.yaml, ...)
	}
	if items := field(n, "items"); strings.HasSuffix(kind, "List") && items != nil && items.Kind == yaml.SequenceNode {
		for _, it := range items.Content {
			out = collect(out, it, template)
		}
		return out
	}
	meta := field(n, "metadata")
	return append(out, manifestObject{APIVersion: apiVersion, Kind: kind, Namespace: scalar(meta, "namespace"),
		Name: scalar(meta, "name"), Line: n.Line, Template: template})
}

// manifestFiles expands files and directories (recursively: *.yaml, *.yml, *.json; hidden
// directories skipped). A file named on the command line is read whatever its name.
// unreadable is a path under --manifests that could not be read: reported, and the scan goes on.
type unreadable struct {
	path string
	err  error
}

func manifestFiles(paths []string) ([]string, []unreadable, error) {
	var out []string
	var bad []unreadable
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return nil, nil, fmt.Errorf("manifests: %w", err)
		}
		if !st.IsDir() {
			out = append(out, p)
			continue
		}
		err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				// One unreadable directory or file is a finding, not the end of the scan.
				bad = append(bad, unreadable{path, err})
				if d != nil && d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			if d.IsDir() {
				if path != p && strings.HasPrefix(d.Name(), ".") {
					return filepath.SkipDir
				}
				return nil
			}
			switch strings.ToLower(filepath.Ext(path)) {
			case ".yaml", ".yml", ".json":
				out = append(out, path)
			}
			return nil
		})
		if err != nil {
			return nil, nil, fmt.Errorf("manifests: %w", err)
		}
	}
	return out, bad, nil
}
