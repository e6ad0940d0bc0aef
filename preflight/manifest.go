package preflight

import (
	"bytes"
	"encoding/json"
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
	// What did not parse: ParseYAML (the default), ParseJSON, or ParseTemplate (an unrendered template).
	What string
}

// What a ParseError is about.
const (
	ParseYAML     = "yaml"
	ParseJSON     = "json"
	ParseTemplate = "template"
)

func (e *ParseError) Error() string {
	return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Err)
}

var yamlLine = regexp.MustCompile(`^yaml: (?:line (\d+): )?`)

// parseManifest reads every object of a multi-document YAML text or a stream of JSON values (a
// .json file may hold several, as kubectl accepts), descending into `kind: List` items and resolving
// YAML aliases and merge keys. A document that does not parse, or is an unrendered template, is a
// ParseError; the documents after it are still read. name is used in errors.
func parseManifest(name string, data []byte) ([]manifestObject, error) {
	if strings.HasSuffix(strings.ToLower(name), ".json") || name == StdinName && isJSON(data) {
		return parseJSONStream(name, data)
	}
	var out []manifestObject
	var errs []error
	for _, d := range splitDocuments(data) {
		var doc yaml.Node
		err := yaml.Unmarshal(d.text, &doc)
		if err != nil {
			first := d.line // the document's first line, after its "---"
			if docSeparator.Match(bytes.TrimRight(firstLine(d.text), "\r")) {
				first++
			}
			pe := &ParseError{File: name, Line: first, Err: err.Error()}
			if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
				if m[1] != "" {
					n, _ := strconv.Atoi(m[1])
					pe.Line = d.line + n - 1
				}
				pe.Err = strings.TrimPrefix(err.Error(), m[0])
			}
			if line, ok := templateLine(d); ok {
				// An unrendered template that YAML cannot read ({{- if }}, {{ toYaml … | nindent }}).
				pe = &ParseError{File: name, Line: line, What: ParseTemplate, Err: unrendered}
			}
			errs = append(errs, pe)
			continue
		}
		if len(doc.Content) == 0 {
			continue
		}
		shift(&doc, d.line-1)
		if line, ok := templated(doc.Content[0]); ok {
			errs = append(errs, &ParseError{File: name, Line: line, What: ParseTemplate, Err: unrendered})
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
	return out, errors.Join(errs...)
}

// parseErrors lists the ParseErrors in err (parseManifest joins one per broken document).
func parseErrors(err error) []*ParseError {
	var joined interface{ Unwrap() []error }
	if errors.As(err, &joined) {
		var out []*ParseError
		for _, e := range joined.Unwrap() {
			out = append(out, parseErrors(e)...)
		}
		return out
	}
	if pe := (*ParseError)(nil); errors.As(err, &pe) {
		return []*ParseError{pe}
	}
	return nil
}

// document is one YAML document of a file and the line it starts on.
type document struct {
	text []byte
	line int
}

var docSeparator = regexp.MustCompile(`^---(\s.*)?$`)

// splitDocuments cuts a YAML stream at its "---" lines, so that one broken document leaves the
// others readable.
func splitDocuments(data []byte) []document {
	var docs []document
	start, startLine := 0, 1
	line := 1
	for i := 0; i <= len(data); {
		end := bytes.IndexByte(data[i:], '\n')
		var l []byte
		next := len(data) + 1
		if end < 0 {
			l = data[i:]
		} else {
			l = data[i : i+end]
			next = i + end + 1
		}
		if docSeparator.Match(bytes.TrimRight(l, "\r")) {
			if i > start {
				docs = append(docs, document{data[start:i], startLine})
			}
			start, startLine = i, line
		}
		i = next
		line++
	}
	if start < len(data) {
		docs = append(docs, document{data[start:], startLine})
	}
	return docs
}

func firstLine(b []byte) []byte {
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		return b[:i]
	}
	return b
}

// shift moves every node's line by n (the document's place in its file).
func shift(n *yaml.Node, by int) {
	n.Line += by
	for _, c := range n.Content {
		shift(c, by)
	}
}

// StdinName is how findings name the manifests read from standard input (--manifests -).
const StdinName = "<stdin>"

// unrendered is what a ParseTemplate error says.
const unrendered = "an unrendered template ({{ … }}), so it was not scanned"

// TemplateFix is the fix of an unrendered template.
const TemplateFix = "render it first and scan the output: helm template RELEASE CHART | drydock preflight --files-only --manifests -"

// isJSON says whether a stream read without a file name (standard input) is JSON: its first
// character opens an object or an array.
func isJSON(data []byte) bool {
	t := bytes.TrimLeft(data, " \t\r\n")
	return len(t) > 0 && (t[0] == '{' || t[0] == '[')
}

