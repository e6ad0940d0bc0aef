package runbook

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// Source is a runbook file's text and its YAML tree, so that every problem can name its line and column.
type Source struct {
	Path  string
	Text  []byte
	root  *yaml.Node // the document's top node
	lines []string   // Text split into lines, when first needed
}

func (s *Source) line(n int) string {
	if s.lines == nil {
		s.lines = strings.Split(string(s.Text), "\n")
	}
	if n < 1 || n > len(s.lines) {
		return ""
	}
	return strings.TrimRight(s.lines[n-1], "\r")
}

// Input bounds: a runbook is a short text file. Anything larger is refused before it is parsed, so
// that `drydock validate` answers at once, in little memory, whatever it is given.
const (
	MaxRunbookBytes = 1 << 20 // 1 MiB; the largest example runbook is under 10 KiB
	MaxSteps        = 500
)

// position returns the line and column (1-based, in characters) of byte offset off.
func (s *Source) position(off int) (int, int) {
	before := s.Text[:off]
	line := 1 + bytes.Count(before, []byte("\n"))
	start := bytes.LastIndexByte(before, '\n') + 1
	return line, 1 + utf8.RuneCount(before[start:])
}

func (s *Source) problemAtOffset(off int, msg, hint string) Problem {
	line, col := s.position(off)
	return Problem{File: s.Path, Line: line, Column: col, Message: msg, Hint: hint, snippet: printable(s.line(line))}
}

// printable is a line fit to show under a problem: what a terminal cannot show is a '?' (one per
// byte or character, so the caret stays under its column); a very long line is not shown.
func printable(line string) string {
	if len(line) > 400 {
		return ""
	}
	var b strings.Builder
	for i := 0; i < len(line); {
		r, size := utf8.DecodeRuneInString(line[i:])
		if (r == utf8.RuneError && size <= 1) || (r < 0x20 && r != '\t') || r == 0x7f {
			r = '?'
		}
		b.WriteRune(r)
		i += size
	}
	return b.String()
}

// checkBytes refuses what is not a runbook-sized text before any parsing: an empty file, one over
// MaxRunbookBytes, binary data (NUL, control characters YAML forbids) and invalid UTF-8, each at
// its line and column.
func (s *Source) checkBytes() (Problem, bool) {
	start := "a runbook starts with `apiVersion: " + APIVersion + "` and `kind: " + KindRunbook + "`; `drydock schema` prints the full format"
	if len(bytes.TrimSpace(s.Text)) == 0 {
		return Problem{File: s.Path, Line: 1, Column: 1, Message: "the file is empty", Hint: start}, true
	}
	if len(s.Text) > MaxRunbookBytes {
		return s.tooLarge(fmt.Sprintf("%d bytes", len(s.Text))), true
	}
	for off := 0; off < len(s.Text); {
		r, size := utf8.DecodeRune(s.Text[off:])
		switch {
		case r == utf8.RuneError && size <= 1:
			return s.problemAtOffset(off, fmt.Sprintf("invalid UTF-8 (byte 0x%02x): this is not a text file", s.Text[off]), "a runbook is YAML text in UTF-8"), true
		case r == 0:
			return s.problemAtOffset(off, "a NUL byte: this is binary data, not a runbook", "a runbook is YAML text in UTF-8"), true
		case r < 0x20 && r != '\t' && r != '\n' && r != '\r', r == 0x7f:
			return s.problemAtOffset(off, fmt.Sprintf("control character U+%04X, which YAML does not allow", r), "remove it; a runbook is plain text"), true
		}
		off += size
	}
	return Problem{}, false
}

// tooLarge is the problem of a file over MaxRunbookBytes, placed where it goes past the limit.
func (s *Source) tooLarge(size string) Problem {
	off := min(MaxRunbookBytes, len(s.Text))
	// Do not cut a character in two.
	for off > 0 && off < len(s.Text) && !utf8.RuneStart(s.Text[off]) {
		off--
	}
	return s.problemAtOffset(off, fmt.Sprintf("the file is %s: a runbook may have at most %d bytes (1 MiB); this is where it goes past that", size, MaxRunbookBytes),
		"is this the right file? A runbook is a short YAML file")
}

// checkSteps refuses a runbook with more than MaxSteps steps, at the first step too many.
func (s *Source) checkSteps() (Problem, bool) {
	n := deref(s.lookup([]string{"spec", "steps"}, false))
	if n == nil || n.Kind != yaml.SequenceNode || len(n.Content) <= MaxSteps {
		return Problem{}, false
	}
	return s.problemAt(n.Content[MaxSteps], "spec.steps", fmt.Sprintf("%d steps: a runbook may have at most %d; this is step %d", len(n.Content), MaxSteps, MaxSteps+1),
		"split the upgrade into several runbooks"), true
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
		return nil, Problems{{File: s.Path, Line: 1, Column: 1, Message: "the file is empty", Hint: "a runbook starts with `apiVersion: " + APIVersion + "` and `kind: " + KindRunbook + "`; `drydock schema` prints the full format"}}
	}
	if len(docs) > 1 {
		return nil, Problems{s.problemAt(docs[1], "", "more than one YAML document: a runbook file holds one runbook", "split the file, one runbook per file")}
	}
	s.root = docs[0].Content[0]
	c := converter{src: s}
	v := c.convert(s.root, nil)
	return v, c.problems
}

