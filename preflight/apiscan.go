package preflight

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/client-go/discovery"

	"github.com/drydock-dev/drydock/preflight/apis"
	"github.com/drydock-dev/drydock/runbook"
)

// Sources of an API use.
const (
	SourceManagedFields = "managedFields"
	SourceLastApplied   = "last-applied"
	SourceHelm          = "helm"
	SourceManifest      = "manifest"
	SourceMetrics       = "metrics"
	SourceCRD           = "crd"
)

// pageSize of the list calls: the scan holds at most one page per resource type it reads at once.
const pageSize = 500

// parallel resource types listed at once.
const parallel = 16

type crdVersion struct {
	served, deprecated bool
	warning            string
}

// discovered is the cluster's preferred resources, read once by whichever part of the scan asks
// first.
type discovered struct {
	once  sync.Once
	lists []*metav1.APIResourceList
	err   error
}

type scanner struct {
	in   *Input
	crds map[schema.GroupVersionKind]crdVersion
	// flagged are the kinds whose stored objects can show a finding: a built-in kind with a version
	// the target deprecates or removes, or a custom kind with a deprecated or unserved version.
	flagged map[schema.GroupKind]bool
	disc    discovered
	scope   map[schema.GroupKind]bool // namespaced, by kind, as the cluster serves it (read once)
	scopeMu sync.Mutex

	mu       sync.Mutex
	findings []Finding
}

func (s *scanner) add(f Finding) {
	s.mu.Lock()
	s.findings = append(s.findings, f)
	s.mu.Unlock()
}

func scanAPIs(ctx context.Context, in *Input) ([]Finding, error) {
	s := &scanner{in: in, crds: map[schema.GroupVersionKind]crdVersion{}, flagged: map[schema.GroupKind]bool{}}
	if in.Cluster() {
		// The cluster's CRDs first: a manifest using a deprecated or unserved CRD version is judged
		// by them, and the stored objects of a custom kind are read when one of its versions is
		// flagged. Discovery is read meanwhile.
		in.progress("api-scan: %s", "CRD versions")
		go s.discover()
		if err := s.crdVersions(ctx); err != nil {
			return s.findings, err
		}
	}
	if err := s.manifests(); err != nil {
		return nil, err
	}
	if !in.Cluster() {
		return s.findings, nil
	}
	// Stored objects, Helm releases and the apiserver's metrics are independent: read at once.
	g, gctx := errgroup.WithContext(ctx)
	for _, step := range []struct {
		what string
		run  func(context.Context) error
	}{
		{"stored objects", s.live},
		{"Helm releases", s.helm},
		{"deprecated API requests", s.metrics},
	} {
		if step.what == "Helm releases" && !in.Helm {
			continue
		}
		g.Go(func() error {
			in.progress("api-scan: %s", step.what)
			return step.run(gctx)
		})
	}
	err := g.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.findings, err
}

// verdict on one use of apiVersion+kind at the target; ok is false when it is fine.
type verdict struct {
	severity Severity
	api      *APIUse
	what     string // "extensions/v1beta1 Ingress is removed in 1.22"
	fix      string
}

func (s *scanner) judge(apiVersion, kind string) (verdict, bool) {
	if l, ok := apis.Lookup(apiVersion, kind); ok {
		api := &APIUse{APIVersion: apiVersion, Kind: kind, DeprecatedIn: l.Deprecated.String(), RemovedIn: l.Removed.String(), Replacement: l.Replacement}
		v := verdict{api: api, fix: l.Fix()}
		switch l.At(s.in.Target) {
		case apis.Removed:
			v.severity = runbook.SeverityError
			v.what = fmt.Sprintf("%s %s is removed in %s", apiVersion, kind, l.Removed)
			if !l.Deprecated.IsZero() {
				v.what += fmt.Sprintf(" (deprecated in %s)", l.Deprecated)
			}
		case apis.Deprecated:
			v.severity = runbook.SeverityWarning
			v.what = fmt.Sprintf("%s %s is deprecated since %s", apiVersion, kind, l.Deprecated)
			if l.Removed.IsZero() {
				v.severity = runbook.SeverityInfo
				v.what += ", no removal planned"
			} else {
				v.what += fmt.Sprintf(" and removed in %s", l.Removed)
			}
		default:
			return verdict{}, false
		}
		return v, true
	}
	gv, err := schema.ParseGroupVersion(apiVersion)
	if err != nil {
		return verdict{}, false
	}
	if c, ok := s.crds[gv.WithKind(kind)]; ok {
		api := &APIUse{APIVersion: apiVersion, Kind: kind}
		switch {
		case !c.served:
			return verdict{severity: runbook.SeverityError, api: api, what: fmt.Sprintf("%s %s is no longer served by its CustomResourceDefinition", apiVersion, kind),
				fix: "use a served version of the CRD"}, true
		case c.deprecated:
			w := c.warning
			if w == "" {
				w = "deprecated by its CustomResourceDefinition"
			}
			return verdict{severity: runbook.SeverityWarning, api: api, what: fmt.Sprintf("%s %s: %s", apiVersion, kind, w),
				fix: "use the CRD's current version"}, true
		}
	}
	return verdict{}, false
}

