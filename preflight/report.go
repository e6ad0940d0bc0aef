package preflight

import (
	"bufio"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/owenrumney/go-sarif/v3/pkg/report/v210/sarif"
	"sigs.k8s.io/yaml"

	"github.com/drydock-dev/drydock/internal/buildinfo"
	"github.com/drydock-dev/drydock/runbook"
)

// Formats the report can be written in.
var Formats = []string{"table", "json", "yaml", "junit", "sarif", "markdown"}

// Write renders the report. failOn decides which findings are failures (JUnit, the summaries).
func Write(w io.Writer, format string, rep *Report, failOn FailOn) error {
	switch format {
	case "table", "":
		return writeTable(w, rep, failOn)
	case "json":
		return writeJSON(w, rep)
	case "yaml":
		b, err := yaml.Marshal(rep)
		if err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	case "junit":
		return writeJUnit(w, rep, failOn)
	case "sarif":
		return writeSARIF(w, rep)
	case "markdown":
		return writeMarkdown(w, rep, failOn)
	}
	return fmt.Errorf("unknown output format %q (one of %s)", format, strings.Join(Formats, ", "))
}

// findingsSlot is where a check's findings go in the report's JSON skeleton: JSON escapes the quotes
// of every string value, so the sequence can only be the field itself.
const findingsSlot = `"findings": []`

// writeJSON streams the report: the same bytes as an indented json.Encoder, but one finding at a
// time, so that a report of tens of thousands of findings is never held twice in memory (the
// skeleton is marshaled with empty findings, each finding on its own where the skeleton has its slot).
func writeJSON(w io.Writer, rep *Report) error {
	skeleton := *rep
	skeleton.Results = make([]Result, len(rep.Results))
	for i, r := range rep.Results {
		r.Findings = []Finding{}
		skeleton.Results[i] = r
	}
	b, err := json.MarshalIndent(&skeleton, "", "  ")
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	rest := string(b)
	for _, r := range rep.Results {
		i := strings.Index(rest, findingsSlot)
		if i < 0 {
			return errors.New("preflight: the report's JSON has no findings field")
		}
		head := rest[:i]
		indent := head[strings.LastIndexByte(head, '\n')+1:]
		bw.WriteString(head)
		rest = rest[i+len(findingsSlot):]
		if len(r.Findings) == 0 {
			bw.WriteString(findingsSlot)
			continue
		}
		bw.WriteString(`"findings": [`)
		for j := range r.Findings {
			fb, err := json.MarshalIndent(&r.Findings[j], indent+"  ", "  ")
			if err != nil {
				return err
			}
			if j > 0 {
				bw.WriteByte(',')
			}
			bw.WriteString("\n" + indent + "  ")
			bw.Write(fb)
		}
		bw.WriteString("\n" + indent + "]")
	}
	bw.WriteString(rest)
	bw.WriteByte('\n')
	return bw.Flush()
}

type counts struct{ errors, warnings, infos int }

// count counts the upgrade findings (not what could not be checked, which is listed apart).
func count(fs []Finding) counts {
	var c counts
	for _, f := range fs {
		if f.CouldNotCheck != "" {
			continue
		}
		switch f.Severity {
		case runbook.SeverityError:
			c.errors++
		case runbook.SeverityWarning:
			c.warnings++
		default:
			c.infos++
		}
	}
	return c
}

func (c counts) String() string {
	return fmt.Sprintf("%d %s, %d %s, %d info", c.errors, plural(c.errors, "error"), c.warnings, plural(c.warnings, "warning"), c.infos)
}

func plural(n int, s string) string {
	if n == 1 {
		return s
	}
	return s + "s"
}

func header(rep *Report) string {
	s := "pre-flight for Kubernetes " + rep.Target
	if rep.Server != "" {
		s += " (cluster at " + rep.Server + ")"
	} else {
		s += " (no cluster: files only)"
	}
	return s
}

func writeTable(w io.Writer, rep *Report, failOn FailOn) error {
	fmt.Fprintln(w, header(rep))
	writeTableBody(w, rep, failOn)
	return nil
}

