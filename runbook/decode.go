package runbook

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	validator "github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"go.yaml.in/yaml/v3"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// Load reads and checks a runbook file. On any problem it returns Problems: every problem in the
// file, each at its line and column, sorted by position.
func Load(path string, reg Registry) (*Runbook, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read runbook: %w", err)
	}
	defer f.Close()
	// Never more than the limit and a byte: a runbook that is really a disk image, /dev/zero or a
	// 5 GB log is refused after 1 MiB, not read whole.
	data, err := io.ReadAll(io.LimitReader(f, MaxRunbookBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read runbook %s: %w", path, err)
	}
	if len(data) > MaxRunbookBytes {
		size := "more than 1 MiB"
		if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
			size = fmt.Sprintf("%d bytes", fi.Size())
		}
		src := &Source{Path: path, Text: data}
		return nil, Problems{src.tooLarge(size)}
	}
	return Parse(path, data, reg)
}

// Parse checks a runbook's text: YAML syntax, then the schema (unknown fields, types, values), then
// decoding into the step kinds' settings, then the rules the schema cannot say (Validate).
func Parse(path string, data []byte, reg Registry) (*Runbook, error) {
	src := &Source{Path: path, Text: data}
	if p, bad := src.checkBytes(); bad {
		return nil, Problems{p}
	}
	value, problems := parseYAML(src)
	if value == nil && len(problems) > 0 {
		return nil, problems
	}
	if p, bad := src.checkSteps(); bad {
		return nil, Problems{p}
	}
	schema, err := compileSchema(reg)
	if err != nil {
		return nil, err
	}
	if value != nil {
		if err := schema.Validate(value); err != nil {
			var ve *validator.ValidationError
			if !errors.As(err, &ve) {
				return nil, err
			}
			problems = append(problems, schemaProblems(src, reg, ve)...)
		}
	}
	if len(problems) > 0 {
		// Report the rules the schema cannot say as well, from whatever decodes, so that one run of
		// `drydock validate` shows every problem.
		problems = append(problems, checkSteps(stepsOnly(src, value, reg, problems), reg)...)
		sortProblems(problems)
		return nil, dedupe(problems)
	}

	rb, problems := decode(src, value, reg)
	if len(problems) == 0 {
		problems = Validate(rb, reg)
	}
	if len(problems) > 0 {
		sortProblems(problems)
		return nil, problems
	}
	return rb, nil
}

func decode(src *Source, value any, reg Registry) (*Runbook, Problems) {
	text, err := json.Marshal(value)
	if err != nil {
		return nil, Problems{{File: src.Path, Message: err.Error()}}
	}
	var rb Runbook
	if err := strictJSON(text, &rb); err != nil {
		return nil, Problems{src.problemAt(src.root, "", err.Error(), "")}
	}
	rb.Source = src
	var problems Problems
	for i := range rb.Spec.Steps {
		s := &rb.Spec.Steps[i]
		k, ok := reg.Lookup(s.Type)
		if !ok {
			continue // the schema reported it
		}
		s.Step = k.New()
		with := s.With
		if len(with) == 0 {
			with = []byte("{}")
		}
		if err := strictJSON(with, s.Step); err != nil {
			field := fmt.Sprintf("spec.steps[%d].with", i)
			var te *json.UnmarshalTypeError
			if errors.As(err, &te) && te.Field != "" {
				field += "." + te.Field
			}
			problems = append(problems, src.problemAt(src.lookup(parseFieldPath(field), false), field, err.Error(), ""))
		}
	}
	return &rb, problems
}

// stepsOnly reads the steps of a runbook that failed the schema: names, types, timeouts, and the
// settings of each step whose with: the schema found nothing wrong in, so that their own rules are
// checked too (a step of an unknown type, or a typo anywhere, hides no other problem).
func stepsOnly(src *Source, value any, reg Registry, problems Problems) *Runbook {
	rb := &Runbook{Source: src}
	root, _ := value.(map[string]any)
	spec, _ := root["spec"].(map[string]any)
	rb.Spec.AllowAnyOrder, _ = spec["allowAnyOrder"].(bool)
	steps, _ := spec["steps"].([]any)
	for i, s := range steps {
		m, _ := s.(map[string]any)
		name, _ := m["name"].(string)
		typ, _ := m["type"].(string)
		step := StepSpec{Name: name, Type: typ}
		if t, ok := m["timeout"].(string); ok {
			step.Timeout.Duration, _ = time.ParseDuration(t)
		}
		step.Step = settingsOf(reg, typ, m["with"], problems.under(fmt.Sprintf("spec.steps[%d].with", i)))
		rb.Spec.Steps = append(rb.Spec.Steps, step)
	}
	return rb
}