// manifests scans files.
func (s *scanner) manifests() error {
	files, bad, err := manifestFiles(s.in.Manifests)
	if err != nil {
		return err
	}
	for _, f := range files {
		data, err := s.read(f)
		if err != nil {
			bad = append(bad, unreadable{f, err})
			continue
		}
		objs, perr := parseManifest(f, data)
		for _, o := range objs {
			v, ok := s.judge(o.APIVersion, o.Kind)
			if !ok {
				continue
			}
			if o.Namespace != "" && !s.namespaced(o.APIVersion, o.Kind) {
				o.Namespace = "" // a cluster-scoped object: the apiserver ignores the namespace written
			}
			s.add(Finding{Severity: v.severity, Object: fmt.Sprintf("%s:%d", f, o.Line), ObjectRef: Ref(o.Kind, o.Namespace, o.Name), Message: v.what + ": " + o.String(),
				Fix: v.fix, Source: SourceManifest, API: v.api, File: f, Line: o.Line})
		}
		for _, pe := range parseErrors(perr) {
			msg, fix := pe.Err, "fix the file, or leave it out of --manifests" // JSON that does not parse: said as it is
			switch pe.What {
			case "", ParseYAML:
				msg = "not valid YAML, so it was not scanned: " + pe.Err
			case ParseTemplate:
				fix = TemplateFix
			}
			s.add(Finding{Severity: runbook.SeverityError, Object: fmt.Sprintf("%s:%d", pe.File, pe.Line),
				Message: msg, Fix: fix, Source: SourceManifest, File: pe.File, Line: pe.Line})
		}
	}
	for _, u := range bad {
		s.add(Finding{Severity: runbook.SeverityError, Object: u.path, File: u.path, Source: SourceManifest,
			Message: "could not be read, so it was not scanned: " + u.err.Error(),
			Fix:     "fix the path (a dangling symlink? a directory named like a file?), or leave it out of --manifests"})
	}
	return nil
}

// read is a manifest file's text; StdinName's is Input.Stdin.
func (s *scanner) read(f string) ([]byte, error) {
	if f == StdinName {
		if s.in.Stdin == nil {
			return nil, errors.New("--manifests - reads standard input, which was not given")
		}
		return s.in.Stdin, nil
	}
	return os.ReadFile(f)
}

// crdVersions reads the CRDs: deprecated served versions, and stored versions no longer served.
func (s *scanner) crdVersions(ctx context.Context) error {
	list, err := s.in.APIExt.ApiextensionsV1().CustomResourceDefinitions().List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("list CustomResourceDefinitions: %w", err)
	}
	for _, crd := range list.Items {
		served := sets.New[string]()
		for _, v := range crd.Spec.Versions {
			gvk := schema.GroupVersionKind{Group: crd.Spec.Group, Version: v.Name, Kind: crd.Spec.Names.Kind}
			w := ""
			if v.DeprecationWarning != nil {
				w = *v.DeprecationWarning
			}
			s.crds[gvk] = crdVersion{served: v.Served, deprecated: v.Deprecated, warning: w}
			if !v.Served || v.Deprecated {
				s.flagged[gvk.GroupKind()] = true
			}
			if v.Served {
				served.Insert(v.Name)
			}
			if v.Served && v.Deprecated {
				msg := fmt.Sprintf("version %s is deprecated", v.Name)
				if w != "" {
					msg += ": " + w
				}
				s.add(Finding{Severity: runbook.SeverityWarning, ObjectRef: Ref("CustomResourceDefinition", "", crd.Name), Message: msg,
					Fix:    "move clients and manifests to the CRD's storage version before the operator that owns it drops " + v.Name,
					Source: SourceCRD, API: &APIUse{APIVersion: crd.Spec.Group + "/" + v.Name, Kind: crd.Spec.Names.Kind}})
			}
		}
		for _, sv := range crd.Status.StoredVersions {
			if !served.Has(sv) {
				s.add(Finding{Severity: runbook.SeverityError, ObjectRef: Ref("CustomResourceDefinition", "", crd.Name),
					Message: fmt.Sprintf("status.storedVersions still lists %s, which is no longer served: objects stored as %s cannot be read once the version is dropped", sv, sv),
					Fix:     fmt.Sprintf("migrate the stored objects (a StorageVersionMigration, or read and write each object back), then remove %s from status.storedVersions", sv),
					Source:  SourceCRD, API: &APIUse{APIVersion: crd.Spec.Group + "/" + sv, Kind: crd.Spec.Names.Kind}})
			}
		}
	}
	return nil
}