func writeTableBody(w io.Writer, rep *Report, failOn FailOn) {
	for _, r := range rep.Results {
		if r.Skipped != "" {
			fmt.Fprintf(w, "\n%s: skipped (%s)\n", r.Check, r.Skipped)
			continue
		}
		fmt.Fprintf(w, "\n%s: %s\n", r.Check, count(r.Findings))
		for _, f := range r.Findings {
			if f.CouldNotCheck != "" {
				continue // listed under "could not check"
			}
			mark := " "
			if failOn.Fails(f) {
				mark = "✗"
			}
			fmt.Fprintf(w, "  %s %-7s %s\n            %s\n", mark, f.Severity, f.Object, f.Message)
			if f.Fix != "" {
				fmt.Fprintf(w, "            fix: %s\n", f.Fix)
			}
		}
	}
	all := rep.Findings()
	cnc := CouldNot(all)
	if len(cnc) > 0 {
		fmt.Fprintf(w, "\ncould not check (%d): not upgrade findings, but holes in this report\n", len(cnc))
		for _, f := range cnc {
			fmt.Fprintf(w, "  ? %-11s %s: %s\n            %s\n", f.CouldNotCheck, f.Check, f.Object, f.Message)
			if f.Fix != "" {
				fmt.Fprintf(w, "            fix: %s\n", f.Fix)
			}
		}
	}
	fmt.Fprintf(w, "\n%s; %d at or above --fail-on %s", count(all), failOn.Failing(all), failOn)
	if len(cnc) > 0 {
		fmt.Fprintf(w, "; %d could not be checked", len(cnc))
	}
	fmt.Fprintln(w)
}

func describe(f Finding) string {
	s := fmt.Sprintf("%s: %s", f.Object, f.Message)
	if f.Fix != "" {
		s += "\nfix: " + f.Fix
	}
	return s
}

type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name     string      `xml:"name,attr"`
	Tests    int         `xml:"tests,attr"`
	Failures int         `xml:"failures,attr"`
	Skipped  int         `xml:"skipped,attr"`
	Cases    []junitCase `xml:"testcase"`
}

type junitCase struct {
	Name      string         `xml:"name,attr"`
	Classname string         `xml:"classname,attr"`
	Time      string         `xml:"time,attr"`
	Skipped   *junitMessage  `xml:"skipped,omitempty"`
	Failures  []junitFailure `xml:"failure"`
	SystemOut string         `xml:"system-out,omitempty"`
}

type junitMessage struct {
	Message string `xml:"message,attr"`
}

type junitFailure struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr"`
	Text    string `xml:",chardata"`
}

// writeJUnit: a testcase per check, a failure per finding that reaches --fail-on; the other
// findings go to the testcase's output.
func writeJUnit(w io.Writer, rep *Report, failOn FailOn) error {
	suite := junitSuiteOf("drydock preflight "+rep.Target, rep, failOn)
	return encodeJUnit(w, junitSuites{Name: "drydock preflight", Tests: suite.Tests, Failures: suite.Failures, Suites: []junitSuite{suite}})
}

// junitSuiteOf is a report as one testsuite: a testcase per check.
func junitSuiteOf(name string, rep *Report, failOn FailOn) junitSuite {
	suite := junitSuite{Name: name}
	for _, r := range rep.Results {
		c := junitCase{Name: r.Check, Classname: "drydock.preflight", Time: fmt.Sprintf("%.3f", r.Duration.Seconds())}
		if r.Skipped != "" {
			c.Skipped = &junitMessage{Message: r.Skipped}
			suite.Skipped++
		}
		var out []string
		for _, f := range r.Findings {
			if failOn.Fails(f) {
				c.Failures = append(c.Failures, junitFailure{Message: f.Object + ": " + f.Message, Type: string(f.Severity), Text: describe(f)})
			} else {
				out = append(out, string(f.Severity)+" "+describe(f))
			}
		}
		c.SystemOut = strings.Join(out, "\n")
		if len(c.Failures) > 0 {
			suite.Failures++
		}
		suite.Tests++
		suite.Cases = append(suite.Cases, c)
	}
	return suite
}

func encodeJUnit(w io.Writer, doc junitSuites) error {
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}

var sarifLevel = map[Severity]string{runbook.SeverityError: sarif.LevelError, runbook.SeverityWarning: sarif.LevelWarning, runbook.SeverityInfo: sarif.LevelNote}