// parserProblems are the syntax errors of libyaml's parser, as opposed to its scanner's. yaml.v3
// names the line where the construct that failed began (the block sequence, the mapping, the plain
// scalar), which may be far above where the parser gave up, and a parser error's it counts from 0.
var parserProblems = map[string]bool{
	"did not find expected <stream-start>": true, "did not find expected <document start>": true,
	"did not find expected node content": true, "did not find expected key": true,
	"did not find expected '-' indicator": true, "did not find expected ',' or ']'": true,
	"did not find expected ',' or '}'": true, "found duplicate %YAML directive": true,
	"found duplicate %TAG directive": true, "found incompatible YAML document": true,
	"found undefined tag handle": true,
}

// syntaxProblem places a YAML syntax error: an unclosed flow collection ({ or [) at its opening
// bracket, any other at the first line where the text, cut after it, fails the same way (where the
// parser gave up), on the line's first character.
func syntaxProblem(s *Source, err error) Problem {
	line, msg := 0, strings.TrimPrefix(err.Error(), "yaml: ")
	if m := yamlLineRE.FindStringSubmatch(err.Error()); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = m[2]
	}
	switch {
	case strings.HasPrefix(msg, "did not find expected ',' or "):
		// The line of the opening bracket, counted from 0; when that is the first line (0),
		// yaml.v3 names where the parser gave up instead.
		line++
		if closer := msg[len(msg)-2]; unclosed(s.line(line), closer) < 0 && unclosed(s.line(1), closer) >= 0 {
			line = 1
		}
	case parserProblems[msg]:
		line = s.failingLine(err, line+1)
	default:
		line = s.failingLine(err, line)
	}
	if line == 0 {
		// Not a place in the text (the text never fails this way when cut): at the end of the
		// text, where the parser gave up, rather than nowhere.
		return s.problemAtOffset(len(bytes.TrimRight(s.Text, " \t\r\n")), "invalid YAML: "+msg, "")
	}
	text := s.line(line)
	p := Problem{File: s.Path, Line: line, Column: syntaxColumn(text, msg), Message: "invalid YAML: " + msg, snippet: printable(text)}
	if strings.Contains(msg, "tab character") || strings.Contains(msg, "found character that cannot start any token") && strings.Contains(text, "\t") {
		p.Hint = "YAML does not allow tabs for indentation: use spaces"
	}
	return p
}

// syntaxColumn is the column (in characters, from 1) of a syntax error on its line: the unclosed
// bracket, the unknown alias, else the line's first character that is not a space.
func syntaxColumn(text, msg string) int {
	at := strings.IndexFunc(text, func(r rune) bool { return r != ' ' })
	switch {
	case strings.HasPrefix(msg, "did not find expected ',' or "):
		if i := unclosed(text, msg[len(msg)-2]); i >= 0 {
			at = i
		}
	case msg == "found unexpected end of stream": // an unclosed quote
		for _, q := range []string{`"`, "'"} {
			if strings.Count(text, q)%2 == 1 {
				at = strings.LastIndex(text, q)
				break
			}
		}
	case strings.HasPrefix(msg, "unknown anchor '"):
		name := strings.TrimSuffix(strings.TrimPrefix(msg, "unknown anchor '"), "' referenced")
		if i := strings.Index(text, "*"+name); i >= 0 {
			at = i
		}
	}
	return 1 + utf8.RuneCountInString(text[:max(at, 0)])
}

// unclosed is the byte offset in text of the last opening bracket of close ('}' or ']') left open
// on it, or -1.
func unclosed(text string, close byte) int {
	open := byte('{')
	if close == ']' {
		open = '['
	}
	var stack []int
	for i := 0; i < len(text); i++ {
		switch text[i] {
		case open:
			stack = append(stack, i)
		case close:
			if len(stack) > 0 {
				stack = stack[:len(stack)-1]
			}
		}
	}
	if len(stack) == 0 {
		return -1
	}
	return stack[len(stack)-1]
}

// failingLine is the first line from `from` on at which the text, cut after that line, fails to
// parse with err, or 0 when not even the whole text does. Once the cut text reaches where the
// parser gives up it fails the same way, so a binary search finds it in a few parses.
func (s *Source) failingLine(err error, from int) int {
	var ends []int // ends[i]: the offset after line i+1
	for i, b := range s.Text {
		if b == '\n' {
			ends = append(ends, i+1)
		}
	}
	if len(ends) == 0 || ends[len(ends)-1] != len(s.Text) {
		ends = append(ends, len(s.Text))
	}
	fails := func(line int) bool {
		e := yamlError(s.Text[:ends[line-1]])
		return e != nil && e.Error() == err.Error()
	}
	lo, hi := max(from, 1), len(ends)
	if lo > hi || !fails(hi) {
		return 0
	}
	for lo < hi {
		if mid := (lo + hi) / 2; fails(mid) {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return lo
}

// yamlError is the first error decoding every document of text, as parseYAML decodes them.
func yamlError(text []byte) error {
	dec := yaml.NewDecoder(bytes.NewReader(text))
	for {
		var doc yaml.Node
		if err := dec.Decode(&doc); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	}
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