// controlPlane managers are upgraded with the control plane: what they wrote is not a client's
// problem.
var controlPlane = sets.New("kube-controller-manager", "kube-apiserver", "kube-scheduler")

// live lists the metadata of the stored objects, in parallel across resource types and page by
// page, and reads which API version each writer used. It lists only the kinds that can show a
// finding at the target: ConfigMaps, Secrets or Pods never had another version, and on a real
// cluster they are most of the objects.
// discover reads the cluster's preferred resources, once.
func (s *scanner) discover() ([]*metav1.APIResourceList, error) {
	s.disc.once.Do(func() { s.disc.lists, s.disc.err = s.in.Kube.Discovery().ServerPreferredResources() })
	return s.disc.lists, s.disc.err
}

func (s *scanner) live(ctx context.Context) error {
	builtin := apis.FlaggedKinds(s.in.Target)
	lists, err := s.discover()
	if err != nil {
		if !discovery.IsGroupDiscoveryFailedError(err) {
			return fmt.Errorf("discover resources: %w", err)
		}
		s.add(Finding{Severity: runbook.SeverityWarning, Object: "discovery", Message: "some API groups could not be discovered, so their objects were not scanned: " + err.Error(),
			Fix: "make the APIServices Available (see health-check)"})
	}
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(parallel)
	for _, l := range lists {
		gv, err := schema.ParseGroupVersion(l.GroupVersion)
		if err != nil {
			continue
		}
		for _, r := range l.APIResources {
			if strings.Contains(r.Name, "/") || !sets.New(r.Verbs...).Has("list") || r.Name == "events" {
				continue // subresources; events expire within the hour
			}
			gvr, kind := gv.WithResource(r.Name), r.Kind
			if !builtin[kind] && !s.flagged[schema.GroupKind{Group: gv.Group, Kind: kind}] {
				continue // no version of it can be flagged: its objects cannot show a finding
			}
			if _, deprecated := apis.Lookup(l.GroupVersion, kind); deprecated {
				// Listing through a deprecated API (v1 Endpoints, ComponentStatus) would be counted in
				// apiserver_requested_deprecated_apis as one of the clients to fix.
				continue
			}
			g.Go(func() error { return s.liveResource(ctx, gvr, kind) })
		}
	}
	return g.Wait()
}

func (s *scanner) liveResource(ctx context.Context, gvr schema.GroupVersionResource, kind string) error {
	opts := metav1.ListOptions{Limit: pageSize}
	for {
		list, err := s.in.Metadata.Resource(gvr).List(ctx, opts)
		switch {
		case apierrors.IsForbidden(err):
			s.add(Finding{Severity: runbook.SeverityWarning, Object: gvr.Resource + "." + gvr.Group, NotAllowed: true, CouldNotCheck: CouldNotForbidden,
				Message: "not allowed to list, so its objects were not scanned", Fix: "grant list on it (see the read-only role in deploy/)"})
			return nil
		case apierrors.IsNotFound(err) || apierrors.IsMethodNotSupported(err):
			return nil
		case err != nil && ctx.Err() == nil:
			// One resource that cannot be listed (an aggregated API that is down) leaves the rest scanned.
			s.add(couldNotCheck(gvr.Resource+"."+gvr.Group, "could not list, so its objects were not scanned", err))
			return nil
		case err != nil:
			return fmt.Errorf("list %s: %w", gvr.GroupResource(), err)
		}
		for i := range list.Items {
			s.object(&list.Items[i], kind)
		}
		if list.Continue == "" {
			return nil
		}
		opts.Continue = list.Continue
	}
}

