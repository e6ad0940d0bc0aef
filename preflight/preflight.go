// Package preflight holds drydock's read-only checks. Each check looks at the cluster (or at
// manifest files) and returns findings: a severity, the object, what is wrong and how to fix it.
// Nothing here writes to the cluster; the tests count every request to prove it.
package preflight

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	apiextclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/rest"
	aggregator "k8s.io/kube-aggregator/pkg/client/clientset_generated/clientset"

	"github.com/drydock-dev/drydock/preflight/apis"
	"github.com/drydock-dev/drydock/runbook"
)

// Severity of a finding: error, warning or info.
type Severity = runbook.Severity

// Finding is one thing a check found.
type Finding struct {
	Check    string   `json:"check"`
	Severity Severity `json:"severity" jsonschema:"enum=error,enum=warning,enum=info"`
	// Object is "Kind namespace/name", "file:line" or a node, budget, ... as the check sees it.
	Object string `json:"object"`
	// ObjectRef is the Kubernetes object the finding is about, when there is one: kind, namespace
	// and name as fields, so that a consumer never parses Object.
	ObjectRef `json:",inline"`
	Message   string `json:"message"`
	Fix       string `json:"fix,omitempty"`
	// Source says where an API use was seen: managedFields, last-applied, helm, manifest, metrics, crd.
	Source string  `json:"source,omitempty"`
	API    *APIUse `json:"api,omitempty"`
	// Reference is where the rule behind the finding comes from (a release note, a pull request, the
	// generated feature-gate table).
	Reference string `json:"reference,omitempty"`
	// Addon is the add-on an addon-check finding is about.
	Addon *AddonUse `json:"addon,omitempty"`
	// File and Line locate findings in manifest files (for SARIF).
	File string `json:"file,omitempty"`
	Line int    `json:"line,omitempty"`
	// NotAllowed: the check could not examine this because the credentials lack a permission; the
	// report is incomplete (drydock preflight exits 6). CouldNotCheck is then "forbidden".
	NotAllowed bool `json:"notAllowed,omitempty"`
	// CouldNotCheck says why the check could not examine Object: forbidden, not-found, timeout,
	// unavailable or error. Such a finding is never an upgrade finding (--fail-on never counts it,
	// and the table lists it apart); forbidden ones make the report incomplete (exit 6), the others
	// do with --strict.
	CouldNotCheck string `json:"couldNotCheck,omitempty" jsonschema:"enum=forbidden,enum=not-found,enum=timeout,enum=unavailable,enum=error"`
}

// Why a check could not examine something.
const (
	CouldNotForbidden   = "forbidden"
	CouldNotNotFound    = "not-found"
	CouldNotTimeout     = "timeout"
	CouldNotUnavailable = "unavailable"
	CouldNotError       = "error"
)

// couldNotCheck is the finding for something a check could not examine because of err: the reason
// from the error's kind, and a fix that fits it.
func couldNotCheck(object, what string, err error) Finding {
	f := Finding{Severity: runbook.SeverityWarning, Object: object, Message: what + ": " + err.Error()}
	switch {
	case apierrors.IsForbidden(err):
		f.CouldNotCheck, f.NotAllowed = CouldNotForbidden, true
		f.Fix = "grant the read-only role in deploy/ (or run with --as a user who has it)"
	case apierrors.IsNotFound(err):
		f.CouldNotCheck, f.Fix = CouldNotNotFound, "the cluster does not serve it; nothing to do if that is expected"
	case apierrors.IsTimeout(err), apierrors.IsServerTimeout(err), errors.Is(err, context.DeadlineExceeded):
		f.CouldNotCheck, f.Fix = CouldNotTimeout, "run again when the apiserver is less busy, or give the check more time (--cluster-timeout for a fleet)"
	case apierrors.IsServiceUnavailable(err), apierrors.IsTooManyRequests(err), apierrors.IsInternalError(err), utilnet.IsConnectionRefused(err), utilnet.IsConnectionReset(err):
		f.CouldNotCheck, f.Fix = CouldNotUnavailable, "the apiserver (or the aggregated API behind it) did not answer: check its health and run again"
	default:
		f.CouldNotCheck, f.Fix = CouldNotError, "run again; if it persists, the message says what failed"
	}
	return f
}

// CouldNot lists the findings that say what could not be examined.
func CouldNot(fs []Finding) []Finding {
	var out []Finding
	for _, f := range fs {
		if f.CouldNotCheck != "" {
			out = append(out, f)
		}
	}
	return out
}