// writeSARIF writes SARIF 2.1.0: a rule per check; file findings carry their location, cluster
// findings a logical location naming the object.
func writeSARIF(w io.Writer, rep *Report) error {
	doc := sarif.NewReport()
	doc.AddRun(sarifRun(rep))
	return doc.PrettyWrite(w)
}

// sarifRun is a report as one SARIF run.
func sarifRun(rep *Report) *sarif.Run {
	run := sarif.NewRunWithInformationURI("drydock", "https://github.com/drydock-dev/drydock")
	run.Tool.Driver.WithVersion(buildinfo.Version)
	for _, r := range rep.Results {
		run.AddRule(r.Check).WithDescription(r.Description)
	}
	for _, r := range rep.Results {
		for _, f := range r.Findings {
			text := f.Message
			if f.Fix != "" {
				text += " Fix: " + f.Fix
			}
			res := run.CreateResultForRule(r.Check).WithLevel(sarifLevel[f.Severity]).WithMessage(sarif.NewTextMessage(text))
			if f.File != "" {
				uri := filepath.ToSlash(f.File)
				run.AddDistinctArtifact(uri)
				res.AddLocation(sarif.NewLocationWithPhysicalLocation(sarif.NewPhysicalLocation().
					WithArtifactLocation(sarif.NewSimpleArtifactLocation(uri)).
					WithRegion(sarif.NewSimpleRegion(f.Line, f.Line))))
			} else {
				res.AddLocation(sarif.NewLocation().AddLogicalLocation(sarif.NewLogicalLocation().WithFullyQualifiedName(f.Object)))
			}
		}
	}
	return run
}

func mdEscape(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ", "<", "&lt;", ">", "&gt;").Replace(s)
}

var mdIcon = map[Severity]string{runbook.SeverityError: "🔴 error", runbook.SeverityWarning: "🟡 warning", runbook.SeverityInfo: "🔵 info"}

// writeMarkdown writes a CI job summary.
func writeMarkdown(w io.Writer, rep *Report, failOn FailOn) error {
	fmt.Fprintf(w, "## drydock %s\n\n", header(rep))
	writeMarkdownBody(w, rep, failOn, "###")
	return nil
}

// writeMarkdownBody is the report under its heading: the counts, a table per check, the findings
// under sub-headings of level h.
func writeMarkdownBody(w io.Writer, rep *Report, failOn FailOn, h string) {
	all := rep.Findings()
	fmt.Fprintf(w, "%s; **%d** at or above `--fail-on %s`.\n\n", count(all), failOn.Failing(all), failOn)
	fmt.Fprintln(w, "| Check | Errors | Warnings | Info |")
	fmt.Fprintln(w, "|---|---:|---:|---:|")
	for _, r := range rep.Results {
		if r.Skipped != "" {
			fmt.Fprintf(w, "| %s | skipped: %s | | |\n", r.Check, r.Skipped)
			continue
		}
		c := count(r.Findings)
		fmt.Fprintf(w, "| %s | %d | %d | %d |\n", r.Check, c.errors, c.warnings, c.infos)
	}
	for _, r := range rep.Results {
		if count(r.Findings) == (counts{}) {
			continue
		}
		fmt.Fprintf(w, "\n%s %s\n\n| Severity | Object | Finding | Fix |\n|---|---|---|---|\n", h, r.Check)
		for _, f := range r.Findings {
			if f.CouldNotCheck == "" {
				fmt.Fprintf(w, "| %s | `%s` | %s | %s |\n", mdIcon[f.Severity], mdEscape(f.Object), mdEscape(f.Message), mdEscape(f.Fix))
			}
		}
	}
	if cnc := CouldNot(all); len(cnc) > 0 {
		fmt.Fprintf(w, "\n%s Could not check\n\n| Why | Check | Object | Message | Fix |\n|---|---|---|---|---|\n", h)
		for _, f := range cnc {
			fmt.Fprintf(w, "| ❔ %s | %s | `%s` | %s | %s |\n", f.CouldNotCheck, f.Check, mdEscape(f.Object), mdEscape(f.Message), mdEscape(f.Fix))
		}
	}
}
