package runbook

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// Fake step kinds, one per phase, for the pure-logic tests of this package.
type fakeSettings struct {
	Command []string `json:"command,omitempty"`
	Count   int      `json:"count,omitempty" jsonschema:"minimum=1"`
	Nested  *struct {
		Selector string   `json:"selector"`
		Items    []string `json:"items,omitempty"`
	} `json:"nested,omitempty"`
	Wait Duration     `json:"wait,omitzero"`
	Max  IntOrPercent `json:"max,omitzero"`
	kind string
}

func (f *fakeSettings) Name() string                    { return f.kind }
func (f *fakeSettings) Run(context.Context, *Env) error { return nil }
func (f *fakeSettings) ValidateSettings() (errs []FieldError) {
	if f.Count > 100 {
		errs = append(errs, FieldError{Field: "count", Message: "must be at most 100"})
	}
	return errs
}

func fakeKind(name string, phase Phase) Kind {
	return Kind{Name: name, Phase: phase, New: func() Step { return &fakeSettings{kind: name} }}
}

var testRegistry = Registry{
	fakeKind("fake", PhaseAny),
	fakeKind("check", PhaseCheck),
	fakeKind("backup", PhaseBackup),
	fakeKind("nodes", PhaseNodes),
}

const header = "apiVersion: drydock.dev/v1alpha1\nkind: Runbook\nmetadata: {name: t}\nspec:\n  targetVersion: v1.37.2\n"

func TestParseValid(t *testing.T) {
	rb, err := Parse("ok.yaml", []byte(header+`  defaults: {timeout: 10m}
  steps:
    - {name: a, type: check}
    - name: b
      type: fake
      timeout: 90s
      with: {command: [echo, hi], count: 3, nested: {selector: x=y}, wait: 1m}
    - {name: c, type: nodes, pause: after}
`), testRegistry)
	if err != nil {
		t.Fatal(err)
	}
	b := rb.Spec.Steps[1].Step.(*fakeSettings)
	if b.Count != 3 || b.Command[1] != "hi" || b.Nested.Selector != "x=y" || b.Wait.Minutes() != 1 {
		t.Fatalf("decoded %+v", b)
	}
	if rb.TimeoutOf(rb.Spec.Steps[0]).Minutes() != 10 || rb.TimeoutOf(rb.Spec.Steps[1]).Seconds() != 90 {
		t.Fatal("timeouts")
	}
	if rb.StateNamespace() != "kube-system" {
		t.Fatal(rb.StateNamespace())
	}
}