// ObjectRef names a Kubernetes object.
type ObjectRef struct {
	Kind      string `json:"kind,omitempty"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name,omitempty"`
}

// Ref is the ObjectRef of kind namespace/name (namespace "" for a cluster-scoped object).
func Ref(kind, namespace, name string) ObjectRef {
	return ObjectRef{Kind: kind, Namespace: namespace, Name: name}
}

// String is the object as the table shows it: "Kind namespace/name" or "Kind name".
func (r ObjectRef) String() string {
	switch {
	case r.Name == "":
		return r.Kind
	case r.Namespace == "":
		return r.Kind + " " + r.Name
	}
	return r.Kind + " " + r.Namespace + "/" + r.Name
}

// APIUse is the API version a finding is about.
type APIUse struct {
	APIVersion   string `json:"apiVersion"`
	Kind         string `json:"kind,omitempty"`
	DeprecatedIn string `json:"deprecatedIn,omitempty"`
	RemovedIn    string `json:"removedIn,omitempty"`
	Replacement  string `json:"replacement,omitempty"`
}

// Runbook turns the finding into the engine's event form.
func (f Finding) Runbook() runbook.Finding {
	msg := f.Message
	if f.Source != "" {
		msg += " [" + f.Source + "]"
	}
	return runbook.Finding{Severity: f.Severity, Object: f.Object, Message: msg, Hint: f.Fix}
}

// Input is what the checks look at.
type Input struct {
	// Cluster clients; all nil when only files are scanned.
	Kube       kubernetes.Interface
	Metadata   metadata.Interface
	APIExt     apiextclient.Interface
	Aggregator aggregator.Interface

	// Server is the apiserver's version (zero without a cluster); Target the release to check for.
	Server, Target apis.Release
	ServerVersion  string
	// Manifests are files and directories to scan for API versions; "-" is Stdin.
	Manifests []string
	// Stdin is the text of --manifests - (standard input, read once by the command).
	Stdin []byte
	// Helm scans the Helm releases stored in the cluster.
	Helm bool
	// Access lists what the work about to run needs (the access check asks about each).
	Access []runbook.Access
	// Velero configures the velero check.
	Velero VeleroInput
	// REST is the cluster's config (for APIs without a clientset, such as Velero's).
	REST *rest.Config
	// Progress, when set, is told what the checks are doing, one call at a time.
	Progress   func(string)
	progressMu sync.Mutex
}

// NewInput builds the clients from a REST config. A nil config makes a files-only input.
func NewInput(cfg *rest.Config) (*Input, error) {
	in := &Input{Helm: true}
	if cfg == nil {
		return in, nil
	}
	cfg = rest.CopyConfig(cfg)
	// The scan lists every resource type in parallel, page by page: client-go's default 5 QPS would
	// make it crawl.
	cfg.QPS, cfg.Burst = 100, 200
	// The checks report deprecated APIs as findings; the apiserver's warnings about the ones the
	// scan itself lists would only repeat them on stderr.
	cfg.WarningHandler = rest.NoWarnings{}
	in.REST = cfg
	var err error
	// Built-in types in protobuf: cheaper for the apiserver to encode and for drydock to decode
	// than JSON (what kubectl and the controllers use too).
	pb := rest.CopyConfig(cfg)
	pb.ContentType = runtime.ContentTypeProtobuf
	pb.AcceptContentTypes = runtime.ContentTypeProtobuf + "," + runtime.ContentTypeJSON
	if in.Kube, err = kubernetes.NewForConfig(pb); err != nil {
		return nil, err
	}
	if in.Metadata, err = metadata.NewForConfig(cfg); err != nil {
		return nil, err
	}
	if in.APIExt, err = apiextclient.NewForConfig(cfg); err != nil {
		return nil, err
	}
	if in.Aggregator, err = aggregator.NewForConfig(cfg); err != nil {
		return nil, err
	}
	return in, nil
}

// Cluster reports whether there is a cluster to look at.
func (in *Input) Cluster() bool { return in.Kube != nil }

// progress tells Progress, one call at a time (the checks run at once).
func (in *Input) progress(format string, args ...any) {
	if in.Progress != nil {
		in.progressMu.Lock()
		defer in.progressMu.Unlock()
		in.Progress(fmt.Sprintf(format, args...))
	}
}

