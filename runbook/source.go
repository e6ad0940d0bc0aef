package runbook

import (
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Source is a runbook file's text and its YAML tree, so that every problem can name its line and column.
type Source struct {
	Path string
	Text []byte
	root *yaml.Node // the document's top node
}

func (s *Source) line(n int) string {
	lines := strings.Split(string(s.Text), "\n")
	if n < 1 || n > len(lines) {
		return ""
	}
	return strings.TrimRight(lines[n-1], "\r")
}

// problemAt places a problem on a node.
func (s *Source) problemAt(n *yaml.Node, field, msg, hint string) Problem {
	p := Problem{File: s.Path, Field: field, Message: msg, Hint: hint}
	if n != nil {
		p.Line, p.Column = n.Line, n.Column
		p.snippet = s.line(n.Line)
	}
	return p
}

// lookup finds the node at path tokens (mapping keys and sequence indexes). When key is true it
// returns the key node of the last token rather than its value. It returns the deepest node found.
func (s *Source) lookup(tokens []string, key bool) *yaml.Node {
	n := s.root
	for i, t := range tokens {
		n = deref(n)
		if n == nil {
			return nil
		}
		switch n.Kind {
		case yaml.MappingNode:
			found := false
			for j := 0; j+1 < len(n.Content); j += 2 {
				if n.Content[j].Value == t {
					if key && i == len(tokens)-1 {
						return n.Content[j]
					}
					n = n.Content[j+1]
					found = true
					break
				}
			}
			if !found {
				return n
			}
		case yaml.SequenceNode:
			idx, err := strconv.Atoi(t)
			if err != nil || idx < 0 || idx >= len(n.Content) {
				return n
			}
			n = n.Content[idx]
		default:
			return n
		}
	}
	return n
}

func deref(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 100; i++ {
		n = n.Alias
	}
	return n
}

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// parseYAML reads exactly one YAML document into s.root and converts it to plain JSON-like values.
func parseYAML(s *Source) (any, Problems) {
	dec := yaml.NewDecoder(strings.NewReader(string(s.Text)))
	var docs []*yaml.Node
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, Problems{syntaxProblem(s, err)}
		}
		docs = append(docs, &doc)
	}
	if len(docs) == 0 || len(docs[0].Content) == 0 {
		return nil, Problems{{File: s.Path, Message: "the file is empty", Hint: "a runbook starts with `apiVersion: " + APIVersion + "` and `kind: " + KindRunbook + "`; `drydock schema` prints the full format"}}
	}
	if len(docs) > 1 {
		return nil, Problems{s.problemAt(docs[1], "", "more than one YAML document: a runbook file holds one runbook", "split the file, one runbook per file")}
	}
	s.root = docs[0].Content[0]
	c := converter{src: s}
	v := c.convert(s.root, nil)
	return v, c.problems
}

func syntaxProblem(s *Source, err error) Problem {
	msg := err.Error()
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		p := Problem{File: s.Path, Line: line, Column: 1, Message: "invalid YAML: " + m[2], snippet: s.line(line)}
		if strings.Contains(m[2], "found character that cannot start any token") && strings.Contains(s.line(line), "\t") {
			p.Hint = "YAML does not allow tabs for indentation: use spaces"
		}
		return p
	}
	return Problem{File: s.Path, Message: "invalid YAML: " + strings.TrimPrefix(msg, "yaml: ")}
}

// converter turns a YAML tree into the values encoding/json would produce, reporting what JSON
// cannot hold (non-string keys, infinities), duplicate keys and runaway aliases.
type converter struct {
	src      *Source
	problems Problems
	nodes    int
}

const maxNodes = 100000 // bounds alias expansion ("billion laughs")

func (c *converter) convert(n *yaml.Node, path []string) any {
	c.nodes++
	if c.nodes > maxNodes {
		if c.nodes == maxNodes+1 {
			c.problems = append(c.problems, c.src.problemAt(n, fieldPath(path), "the document expands to too many values (aliases?)", ""))
		}
		return nil
	}
	switch n.Kind {
	case yaml.AliasNode:
		return c.convert(n.Alias, path)
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			return nil
		}
		return c.convert(n.Content[0], path)
	case yaml.MappingNode:
		m := map[string]any{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Kind == yaml.ScalarNode && k.Tag == "!!merge" {
				if merged, ok := c.convert(v, path).(map[string]any); ok {
					for mk, mv := range merged {
						if _, exists := m[mk]; !exists {
							m[mk] = mv
						}
					}
				}
				continue
			}
			if k.Kind != yaml.ScalarNode || (k.Tag != "!!str" && k.Tag != "") {
				c.problems = append(c.problems, c.src.problemAt(k, fieldPath(path), fmt.Sprintf("key %q is not a string", k.Value), "quote the key"))
				continue
			}
			if _, dup := m[k.Value]; dup {
				c.problems = append(c.problems, c.src.problemAt(k, fieldPath(append(path, k.Value)), "duplicate key", "remove one of the two"))
				continue
			}
			m[k.Value] = c.convert(v, append(path, k.Value))
		}
		return m
	case yaml.SequenceNode:
		l := make([]any, 0, len(n.Content))
		for i, item := range n.Content {
			l = append(l, c.convert(item, append(path, strconv.Itoa(i))))
		}
		return l
	case yaml.ScalarNode:
		var v any
		if err := n.Decode(&v); err != nil {
			c.problems = append(c.problems, c.src.problemAt(n, fieldPath(path), err.Error(), ""))
			return nil
		}
		switch x := v.(type) {
		case float64:
			if math.IsInf(x, 0) || math.IsNaN(x) {
				c.problems = append(c.problems, c.src.problemAt(n, fieldPath(path), fmt.Sprintf("%s is not a finite number", n.Value), ""))
				return nil
			}
		case int, int64, uint64, string, bool, nil:
		default:
			// timestamps and binary: keep the text as written
			return n.Value
		}
		return v
	}
	return nil
}