func TestParseProblems(t *testing.T) {
	for _, tc := range []struct {
		name, steps string
		want        []string
	}{
		{"order: check after nodes", "    - {name: a, type: nodes}\n    - {name: b, type: check}\n",
			[]string{`8:23: spec.steps[1].type: a check step (check) after a node step ("a", spec.steps[0])`, "spec.allowAnyOrder"}},
		{"order: backup after nodes", "    - {name: a, type: nodes}\n    - {name: b, type: fake}\n    - {name: c, type: backup}\n",
			[]string{"a backup step (backup) after a node step"}},
		{"settings validator", "    - {name: a, type: fake, with: {count: 500}}\n",
			[]string{"7:43: spec.steps[0].with.count: must be at most 100"}},
		{"schema minimum", "    - {name: a, type: fake, with: {count: 0}}\n",
			[]string{"7:43: spec.steps[0].with.count: must be at least 1"}},
		{"nested unknown", "    - {name: a, type: fake, with: {nested: {selectr: x}}}\n",
			[]string{`spec.steps[0].with.nested.selectr: unknown field`, `did you mean "selector"?`, `missing required field "selector"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("t.yaml", []byte(header+"  steps:\n"+tc.steps), testRegistry)
			var ps Problems
			if !errors.As(err, &ps) {
				t.Fatalf("want Problems, got %v", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("missing %q in:\n%v", w, err)
				}
			}
		})
	}
	_, err := Parse("t.yaml", []byte(header+"  allowAnyOrder: true\n  steps:\n    - {name: a, type: nodes}\n    - {name: b, type: check}\n"), testRegistry)
	if err != nil {
		t.Fatalf("allowAnyOrder should allow it: %v", err)
	}
}

func TestProblemCaretUnderMultibyte(t *testing.T) {
	p := Problem{File: "f", Line: 1, Column: 8, Message: "m", snippet: "name: é bad"}
	want := "f:1:8: m\n  1 | name: é bad\n    |        ^"
	if p.String() != want {
		t.Fatalf("got\n%s\nwant\n%s", p, want)
	}
}

func TestCheckTarget(t *testing.T) {
	for _, tc := range []struct {
		target, server string
		ok             bool
		mention        string
	}{
		{"v1.37.2", "v1.37.1", true, ""},
		{"v1.38.0", "v1.37.1", true, ""},
		{"v1.38", "v1.37.1", true, ""},
		{"v1.37", "v1.37.4", true, ""},
		{"v1.39.0", "v1.37.1", false, "upgrade to v1.38 first"},
		{"v1.36.5", "v1.37.1", false, "does not downgrade"},
		{"v1.37.0", "v1.37.1", false, "older"},
		{"v2.0.0", "v1.37.1", false, "major"},
	} {
		err := CheckTarget(tc.target, tc.server)
		if (err == nil) != tc.ok || (err != nil && !strings.Contains(err.Error(), tc.mention)) {
			t.Errorf("CheckTarget(%s, %s) = %v", tc.target, tc.server, err)
		}
	}
}

func TestSuggest(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"timout", "timeout"}, {"comand", "command"}, {"wiat", "wait"}, {"xyzzy", ""}, {"Steps", "steps"},
	} {
		if got := suggest(tc.in, []string{"timeout", "command", "wait", "steps", "exec"}); got != tc.want {
			t.Errorf("suggest(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestRegistryCheck(t *testing.T) {
	if err := testRegistry.Check(); err != nil {
		t.Fatal(err)
	}
	if err := append(Registry{fakeKind("fake", PhaseAny)}, testRegistry...).Check(); err == nil {
		t.Fatal("a duplicate kind must be refused")
	}
}

// FuzzParse: whatever the bytes, Parse returns a runbook or an error, never panics, and every
// problem it reports has a message.
func FuzzParse(f *testing.F) {
	seeds := []string{
		"",
		header + "  steps: [{name: a, type: fake}]\n",
		header + "  steps:\n    - name: a\n      type: fake\n      with: {command: [a], nested: {selector: b, items: [c]}}\n",
		"a: &x [*x]\n",
		"a: &a [1]\nb: &b [*a,*a,*a,*a]\nc: [*b,*b,*b,*b]\n",
		"? [a, b]\n: c\n",
		"apiVersion: 1\nkind: [Runbook]\nmetadata: 3\nspec: {steps: {}}\n",
		header + "  steps: [{name: a, type: fake, with: {wait: .inf}}]\n",
		"\t- x",
		"---\n---\n",
		"<<: {a: 1}\n",
		"spec: !!binary aGVsbG8=\n",
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		rb, err := Parse("fuzz.yaml", data, testRegistry)
		if (rb == nil) == (err == nil) {
			t.Fatalf("Parse returned runbook %v and error %v", rb != nil, err)
		}
		var ps Problems
		if errors.As(err, &ps) {
			for _, p := range ps {
				if p.Message == "" || p.String() == "" {
					t.Fatalf("empty problem: %#v", p)
				}
			}
		}
	})
}

// TestMalformedInputIsPlaced: every malformed input gets FILE:LINE:COL and says what is wrong,
// before any expensive parsing.
func TestMalformedInputIsPlaced(t *testing.T) {
	t.Parallel()
	manySteps := header + "  steps:\n" + strings.Repeat("    - {name: s, type: fake}\n", MaxSteps+1)
	for _, tc := range []struct {
		name string
		text string
		want string
	}{
		{"empty", "", "t.yaml:1:1: the file is empty"},
		{"only white space", "\n  \n\t\n", "t.yaml:1:1: the file is empty"},
		{"NUL byte", "apiVersion: drydock.dev/v1alpha1\nkind: Run\x00book\n", "t.yaml:2:10: a NUL byte"},
		{"binary garbage", "\x7fELF\x02\x01\x01\x00\x00", "t.yaml:1:1: control character U+007F"},
		{"invalid UTF-8", "apiVersion: drydock.dev/v1alpha1\nkind: \xff\xfe\n", "t.yaml:2:7: invalid UTF-8 (byte 0xff)"},
		{"control character", "apiVersion: x\x07\n", "t.yaml:1:14: control character U+0007"},
		{"trailing garbage", header + "  steps: []\n]]] garbage", "t.yaml:7:1: invalid YAML"},
		{"unclosed flow", header + "  steps: [{name: a, type: fake\n", "t.yaml:"},
		{"too large", header + strings.Repeat("# padding padding padding padding\n", MaxRunbookBytes/30), "the file is"},
		{"too many steps", manySteps, fmt.Sprintf("spec.steps: %d steps: a runbook may have at most %d", MaxSteps+1, MaxSteps)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := Parse("t.yaml", []byte(tc.text), testRegistry)
			var ps Problems
			if !errors.As(err, &ps) || len(ps) == 0 {
				t.Fatalf("want Problems, got %v", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("missing %q in:\n%v", tc.want, err)
			}
			if ps[0].Line < 1 || ps[0].Column < 1 {
				t.Fatalf("no line:col in %v", err)
			}
			if strings.ContainsAny(err.Error(), "\x00\x07\x7f") {
				t.Fatalf("raw control bytes in the message: %q", err.Error())
			}
		})
	}
}

// TestYAMLSyntaxErrorIsPlaced: a syntax error is at the line and column where it is, not where
// yaml.v3 says: it counts a parser error's lines from 0 and names the line where the block that
// failed began (for the bad indentation below it says line 6, the steps: line, and 7 for the
// unclosed brace on line 8).
func TestYAMLSyntaxErrorIsPlaced(t *testing.T) {
	t.Parallel()
	steps := header + "  steps:\n    - name: a\n      type: fake\n"
	for _, tc := range []struct {
		name, text, want, hint string
	}{
		{"unclosed flow mapping", steps + "      with: {count: 3\n    - name: b\n      type: fake\n",
			"t.yaml:9:13: invalid YAML: did not find expected ',' or '}'\n  9 |       with: {count: 3\n    |             ^", ""},
		{"unclosed flow sequence", steps + "      with: {command: [a, b}\n",
			"t.yaml:9:23: invalid YAML: did not find expected ',' or ']'", ""},
		{"key indented less than its step", steps + "     with: {count: 3}\n    - name: b\n",
			"t.yaml:9:6: invalid YAML: did not find expected '-' indicator\n  9 |      with: {count: 3}\n    |      ^", ""},
		{"key indented less than its mapping", header + "  steps: []\n  defaults:\n    timeout: 5m\n   x: 1\n",
			"t.yaml:9:4: invalid YAML: did not find expected key", ""},
		{"sequence item after a mapping", header + "  steps: []\n- a\n", "t.yaml:7:1: invalid YAML: did not find expected key", ""},
		{"unknown alias", steps + "      with: {count: *three}\n", "t.yaml:9:21: invalid YAML: unknown anchor 'three' referenced", ""},
		{"tab indentation (a scanner error, at the scalar before)", steps + "\twith: {count: 3}\n",
			"t.yaml:9:1: invalid YAML: found a tab character that violates indentation", "tabs"},
		{"first line", "apiVersion: {x\n", "t.yaml:1:13: invalid YAML: did not find expected ',' or '}'", ""},
		{"flow sequence opened on the first line", "a: [\n  1,\n  2\nb: 3\n", "t.yaml:1:4: invalid YAML: did not find expected ',' or ']'", ""},
		{"tab before a key", "a: 1\n\tb: 2\n", "t.yaml:2:1: invalid YAML: found a tab character that violates indentation", "tabs"},
		{"tab before an item", "a: 1\nb:\n\t- x\n", "t.yaml:3:1: invalid YAML: found character that cannot start any token", "tabs"},
		{"unclosed quote", steps + "      with: {command: [\"a]}\n    - name: b\n", "t.yaml:9:24: invalid YAML: found unexpected end of stream", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := Parse("t.yaml", []byte(tc.text), testRegistry)
			var ps Problems
			if !errors.As(err, &ps) || len(ps) != 1 {
				t.Fatalf("want one problem, got %v", err)
			}
			if !strings.HasPrefix(err.Error(), tc.want) || !strings.Contains(ps[0].Hint, tc.hint) {
				t.Fatalf("got\n%v\nwant it to start\n%s", err, tc.want)
			}
		})
	}
}

// TestIntOrPercentOneProblem: a count or a percentage that is neither gets one problem that says
// what to write (not one per branch of the schema's oneOf, which contradict each other), and a
// percentage over 100% is refused (it took whole groups at once).
func TestIntOrPercentOneProblem(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		value, want, hint string
	}{
		{"0", "7:41: spec.steps[0].with.max: must be at least 1: 0 takes nothing at a time", "write 1"},
		{"-2", "must be at least 1: -2 takes nothing at a time", "write 1"},
		{"150%", "7:41: spec.steps[0].with.max: 150% is more than 100%", "from 1% to 100%"},
		{"0%", "0% takes nothing at a time", "write 1"},
		{`"2"`, `"2" is a string`, "without quotes (2)"},
		{"12.5%", `"12.5%" is not a percentage`, "from 1% to 100%"},
		{"many", `"many" is neither a count nor a percentage`, "a count of at least 1"},
		{"1.5", `"1.5" is neither a count nor a percentage`, "a count of at least 1"},
		{"[1]", "must be a count or a percentage", "a count of at least 1"},
		{"1", "", ""}, {"3", "", ""}, {"1%", "", ""}, {"25%", "", ""}, {"100%", "", ""},
	} {
		t.Run(tc.value, func(t *testing.T) {
			t.Parallel()
			_, err := Parse("t.yaml", []byte(header+"  steps:\n    - {name: a, type: fake, with: {max: "+tc.value+"}}\n"), testRegistry)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("%s is valid: %v", tc.value, err)
				}
				return
			}
			var ps Problems
			if !errors.As(err, &ps) || len(ps) != 1 {
				t.Fatalf("want exactly one problem, got %v", err)
			}
			if !strings.Contains(ps[0].String(), tc.want) || !strings.Contains(ps[0].Hint, tc.hint) {
				t.Fatalf("got\n%v\nwant %q, hint with %q", err, tc.want, tc.hint)
			}
		})
	}
}

// TestUnknownTypeHidesNothing: a step of an unknown type (or with no name) still has every other
// problem reported: its own, found by the schema and by the rules it cannot say, and the other
// steps' settings rules.
func TestUnknownTypeHidesNothing(t *testing.T) {
	t.Parallel()
	_, err := Parse("t.yaml", []byte(header+`  steps:
    - type: fakee
      pause: later
      timeout: 500ms
    - {name: b, type: fake, timeout: 200ms, with: {count: 500}}
    - {type: fake, timeout: 300ms, with: {count: 600}}
`), testRegistry)
	for _, want := range []string{
		`t.yaml:7:7: spec.steps[0]: missing required field "name"`,
		`t.yaml:7:13: spec.steps[0].type: unknown step type "fakee"`,
		`did you mean "fake"? The step types are: ` + strings.Join(testRegistry.Names(), ", "),
		`t.yaml:8:14: spec.steps[0].pause: "later" is not one of: before, after, none`,
		`t.yaml:9:16: spec.steps[0].timeout: must be at least 1s`,
		`t.yaml:10:38: spec.steps[1].timeout: must be at least 1s`,
		`t.yaml:10:59: spec.steps[1].with.count: must be at most 100`,
		`t.yaml:11:7: spec.steps[2]: missing required field "name"`,
		`spec.steps[2].timeout: must be at least 1s`,
		`spec.steps[2].with.count: must be at most 100`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in:\n%v", want, err)
		}
	}
}