// ResolveTarget checks the target release against the server's: default the next minor; never a
// downgrade, a skipped minor, or a release drydock's API table cannot know.
func ResolveTarget(flag string, server apis.Release) (apis.Release, error) {
	newest := apis.Release{Major: apis.Pinned.Major, Minor: apis.Pinned.Minor + 1}
	if flag == "" {
		if server.IsZero() {
			return apis.Release{}, errors.New("no target version: give --target (e.g. --target v1.37) when there is no cluster to read it from")
		}
		return apis.Release{Major: server.Major, Minor: server.Minor + 1}, nil
	}
	t, err := apis.ParseRelease(flag)
	if err != nil {
		return apis.Release{}, err
	}
	if !server.IsZero() {
		switch {
		case t.Major != server.Major || t.Minor < server.Minor:
			return apis.Release{}, fmt.Errorf("target %s is older than the cluster (%s): Kubernetes does not support downgrades", t, server)
		case t.Minor > server.Minor+1:
			return apis.Release{}, fmt.Errorf("target %s skips a minor release: the cluster is at %s, so the next step is %d.%d; upgrade one minor at a time", t, server, server.Major, server.Minor+1)
		}
	}
	if !t.AtOrBefore(newest) {
		return apis.Release{}, fmt.Errorf("target %s is unknown to this drydock: it knows the API lifecycle up to %s (built with k8s.io/api %s); use a newer drydock", t, newest, apis.PinnedModule)
	}
	return t, nil
}

// Check is one read-only check.
type Check struct {
	Name        string
	Description string
	// Files runs without a cluster too (the API scan of manifest files).
	Files bool
	Run   func(ctx context.Context, in *Input) ([]Finding, error)
}

// Checks, in the order they run.
var Checks = []Check{
	{Name: "api-scan", Description: "deprecated and removed API versions in stored objects, Helm releases, manifest files, client requests and CRDs", Files: true, Run: scanAPIs},
	{Name: "pdb-check", Description: "PodDisruptionBudgets that block drains or do not protect what they should", Run: checkPDBs},
	{Name: "traffic-check", Description: "workloads behind Services that lose requests when drained: no readiness probe, no preStop delay, no grace, one node or one replica", Run: checkTraffic},
	{Name: "skew-check", Description: "the target against the version-skew policy for the apiservers and kubelets", Run: checkSkew},
	{Name: "health-check", Description: "nodes, kube-system pods, APIServices and admission webhooks that break an upgrade", Run: checkHealth},
	{Name: "config-check", Description: "flags and feature gates the target removes or locks (static pods, kubeadm, kubelets), kubeadm configuration and in-tree volume plugins it drops", Run: checkConfig},
	{Name: "addon-check", Description: "installed add-ons (CNI, CoreDNS, kube-proxy, ingress, mesh, autoscalers, ...) against the Kubernetes versions each supports", Run: checkAddons},
	{Name: "velero", Description: "Velero installed, its storage locations Available, a recent Completed backup", Run: checkVelero},
	{Name: "access-check", Description: "the permissions the work needs, asked with SelfSubjectAccessReview", Run: checkAccess},
}

// Lookup finds a check by name.
func Lookup(name string) (Check, bool) {
	for _, c := range Checks {
		if c.Name == name {
			return c, true
		}
	}
	return Check{}, false
}

// Names lists the checks.
func Names() []string {
	var out []string
	for _, c := range Checks {
		out = append(out, c.Name)
	}
	return out
}

// Result is one check's outcome.
type Result struct {
	Check       string        `json:"check"`
	Description string        `json:"description"`
	Findings    []Finding     `json:"findings"`
	Skipped     string        `json:"skipped,omitempty"`
	Duration    time.Duration `json:"-"`
}

// Report is the outcome of a pre-flight run.
type Report struct {
	// SchemaVersion is the shape of this report (SchemaVersion); docs/preflight-report.schema.json.
	SchemaVersion int      `json:"schemaVersion"`
	Cluster       string   `json:"cluster,omitempty"`
	Server        string   `json:"serverVersion,omitempty"`
	Target        string   `json:"target"`
	Results       []Result `json:"checks"`
}

// Findings returns every finding of the report.
func (r *Report) Findings() []Finding {
	var out []Finding
	for _, res := range r.Results {
		out = append(out, res.Findings...)
	}
	return out
}

