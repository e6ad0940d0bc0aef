package preflight

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/owenrumney/go-sarif/v3/pkg/report/v210/sarif"
	"sigs.k8s.io/yaml"
)

// FleetReport is one pre-flight report over several clusters (drydock preflight --contexts): each
// kubeconfig context's report, or why it could not be checked.
type FleetReport struct {
	SchemaVersion int             `json:"schemaVersion"`
	Kind          string          `json:"kind"` // FleetReport
	Clusters      []ClusterReport `json:"-"`
}

// ClusterReport is one cluster of a fleet: its report, or the error that kept it from being checked
// (unreachable, timed out, a kubeconfig context that does not load).
type ClusterReport struct {
	Context string `json:"context"`
	// Error: the cluster could not be checked at all; Report is then nil.
	Error   string `json:"error,omitempty"`
	*Report `json:",inline"`
}

// Checked says whether the cluster was checked (it may still have findings).
func (c ClusterReport) Checked() bool { return c.Error == "" && c.Report != nil }

// MarshalJSON keys the clusters by context, as the YAML and JSON report promise.
func (f *FleetReport) MarshalJSON() ([]byte, error) {
	byName := make(map[string]ClusterReport, len(f.Clusters))
	for _, c := range f.Clusters {
		byName[c.Context] = c
	}
	return json.Marshal(struct {
		SchemaVersion int                      `json:"schemaVersion"`
		Kind          string                   `json:"kind"`
		Clusters      map[string]ClusterReport `json:"clusters"`
	}{f.SchemaVersion, "FleetReport", byName})
}

// notAllowed counts what a cluster's report could not examine.
func (c ClusterReport) notAllowed() int {
	n := 0
	if c.Report != nil {
		for _, f := range c.Findings() {
			if f.NotAllowed {
				n++
			}
		}
	}
	return n
}

// Verdict is what the cluster's line in the summary says: a failing finding first (it is never
// masked by what could not be examined), then a report with holes.
func (c ClusterReport) Verdict(failOn FailOn) string {
	if !c.Checked() {
		return "could not check: " + c.Error
	}
	incomplete := ""
	if n := c.notAllowed(); n > 0 {
		incomplete = fmt.Sprintf("incomplete: %d thing(s) not allowed to be examined", n)
	}
	if n := failOn.Failing(c.Findings()); n > 0 {
		s := fmt.Sprintf("fails: %d at or above --fail-on %s", n, failOn)
		if incomplete != "" {
			s += "; " + incomplete
		}
		return s
	}
	if incomplete != "" {
		return incomplete
	}
	return "passes"
}

// WriteFleet renders a fleet report: a summary per cluster, then each cluster's findings (table,
// markdown); JSON and YAML keyed by cluster; JUnit with a testsuite per cluster; SARIF with a run
// per cluster.
func WriteFleet(w io.Writer, format string, f *FleetReport, failOn FailOn) error {
	f.Kind = "FleetReport"
	switch format {
	case "table", "":
		writeFleetSummary(w, f, failOn)
		for _, c := range f.Clusters {
			fmt.Fprintf(w, "\n=== context %s: ", c.Context)
			if !c.Checked() {
				fmt.Fprintf(w, "could not check: %s\n", c.Error)
				continue
			}
			fmt.Fprintln(w, header(c.Report))
			writeTableBody(w, c.Report, failOn)
		}
		return nil
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(f)
	case "yaml":
		b, err := yaml.Marshal(f)
		if err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	case "junit":
		doc := junitSuites{Name: "drydock preflight"}
		for _, c := range f.Clusters {
			var s junitSuite
			if c.Checked() {
				s = junitSuiteOf(c.Context, c.Report, failOn)
			} else {
				s = junitSuite{Name: c.Context, Tests: 1, Failures: 1, Cases: []junitCase{{Name: "reach the cluster", Classname: "drydock.preflight", Time: "0",
					Failures: []junitFailure{{Message: "could not check: " + c.Error, Type: "could-not-check", Text: c.Error}}}}}
			}
			doc.Tests += s.Tests
			doc.Failures += s.Failures
			doc.Suites = append(doc.Suites, s)
		}
		return encodeJUnit(w, doc)
	case "sarif":
		doc := sarif.NewReport()
		for _, c := range f.Clusters {
			rep := c.Report
			if !c.Checked() {
				rep = &Report{Results: []Result{{Check: "reach-cluster", Description: "reach the cluster",
					Findings: []Finding{{Check: "reach-cluster", Severity: "error", Object: c.Context, Message: "could not check: " + c.Error}}}}}
			}
			run := sarifRun(rep)
			run.AutomationDetails = sarif.NewRunAutomationDetails().WithID("drydock-preflight/" + c.Context)
			doc.AddRun(run)
		}
		return doc.PrettyWrite(w)
	case "markdown":
		fmt.Fprintf(w, "## drydock pre-flight: %d cluster(s)\n\n", len(f.Clusters))
		fmt.Fprintln(w, "| Context | Server | Target | Errors | Warnings | Info | Result |")
		fmt.Fprintln(w, "|---|---|---|---:|---:|---:|---|")
		for _, c := range f.Clusters {
			if !c.Checked() {
				fmt.Fprintf(w, "| %s | | | | | | ⛔ %s |\n", mdEscape(c.Context), mdEscape(c.Verdict(failOn)))
				continue
			}
			n := count(c.Findings())
			fmt.Fprintf(w, "| %s | %s | %s | %d | %d | %d | %s |\n", mdEscape(c.Context), c.Server, c.Target, n.errors, n.warnings, n.infos, mdEscape(c.Verdict(failOn)))
		}
		for _, c := range f.Clusters {
			if c.Checked() {
				fmt.Fprintf(w, "\n### %s: %s\n\n", mdEscape(c.Context), header(c.Report))
				writeMarkdownBody(w, c.Report, failOn, "####")
			}
		}
		return nil
	}
	return fmt.Errorf("unknown output format %q (one of %s)", format, strings.Join(Formats, ", "))
}

func writeFleetSummary(w io.Writer, f *FleetReport, failOn FailOn) {
	fmt.Fprintf(w, "pre-flight of %d cluster(s)\n\n", len(f.Clusters))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CONTEXT\tSERVER\tTARGET\tERRORS\tWARNINGS\tINFO\tRESULT")
	for _, c := range f.Clusters {
		if !c.Checked() {
			fmt.Fprintf(tw, "%s\t-\t-\t-\t-\t-\t%s\n", c.Context, c.Verdict(failOn))
			continue
		}
		n := count(c.Findings())
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%s\n", c.Context, c.Server, c.Target, n.errors, n.warnings, n.infos, c.Verdict(failOn))
	}
	_ = tw.Flush()
}