// templateLine finds the first line of a document, not a comment, holding "{{": where a template
// not rendered yet shows.
func templateLine(d document) (int, bool) {
	for i, l := range bytes.Split(d.text, []byte("\n")) {
		t := bytes.TrimSpace(l)
		if !bytes.HasPrefix(t, []byte("#")) && bytes.Contains(t, []byte("{{")) {
			return d.line + i, true
		}
	}
	return 0, false
}

// templated finds "{{ … }}", a Helm or Go template not rendered yet: quoted, it is a scalar holding
// it; unquoted (`name: {{ .Release.Name }}`, the usual Helm style), YAML reads it as a flow mapping
// whose key is another flow mapping, which no manifest writes.
func templated(n *yaml.Node) (int, bool) {
	if n == nil {
		return 0, false
	}
	if n.Kind == yaml.ScalarNode && strings.Contains(n.Value, "{{") && strings.Contains(n.Value, "}}") {
		return n.Line, true
	}
	if n.Kind == yaml.MappingNode && n.Style&yaml.FlowStyle != 0 && len(n.Content) > 0 &&
		n.Content[0].Kind == yaml.MappingNode && n.Content[0].Style&yaml.FlowStyle != 0 {
		return n.Line, true
	}
	for _, c := range n.Content {
		if line, ok := templated(c); ok {
			return line, true
		}
	}
	return 0, false
}

// parseJSONStream reads one JSON value after another (objects, or Lists of them).
func parseJSONStream(name string, data []byte) ([]manifestObject, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	var out []manifestObject
	for {
		offset := int(dec.InputOffset())
		var v any
		err := dec.Decode(&v)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		start := offset + len(data[offset:]) - len(bytes.TrimLeft(data[offset:], " \t\r\n")) // the value's first byte
		line := 1 + bytes.Count(data[:start], []byte("\n"))
		if err != nil {
			return out, &ParseError{File: name, Line: line, What: ParseJSON, Err: "not valid JSON, so it was not scanned (nor what follows it): " + err.Error()}
		}
		// Each value as YAML (JSON is YAML): one path for both.
		b, _ := json.Marshal(v)
		var doc yaml.Node
		if yaml.Unmarshal(b, &doc) != nil || len(doc.Content) == 0 {
			continue
		}
		lineAt(&doc, line)
		out = collect(out, doc.Content[0], "")
	}
}

// lineAt puts every node of a JSON value at the line the value starts on (its fields' own lines are
// lost when it is re-read; the value's line is what a finding needs).
func lineAt(n *yaml.Node, line int) {
	n.Line = line
	for _, c := range n.Content {
		lineAt(c, line)
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

// field is the value of key in the mapping n, following aliases (*base) and merge keys (<<: *base,
// <<: [*a, *b]) as YAML does: a key of the mapping itself wins over a merged one.
func field(n *yaml.Node, key string) *yaml.Node {
	n = deref(n)
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	var merged []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		switch n.Content[i].Value {
		case key:
			return deref(n.Content[i+1])
		case "<<":
			v := deref(n.Content[i+1])
			if v != nil && v.Kind == yaml.SequenceNode {
				merged = append(merged, v.Content...)
			} else {
				merged = append(merged, v)
			}
		}
	}
	for _, m := range merged {
		if v := field(m, key); v != nil {
			return v
		}
	}
	return nil
}

func deref(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
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
// directories skipped). A file named on the command line is read whatever its name; "-" is standard
// input (StdinName). A file reached twice (a directory and a file in it, ./x.yaml and x.yaml, a
// symlink to it) is listed once, by the first path that reached it.
// unreadable is a path under --manifests that could not be read: reported, and the scan goes on.
type unreadable struct {
	path string
	err  error
}

func manifestFiles(paths []string) ([]string, []unreadable, error) {
	var out []string
	var bad []unreadable
	seen := map[string]bool{}
	add := func(path string) {
		key := path
		if path != StdinName {
			key = sameFileKey(path)
		}
		if !seen[key] {
			seen[key] = true
			out = append(out, path)
		}
	}
	for _, p := range paths {
		if p == "-" {
			add(StdinName)
			continue
		}
		st, err := os.Stat(p)
		if err != nil {
			return nil, nil, fmt.Errorf("manifests: %w", err)
		}
		if !st.IsDir() {
			add(p)
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
				add(path)
			}
			return nil
		})
		if err != nil {
			return nil, nil, fmt.Errorf("manifests: %w", err)
		}
	}
	return out, bad, nil
}

// sameFileKey names the file at path whichever way it is reached: its absolute, cleaned path with
// symlinks resolved (the path itself when that fails: the read reports why).
func sameFileKey(path string) string {
	abs, err := filepath.Abs(path)
	if err != nil {
		return path
	}
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		return real
	}
	return abs
}