// Run runs the named checks (all when names is empty). A check that is not allowed to read what it
// needs reports that as a finding; other failures end the run.
func Run(ctx context.Context, in *Input, names []string) (*Report, error) {
	if len(names) == 0 {
		names = Names()
	}
	rep := &Report{SchemaVersion: SchemaVersion, Target: in.Target.String(), Server: in.ServerVersion, Results: []Result{}}
	checks := make([]Check, len(names))
	for i, name := range names {
		c, ok := Lookup(name)
		if !ok {
			return nil, fmt.Errorf("preflight: no check %q (checks: %s)", name, strings.Join(Names(), ", "))
		}
		checks[i] = c
	}
	// The checks are read-only and independent: they run at once, so that a cluster far away costs
	// the round trips of the longest check, not of all of them one after another. The report keeps
	// their order.
	type outcome struct {
		found    []Finding
		err      error
		duration time.Duration
	}
	outcomes := make([]outcome, len(checks))
	var wg sync.WaitGroup
	for i, c := range checks {
		if !in.Cluster() && !c.Files {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			in.progress("%s: %s", c.Name, c.Description)
			start := time.Now()
			found, err := c.Run(ctx, in)
			outcomes[i] = outcome{found, err, time.Since(start)}
		}()
	}
	wg.Wait()
	for i, c := range checks {
		res := Result{Check: c.Name, Description: c.Description, Findings: []Finding{}}
		if !in.Cluster() && !c.Files {
			res.Skipped = "no cluster"
			rep.Results = append(rep.Results, res)
			continue
		}
		found, err := outcomes[i].found, outcomes[i].err
		res.Duration = outcomes[i].duration
		if err != nil {
			if ctx.Err() != nil && !errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return nil, fmt.Errorf("preflight %s: %w", c.Name, err) // interrupted
			}
			// What the check found before it failed stays; what it could not examine is said.
			found = append(found, couldNotCheck(c.Name, "the check could not finish", err))
		}
		for i := range found {
			found[i].Check = c.Name
			if found[i].Object == "" {
				found[i].Object = found[i].ObjectRef.String()
			}
		}
		Sort(found)
		if found != nil {
			res.Findings = found // else the empty list it started with: JSON has [], never null
		}
		rep.Results = append(rep.Results, res)
	}
	return rep, nil
}

var severityRank = map[Severity]int{runbook.SeverityError: 0, runbook.SeverityWarning: 1, runbook.SeverityInfo: 2}

// Sort orders findings: errors first, then by object and message.
func Sort(fs []Finding) {
	sort.SliceStable(fs, func(i, j int) bool {
		a, b := fs[i], fs[j]
		if severityRank[a.Severity] != severityRank[b.Severity] {
			return severityRank[a.Severity] < severityRank[b.Severity]
		}
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		if a.Object != b.Object {
			return a.Object < b.Object
		}
		if a.Message != b.Message {
			return a.Message < b.Message
		}
		if a.Source != b.Source { // found at once from several sources: the order stays the same
			return a.Source < b.Source
		}
		return a.Fix < b.Fix
	})
}

// FailOn is the level at which findings fail a run.
type FailOn string

const (
	FailOnRemoved    FailOn = "removed"    // error findings (removed APIs, budgets that block every drain, ...)
	FailOnDeprecated FailOn = "deprecated" // and deprecated APIs
	FailOnWarning    FailOn = "warning"    // and every warning
	FailOnNever      FailOn = "never"      // report only
)

// FailOnValues lists the levels.
var FailOnValues = []string{string(FailOnRemoved), string(FailOnDeprecated), string(FailOnWarning), string(FailOnNever)}

// Fails says whether f reaches the level. What could not be checked is never an upgrade finding.
func (l FailOn) Fails(f Finding) bool {
	if f.CouldNotCheck != "" {
		return false
	}
	switch l {
	case FailOnNever:
		return false
	case FailOnWarning:
		return f.Severity == runbook.SeverityError || f.Severity == runbook.SeverityWarning
	case FailOnDeprecated:
		return f.Severity == runbook.SeverityError || f.Severity == runbook.SeverityWarning && f.API != nil
	}
	return f.Severity == runbook.SeverityError
}

// Failing counts the findings that reach the level.
func (l FailOn) Failing(fs []Finding) int {
	n := 0
	for _, f := range fs {
		if l.Fails(f) {
			n++
		}
	}
	return n
}