func objectName(kind, ns, name string) string {
	if ns == "" {
		return kind + " " + name
	}
	return kind + " " + ns + "/" + name
}

func (s *scanner) object(o *metav1.PartialObjectMetadata, kind string) {
	managers := map[string][]string{}
	var versions []string
	for _, mf := range o.ManagedFields {
		if controlPlane.Has(mf.Manager) {
			continue
		}
		if _, seen := managers[mf.APIVersion]; !seen {
			versions = append(versions, mf.APIVersion)
		}
		managers[mf.APIVersion] = append(managers[mf.APIVersion], mf.Manager)
	}
	name := objectName(kind, o.Namespace, o.Name)
	for _, av := range versions {
		if v, ok := s.judge(av, kind); ok {
			s.add(Finding{Severity: v.severity, Object: name, ObjectRef: Ref(kind, o.Namespace, o.Name), API: v.api, Source: SourceManagedFields,
				Message: fmt.Sprintf("%s: last written through it by %s", v.what, quoteList(managers[av])),
				Fix:     v.fix + "; update that client or pipeline before the upgrade, or its next write fails"})
		}
	}
	if la := o.Annotations[corev1.LastAppliedConfigAnnotation]; la != "" {
		var tm metav1.TypeMeta
		if json.Unmarshal([]byte(la), &tm) == nil && managers[tm.APIVersion] == nil {
			if v, ok := s.judge(tm.APIVersion, tm.Kind); ok {
				s.add(Finding{Severity: v.severity, Object: name, ObjectRef: Ref(kind, o.Namespace, o.Name), API: v.api, Source: SourceLastApplied,
					Message: v.what + ": the last kubectl apply used it",
					Fix:     v.fix + "; change the manifest it is applied from"})
			}
		}
	}
}

func quoteList(s []string) string {
	q := make([]string, len(s))
	for i, x := range s {
		q[i] = strconv.Quote(x)
	}
	return strings.Join(q, ", ")
}

// helmRelease is the part of Helm v3's stored release drydock reads.
type helmRelease struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	Version   int    `json:"version"`
	Info      struct {
		Status string `json:"status"`
	} `json:"info"`
	Chart struct {
		Metadata struct {
			Name       string `json:"name"`
			Version    string `json:"version"`
			AppVersion string `json:"appVersion"`
		} `json:"metadata"`
	} `json:"chart"`
	Manifest string `json:"manifest"`
}

type storedRelease struct {
	version int
	store   string // Secret or ConfigMap
	object  string // ns/name of the storage object
	data    []byte
}