// settingsOf decodes a step's with: into its kind's settings, or nil when the kind is unknown, the
// schema found a problem in it (bad), or it does not decode.
func settingsOf(reg Registry, typ string, with any, bad bool) Step {
	k, ok := reg.Lookup(typ)
	if !ok || bad {
		return nil
	}
	if with == nil {
		with = map[string]any{}
	}
	text, err := json.Marshal(with)
	if err != nil {
		return nil
	}
	st := k.New()
	if strictJSON(text, st) != nil {
		return nil
	}
	return st
}

// under says whether a problem is at field or inside it.
func (ps Problems) under(field string) bool {
	for _, p := range ps {
		if p.Field == field || strings.HasPrefix(p.Field, field+".") || strings.HasPrefix(p.Field, field+"[") {
			return true
		}
	}
	return false
}

func dedupe(ps Problems) Problems {
	seen := map[string]bool{}
	var out Problems
	for _, p := range ps {
		key := fmt.Sprintf("%d:%d:%s", p.Line, p.Column, p.Message)
		if !seen[key] {
			seen[key] = true
			out = append(out, p)
		}
	}
	return out
}

func strictJSON(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

var printer = message.NewPrinter(language.English)

// schemaProblems turns the validator's error tree into problems at their places.
func schemaProblems(src *Source, reg Registry, root *validator.ValidationError) Problems {
	var leaves []*validator.ValidationError
	var walk func(e *validator.ValidationError)
	walk = func(e *validator.ValidationError) {
		if len(e.Causes) == 0 || isIntOrPercent(e) {
			leaves = append(leaves, e)
			return
		}
		for _, c := range e.Causes {
			walk(c)
		}
	}
	walk(root)

	var problems Problems
	seen := map[string]bool{}
	for _, e := range leaves {
		for _, p := range leafProblems(src, reg, e) {
			key := fmt.Sprintf("%d:%d:%s", p.Line, p.Column, p.Message)
			if !seen[key] {
				seen[key] = true
				problems = append(problems, p)
			}
		}
	}
	return problems
}

func leafProblems(src *Source, reg Registry, e *validator.ValidationError) []Problem {
	path := e.InstanceLocation
	field := fieldPath(path)
	at := func(msg, hint string) []Problem {
		return []Problem{src.problemAt(src.lookup(path, false), field, msg, hint)}
	}
	switch k := e.ErrorKind.(type) {
	case *kind.OneOf:
		if isIntOrPercent(e) {
			return at(intOrPercentProblem(src.lookup(path, false)))
		}
	case *kind.AdditionalProperties:
		allowed := allowedProperties(e.SchemaURL)
		var out []Problem
		for _, prop := range k.Properties {
			hint := ""
			if s := suggest(prop, allowed); s != "" {
				hint = fmt.Sprintf("did you mean %q?", s)
			} else if len(allowed) > 0 {
				hint = "allowed here: " + strings.Join(allowed, ", ")
			}
			p := append(append([]string{}, path...), prop)
			out = append(out, src.problemAt(src.lookup(p, true), fieldPath(p), "unknown field", hint))
		}
		return out
	case *kind.Required:
		var out []Problem
		for _, m := range k.Missing {
			out = append(out, src.problemAt(src.lookup(path, false), field, fmt.Sprintf("missing required field %q", m), ""))
		}
		return out
	case *kind.Type:
		if k.Got == "null" {
			return at("is empty: it needs a value ("+strings.Join(k.Want, " or ")+")", "")
		}
		return at(fmt.Sprintf("must be %s, not %s", article(strings.Join(k.Want, " or ")), article(k.Got)), typeHint(k))
	case *kind.Enum:
		var want []string
		for _, w := range k.Want {
			want = append(want, fmt.Sprint(w))
		}
		got := fmt.Sprint(k.Got)
		hint := ""
		if s := suggest(got, want); s != "" {
			hint = fmt.Sprintf("did you mean %q?", s)
		}
		if len(path) > 0 && path[len(path)-1] == "type" && len(path) >= 3 && path[len(path)-3] == "steps" {
			if hint == "" {
				hint = "the step types are: " + strings.Join(reg.Names(), ", ")
			} else {
				hint += " The step types are: " + strings.Join(reg.Names(), ", ")
			}
			return at(fmt.Sprintf("unknown step type %q", got), hint)
		}
		return at(fmt.Sprintf("%q is not one of: %s", got, strings.Join(want, ", ")), hint)
	case *kind.Pattern:
		msg, hint := patternMessage(k)
		return at(msg, hint)
	case *kind.MinItems:
		return at(fmt.Sprintf("needs at least %d item(s)", k.Want), "")
	case *kind.MinLength:
		return at("must not be empty", "")
	case *kind.MaxLength:
		return at(fmt.Sprintf("is longer than %d characters", k.Want), "")
	case *kind.Minimum:
		return at(fmt.Sprintf("must be at least %v", k.Want), "")
	case *kind.Maximum:
		return at(fmt.Sprintf("must be at most %v", k.Want), "")
	case *kind.FalseSchema:
		return at("is not allowed here", "")
	}
	return at(e.ErrorKind.LocalizedString(printer), "")
}

// isIntOrPercent: e is an IntOrPercent that is neither a count nor a percentage. Its oneOf fails
// in both branches, and each would say something that the other contradicts ("must be at least 1",
// "must be a string"): intOrPercentProblem says it once.
func isIntOrPercent(e *validator.ValidationError) bool {
	_, ok := e.ErrorKind.(*kind.OneOf)
	return ok && strings.HasSuffix(e.SchemaURL, "#/$defs/IntOrPercent")
}

// intOrPercentProblem is what is wrong with n, a value of an IntOrPercent field, and the fix.
func intOrPercentProblem(n *yaml.Node) (string, string) {
	const either = `write a count of at least 1 (2) or a percentage from 1% to 100% ("25%")`
	const none = `write 1 (one at a time: the default when the field is left out) or a percentage such as "25%"`
	n = deref(n)
	if n == nil || n.Kind != yaml.ScalarNode {
		return "must be a count or a percentage", either
	}
	v := n.Value
	if pct, ok := strings.CutSuffix(v, "%"); ok {
		if p, err := strconv.Atoi(pct); err == nil && p > 100 {
			return fmt.Sprintf("%s is more than 100%%: more than the whole group at once", v), `100% takes the whole group at once; write a percentage from 1% to 100%, or a count such as 2`
		} else if err == nil && p < 1 {
			return fmt.Sprintf("%s takes nothing at a time: the step would never finish", v), none
		}
		return fmt.Sprintf("%q is not a percentage", v), either
	}
	i, err := strconv.Atoi(v)
	switch {
	case err == nil && n.Tag == "!!str":
		return fmt.Sprintf("%q is a string", v), fmt.Sprintf(`write the count without quotes (%s), or a percentage ("25%%")`, v)
	case err == nil && i < 1:
		return fmt.Sprintf("must be at least 1: %d takes nothing at a time, so the step would never finish", i), none
	}
	return fmt.Sprintf("%q is neither a count nor a percentage", v), either
}

func article(s string) string {
	switch {
	case s == "":
		return s
	case strings.ContainsAny(s[:1], "aeiou"):
		return "an " + s
	}
	return "a " + s
}

func typeHint(k *kind.Type) string {
	if len(k.Want) == 1 && k.Want[0] == "string" && (k.Got == "number" || k.Got == "integer" || k.Got == "boolean") {
		return "quote the value to make it a string"
	}
	if len(k.Want) == 1 && k.Want[0] == "array" {
		return "write a list: [a, b] or one `- item` per line"
	}
	return ""
}

func patternMessage(k *kind.Pattern) (string, string) {
	switch k.Want {
	case DurationPattern:
		return fmt.Sprintf("%q is not a duration", k.Got), "use a number with a unit: 90s, 5m, 1h30m"
	case `^v?[0-9]+\.[0-9]+(\.[0-9]+)?$`:
		return fmt.Sprintf("%q is not a Kubernetes version", k.Got), "write it as v1.37 or v1.37.2"
	case `^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`, `^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`:
		return fmt.Sprintf("%q is not a valid name", k.Got), "use lowercase letters, digits and '-', starting and ending with a letter or digit"
	}
	return fmt.Sprintf("%q does not match %s", k.Got, k.Want), ""
}

var schemaDocs sync.Map // schema URL fragment -> allowed property names

// allowedProperties returns the property names of the schema object whose additionalProperties
// keyword failed, for "did you mean" hints.
func allowedProperties(schemaURL string) []string {
	_, frag, ok := strings.Cut(schemaURL, "#")
	if !ok {
		return nil
	}
	frag = strings.TrimSuffix(frag, "/additionalProperties")
	if v, ok := schemaDocs.Load(frag); ok {
		return v.([]string)
	}
	return nil
}

// indexSchemaProperties records, for every object in the schema, its property names by JSON pointer.
func indexSchemaProperties(schema []byte) {
	var doc any
	if err := json.Unmarshal(schema, &doc); err != nil {
		return
	}
	var walk func(v any, ptr string)
	walk = func(v any, ptr string) {
		m, ok := v.(map[string]any)
		if !ok {
			if l, ok := v.([]any); ok {
				for i, item := range l {
					walk(item, fmt.Sprintf("%s/%d", ptr, i))
				}
			}
			return
		}
		if props, ok := m["properties"].(map[string]any); ok {
			var names []string
			for name := range props {
				names = append(names, name)
			}
			sort.Strings(names)
			schemaDocs.Store(ptr, names)
		}
		for key, child := range m {
			walk(child, ptr+"/"+strings.ReplaceAll(strings.ReplaceAll(key, "~", "~0"), "/", "~1"))
		}
	}
	walk(doc, "")
}