// helm reads the latest revision of each Helm v3 release, from Secrets and ConfigMaps, and the
// deployed revision beneath it when the latest is not the one running (a failed upgrade).
func (s *scanner) helm(ctx context.Context) error {
	latest := map[string]*storedRelease{}
	deployed := map[string]*storedRelease{} // the revision Helm labels status=deployed: what runs
	keep := func(ns string, labels map[string]string, store, name string, data []byte) {
		v, err := strconv.Atoi(labels["version"])
		if err != nil || labels["name"] == "" {
			return
		}
		key := ns + "/" + labels["name"]
		r := &storedRelease{version: v, store: store, object: ns + "/" + name, data: data}
		if cur := latest[key]; cur == nil || v > cur.version {
			latest[key] = r
		}
		if cur := deployed[key]; labels["status"] == "deployed" && (cur == nil || v > cur.version) {
			deployed[key] = r
		}
	}
	opts := metav1.ListOptions{LabelSelector: "owner=helm", Limit: 100}
	for {
		list, err := s.in.Kube.CoreV1().Secrets("").List(ctx, opts)
		if err != nil {
			return helmListError("Secrets", err)
		}
		for _, sec := range list.Items {
			if sec.Type == "helm.sh/release.v1" {
				keep(sec.Namespace, sec.Labels, "Secret", sec.Name, sec.Data["release"])
			}
		}
		if opts.Continue = list.Continue; opts.Continue == "" {
			break
		}
	}
	opts.Continue = ""
	for {
		list, err := s.in.Kube.CoreV1().ConfigMaps("").List(ctx, opts)
		if err != nil {
			return helmListError("ConfigMaps", err)
		}
		for _, cm := range list.Items {
			keep(cm.Namespace, cm.Labels, "ConfigMap", cm.Name, []byte(cm.Data["release"]))
		}
		if opts.Continue = list.Continue; opts.Continue == "" {
			break
		}
	}
	keys := make([]string, 0, len(latest))
	for k := range latest {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	type scan struct {
		key string
		st  *storedRelease
	}
	var scans []scan
	for _, k := range keys {
		scans = append(scans, scan{k, latest[k]})
		if d := deployed[k]; d != nil && d.version != latest[k].version {
			scans = append(scans, scan{k, d}) // the latest failed (or is pending): what runs is this one
		}
	}
	for _, sc := range scans {
		k, st := sc.key, sc.st
		rel, err := decodeRelease(st.data)
		if err != nil {
			s.add(Finding{Severity: runbook.SeverityWarning, Object: "helm release " + k, Source: SourceHelm,
				Message: fmt.Sprintf("stored release (%s %s) could not be decoded: %v", st.store, st.object, err),
				Fix:     "check the release with helm history; drydock reads Helm v3's storage format"})
			continue
		}
		if rel.Info.Status == "uninstalled" || rel.Info.Status == "superseded" {
			continue
		}
		objs, perr := parseManifest("helm release "+k, []byte(rel.Manifest))
		where := fmt.Sprintf("Helm release %s revision %d (chart %s-%s, %s)", k, rel.Version, rel.Chart.Metadata.Name, rel.Chart.Metadata.Version, rel.Info.Status)
		for _, o := range objs {
			v, ok := s.judge(o.APIVersion, o.Kind)
			if !ok {
				continue
			}
			switch namespaced := s.namespaced(o.APIVersion, o.Kind); {
			case o.Namespace == "" && o.Name != "" && namespaced:
				o.Namespace = rel.Namespace
			case !namespaced:
				o.Namespace = ""
			}
			msg := v.what + ": in " + where
			if o.Template != "" {
				msg += ", template " + o.Template
			}
			s.add(Finding{Severity: v.severity, ObjectRef: Ref(o.Kind, o.Namespace, o.Name), API: v.api, Source: SourceHelm, Message: msg,
				Fix: v.fix + " in the chart, and upgrade the release before the cluster: Helm cannot upgrade or roll back a release whose stored manifest holds a removed API (helm-mapkubeapis rewrites it)"})
		}
		if perr != nil {
			s.add(Finding{Severity: runbook.SeverityWarning, Object: "helm release " + k, Source: SourceHelm,
				Message: where + ": manifest is not valid YAML: " + perr.Error(), Fix: "check the release with helm get manifest"})
		}
	}
	return nil
}

// apisNamespaced guesses whether a manifest object without a namespace lands in the release's:
// cluster-scoped kinds the scan knows about stay without one.
// namespaced says whether objects of apiVersion/kind live in a namespace, as the cluster serves them
// (discovery, read once; a CRD's scope included), else by the table of built-in cluster-scoped kinds.
func (s *scanner) namespaced(apiVersion, kind string) bool {
	s.scopeMu.Lock()
	defer s.scopeMu.Unlock()
	if s.scope == nil {
		s.scope = map[schema.GroupKind]bool{}
		if s.in.Kube != nil {
			lists, _ := s.discover() // partial answers are fine here
			for _, l := range lists {
				gv, err := schema.ParseGroupVersion(l.GroupVersion)
				if err != nil {
					continue
				}
				for _, r := range l.APIResources {
					s.scope[gv.WithKind(r.Kind).GroupKind()] = r.Namespaced
				}
			}
		}
	}
	gv, _ := schema.ParseGroupVersion(apiVersion)
	if ns, ok := s.scope[gv.WithKind(kind).GroupKind()]; ok {
		return ns
	}
	return apisNamespaced(kind)
}

func apisNamespaced(kind string) bool {
	switch kind {
	case "CustomResourceDefinition", "APIService", "ClusterRole", "ClusterRoleBinding", "PodSecurityPolicy", "CertificateSigningRequest", "PersistentVolume",
		"PriorityClass", "StorageClass", "CSIDriver", "CSINode", "VolumeAttachment", "IngressClass", "RuntimeClass",
		"MutatingWebhookConfiguration", "ValidatingWebhookConfiguration", "ValidatingAdmissionPolicy",
		"ValidatingAdmissionPolicyBinding", "MutatingAdmissionPolicy", "MutatingAdmissionPolicyBinding", "FlowSchema", "PriorityLevelConfiguration",
		"DeviceClass", "ResourceSlice", "Namespace", "Node", "ClusterTrustBundle", "IPAddress", "ServiceCIDR", "VolumeAttributesClass",
		"StorageVersion", "StorageVersionMigration", "ComponentStatus", "TokenReview", "SubjectAccessReview", "SelfSubjectAccessReview",
		"SelfSubjectRulesReview", "SelfSubjectReview":
		return false
	}
	return true
}

func helmListError(what string, err error) error {
	if apierrors.IsForbidden(err) {
		return fmt.Errorf("read Helm releases (list %s labelled owner=helm): %w; or run with --helm=false", what, err)
	}
	return fmt.Errorf("list Helm release %s: %w", what, err)
}

// decodeRelease undoes Helm's storage encoding: base64, then gzip (older releases: no gzip), then
// JSON.
func decodeRelease(data []byte) (*helmRelease, error) {
	raw := make([]byte, base64.StdEncoding.DecodedLen(len(data)))
	n, err := base64.StdEncoding.Decode(raw, data)
	if err != nil {
		return nil, fmt.Errorf("base64: %w", err)
	}
	raw = raw[:n]
	if len(raw) > 3 && bytes.Equal(raw[:3], []byte{0x1f, 0x8b, 0x08}) {
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		if raw, err = io.ReadAll(zr); err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
	}
	var rel helmRelease
	if err := json.Unmarshal(raw, &rel); err != nil {
		return nil, fmt.Errorf("json: %w", err)
	}
	return &rel, nil
}

const deprecatedMetric = "apiserver_requested_deprecated_apis"

// metrics reads which deprecated APIs clients requested since the apiserver started.
func (s *scanner) metrics(ctx context.Context) error {
	rc, err := s.in.Kube.Discovery().RESTClient().Get().AbsPath("/metrics").Stream(ctx)
	if err != nil {
		if apierrors.IsForbidden(err) {
			s.add(Finding{Severity: runbook.SeverityInfo, Object: "/metrics", Source: SourceMetrics, NotAllowed: true, CouldNotCheck: CouldNotForbidden,
				Message: "not allowed to read the apiserver's metrics, so requests to deprecated APIs were not checked",
				Fix:     "grant get on the non-resource URL /metrics"})
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("read apiserver /metrics: %w", err)
		}
		// No metrics endpoint (a managed control plane may not serve one): the rest is still scanned.
		f := couldNotCheck("/metrics", "could not read the apiserver's metrics, so requests to deprecated APIs were not checked", err)
		f.Source = SourceMetrics
		s.add(f)
		return nil
	}
	defer rc.Close()
	// The whole exposition is megabytes: keep only the one family before parsing it.
	var only bytes.Buffer
	sc := bufio.NewScanner(rc)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		if line := sc.Bytes(); bytes.Contains(line, []byte(deprecatedMetric)) {
			only.Write(line)
			only.WriteByte('\n')
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read apiserver /metrics: %w", err)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(&only)
	if err != nil {
		return fmt.Errorf("parse apiserver /metrics: %w", err)
	}
	fam := families[deprecatedMetric]
	if fam == nil {
		return nil
	}
	for _, m := range fam.GetMetric() {
		if m.GetGauge().GetValue() == 0 {
			continue
		}
		l := map[string]string{}
		for _, p := range m.GetLabel() {
			l[p.GetName()] = p.GetValue()
		}
		gv := schema.GroupVersion{Group: l["group"], Version: l["version"]}.String()
		res := l["resource"]
		if l["subresource"] != "" {
			res += "/" + l["subresource"]
		}
		f := Finding{Severity: runbook.SeverityWarning, Object: "requests to " + gv + " " + res, Source: SourceMetrics,
			API:     &APIUse{APIVersion: gv, RemovedIn: l["removed_release"]},
			Message: "a client requested this deprecated API since the apiserver started (apiserver_requested_deprecated_apis covers only requests since then)",
			Fix:     "find the client in the audit log (annotation k8s.io/deprecated) or by its user agent, and move it to the current version"}
		if l["removed_release"] == "" {
			f.Severity = runbook.SeverityInfo
			f.Message = "a client requested this deprecated API (no removal planned) since the apiserver started"
		}
		if rr := l["removed_release"]; rr != "" {
			if r, err := apis.ParseRelease(rr); err == nil && r.AtOrBefore(s.in.Target) {
				f.Severity = runbook.SeverityError
				f.Message = fmt.Sprintf("a client requested this API, which is removed in %s, since the apiserver started (apiserver_requested_deprecated_apis covers only requests since then)", rr)
			}
		}
		s.add(f)
	}
	return nil
}
