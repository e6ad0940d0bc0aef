package preflight

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/Masterminds/semver/v3"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/drydock-dev/drydock/preflight/addons"
	"github.com/drydock-dev/drydock/preflight/apis"
	"github.com/drydock-dev/drydock/runbook"
)

// AddonUse says which add-on a finding is about and what the compatibility table says of it.
type AddonUse struct {
	// Name is the add-on's ID in drydock's catalog (cilium, coredns, ingress-nginx, ...).
	Name    string `json:"name"`
	Version string `json:"version,omitempty"`
	// DetectedFrom says how it was found: an image, a label or a Helm release.
	DetectedFrom string `json:"detectedFrom"`
	// Supports is the Kubernetes range of the table's line for this version.
	Supports string `json:"supports,omitempty"`
	// Verdict for the target: supported, untested, unsupported, behind (older than what kubeadm
	// installs with the target) or unknown (the table has no line for it).
	Verdict string `json:"verdict" jsonschema:"enum=supported,enum=untested,enum=unsupported,enum=behind,enum=unknown"`
	Source  string `json:"source,omitempty"`
}

// detection is one add-on found in the cluster.
type detection struct {
	addon   addons.Addon
	raw     string // the version as found
	version *semver.Version
	ref     ObjectRef
	from    string
	helm    bool
}

// checkAddons finds the add-ons installed (from the images and labels of Deployments, DaemonSets
// and StatefulSets, and from deployed Helm releases) and holds each version against the Kubernetes
// versions it supports, for the target.
func checkAddons(ctx context.Context, in *Input) ([]Finding, error) {
	var out []Finding
	var found []detection
	workloads, cnc := listPodWorkloads(ctx, in)
	out = append(out, cnc...)
	for _, w := range workloads {
		if d, ok := detectWorkload(w); ok {
			found = append(found, d)
		}
	}
	if in.Helm {
		ds, err := detectHelm(ctx, in)
		if err != nil {
			out = append(out, couldNotCheck("Helm releases", "could not read Helm releases, so add-ons installed with Helm and no recognizable image were not checked", err))
		}
		found = append(found, ds...)
	}
	for _, d := range dedupe(found) {
		out = append(out, judgeAddon(d, in.Server, in.Target))
	}
	return out, nil
}

// podWorkload is what detection looks at in a Deployment, DaemonSet or StatefulSet.
type podWorkload struct {
	ref    ObjectRef
	labels map[string]string
	pod    corev1.PodSpec
}

func listPodWorkloads(ctx context.Context, in *Input) ([]podWorkload, []Finding) {
	var out []podWorkload
	var cnc []Finding
	add := func(kind string, m metav1.ObjectMeta, spec corev1.PodSpec) {
		out = append(out, podWorkload{Ref(kind, m.Namespace, m.Name), m.Labels, spec})
	}
	apps := in.Kube.AppsV1()
	if err := eachPage(func(o metav1.ListOptions) (string, error) {
		l, err := apps.DaemonSets("").List(ctx, o)
		if err != nil {
			return "", err
		}
		for i := range l.Items {
			add("DaemonSet", l.Items[i].ObjectMeta, l.Items[i].Spec.Template.Spec)
		}
		return l.Continue, nil
	}); err != nil {
		cnc = append(cnc, couldNotCheck("DaemonSets", "could not list DaemonSets, so add-ons running as one (CNI, kube-proxy) were not checked", err))
	}
	if err := eachPage(func(o metav1.ListOptions) (string, error) {
		l, err := apps.Deployments("").List(ctx, o)
		if err != nil {
			return "", err
		}
		for i := range l.Items {
			add("Deployment", l.Items[i].ObjectMeta, l.Items[i].Spec.Template.Spec)
		}
		return l.Continue, nil
	}); err != nil {
		cnc = append(cnc, couldNotCheck("Deployments", "could not list Deployments, so add-ons running as one were not checked", err))
	}
	if err := eachPage(func(o metav1.ListOptions) (string, error) {
		l, err := apps.StatefulSets("").List(ctx, o)
		if err != nil {
			return "", err
		}
		for i := range l.Items {
			add("StatefulSet", l.Items[i].ObjectMeta, l.Items[i].Spec.Template.Spec)
		}
		return l.Continue, nil
	}); err != nil {
		cnc = append(cnc, couldNotCheck("StatefulSets", "could not list StatefulSets, so add-ons running as one were not checked", err))
	}
	return out, cnc
}

// eachPage calls list page by page (500 a page) until the last, or its first error.
func eachPage(list func(metav1.ListOptions) (string, error)) error {
	o := metav1.ListOptions{Limit: 500}
	for {
		cont, err := list(o)
		if err != nil {
			return err
		}
		if o.Continue = cont; cont == "" {
			return nil
		}
	}
}

// splitImage parses an image reference into its repository and tag (digest dropped).
func splitImage(image string) (repo, tag string) {
	image, _, _ = strings.Cut(image, "@")
	slash := strings.LastIndex(image, "/")
	if colon := strings.LastIndex(image, ":"); colon > slash {
		return image[:colon], image[colon+1:]
	}
	return image, ""
}

func imageMatches(repo string, suffixes []string) bool {
	for _, s := range suffixes {
		if repo == s || strings.HasSuffix(repo, "/"+s) {
			return true
		}
	}
	return false
}

// detectWorkload recognizes an add-on by a container's image first (what runs), else by its
// app.kubernetes.io/name (or k8s-app) label, its version from app.kubernetes.io/version or the
// image tag.
func detectWorkload(w podWorkload) (detection, bool) {
	containers := append(append([]corev1.Container{}, w.pod.Containers...), w.pod.InitContainers...)
	for _, a := range addons.Catalog {
		for _, c := range containers {
			repo, tag := splitImage(c.Image)
			if imageMatches(repo, a.Images) {
				return detection{addon: a, raw: tag, version: addons.ParseVersion(tag), ref: w.ref, from: "image " + c.Image}, true
			}
		}
	}
	name := w.labels["app.kubernetes.io/name"]
	if name == "" {
		name = w.labels["k8s-app"]
	}
	if name == "" {
		return detection{}, false
	}
	for _, a := range addons.Catalog {
		for _, l := range a.Labels {
			if l != name {
				continue
			}
			if v := w.labels["app.kubernetes.io/version"]; v != "" {
				return detection{addon: a, raw: v, version: addons.ParseVersion(v), ref: w.ref, from: "label app.kubernetes.io/version=" + v}, true
			}
			if len(w.pod.Containers) > 0 {
				_, tag := splitImage(w.pod.Containers[0].Image)
				return detection{addon: a, raw: tag, version: addons.ParseVersion(tag), ref: w.ref, from: "label app.kubernetes.io/name=" + name + ", image " + w.pod.Containers[0].Image}, true
			}
		}
	}
	return detection{}, false
}

// detectHelm recognizes add-ons by the chart of each deployed Helm release; the version is the
// chart's appVersion (the add-on's), else the chart's version.
func detectHelm(ctx context.Context, in *Input) ([]detection, error) {
	var out []detection
	opts := metav1.ListOptions{LabelSelector: "owner=helm,status=deployed", Limit: 100}
	for {
		list, err := in.Kube.CoreV1().Secrets("").List(ctx, opts)
		if err != nil {
			return out, err
		}
		for _, sec := range list.Items {
			if sec.Type != "helm.sh/release.v1" {
				continue
			}
			rel, err := decodeRelease(sec.Data["release"])
			if err != nil {
				continue // api-scan reports releases it cannot decode
			}
			md := rel.Chart.Metadata
			for _, a := range addons.Catalog {
				if !contains(a.Charts, md.Name) {
					continue
				}
				v := md.AppVersion
				if v == "" {
					v = md.Version
				}
				out = append(out, detection{addon: a, raw: v, version: addons.ParseVersion(v), ref: Ref("HelmRelease", rel.Namespace, rel.Name), helm: true,
					from: fmt.Sprintf("Helm release %s/%s revision %d, chart %s-%s (appVersion %s)", rel.Namespace, rel.Name, rel.Version, md.Name, md.Version, md.AppVersion)})
			}
		}
		if opts.Continue = list.Continue; opts.Continue == "" {
			return out, nil
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// dedupe keeps one detection per add-on, namespace and version: what runs (an image or a label)
// before the Helm release that installed it.
func dedupe(ds []detection) []detection {
	sort.SliceStable(ds, func(i, j int) bool { return !ds[i].helm && ds[j].helm })
	seen := map[string]bool{}
	running := map[string]bool{} // add-on and namespace seen running
	var out []detection
	for _, d := range ds {
		key := d.addon.ID + "|" + d.ref.Namespace + "|" + d.raw
		if d.version != nil {
			key = d.addon.ID + "|" + d.ref.Namespace + "|" + d.version.String()
		}
		if seen[key] || d.helm && running[d.addon.ID+"|"+d.ref.Namespace] {
			continue
		}
		seen[key] = true
		if !d.helm {
			running[d.addon.ID+"|"+d.ref.Namespace] = true
		}
		out = append(out, d)
	}
	return out
}

// judgeAddon holds one add-on against the target.
func judgeAddon(d detection, server, target apis.Release) Finding {
	a := d.addon
	f := Finding{ObjectRef: d.ref, Source: "addon", Addon: &AddonUse{Name: a.ID, Version: d.raw, DetectedFrom: d.from, Source: a.Page}}
	name := a.Name + " " + d.raw
	note := ""
	if a.Note != "" {
		note = "; " + a.Note
	}
	if d.version == nil {
		f.Severity, f.CouldNotCheck, f.Addon.Verdict = runbook.SeverityInfo, CouldNotError, "unknown"
		f.Message = fmt.Sprintf("%s found (%s), but its version %q could not be read, so its compatibility with %s was not checked%s", a.Name, d.from, d.raw, target, note)
		f.Fix = "run the add-on from a versioned image tag, and check " + a.Page
		return f
	}
	if s, ok := addons.ShippedWith(a.ID, target); ok {
		f.Addon.Source = s.Source
		if d.version.LessThan(semver.MustParse(s.Version)) {
			f.Severity, f.Addon.Verdict = runbook.SeverityWarning, "behind"
			f.Message = fmt.Sprintf("%s is older than the %s kubeadm installs with %s (%s)%s", name, s.Version, target, d.from, note)
			f.Fix = fmt.Sprintf("upgrade %s to %s or newer with the control plane (kubeadm upgrade apply does it on kubeadm clusters; managed services have an add-on update)", a.Name, s.Version)
		} else {
			f.Severity, f.Addon.Verdict = runbook.SeverityInfo, "supported"
			f.Message = fmt.Sprintf("%s is at or past the %s kubeadm installs with %s (%s)%s", name, s.Version, target, d.from, note)
		}
		return f
	}
	v := addons.Judge(a.ID, d.version, target)
	if v.Line == nil {
		f.Severity, f.Addon.Verdict = runbook.SeverityInfo, "unknown"
		known := addons.LinesFor(a.ID)
		if len(known) == 0 {
			f.Message = fmt.Sprintf("%s found (%s); drydock's table has no line for %s, whose vendor publishes no version table it can use%s", name, d.from, a.Name, note)
		} else {
			f.Message = fmt.Sprintf("%s found (%s); drydock's table has no line for this version%s", name, d.from, note)
			if oldest := known[len(known)-1]; d.version.LessThan(oldest.Lowest()) {
				f.Severity = runbook.SeverityWarning // older than anything the table knows: likely long unsupported
				f.Message += fmt.Sprintf(" (it is older than every version the table knows, the oldest being %s for Kubernetes %s)", oldest.Versions, oldest.Range())
			}
		}
		f.Fix = fmt.Sprintf("check the add-on's own matrix for %s %s and Kubernetes %s: %s", a.Name, d.raw, target, a.Page)
		return f
	}
	f.Addon.Supports, f.Addon.Source = v.Line.Range(), v.Line.Source
	if v.OK {
		f.Severity, f.Addon.Verdict = runbook.SeverityInfo, "supported"
		f.Message = fmt.Sprintf("%s supports Kubernetes %s, the target %s among them (%s)%s", name, v.Line.Range(), target, d.from, note)
		return f
	}
	f.Addon.Verdict = string(v.Why)
	f.Severity = runbook.SeverityWarning
	what := "is not tested by its vendor on"
	if v.Why == addons.Unsupported {
		f.Severity, what = runbook.SeverityError, "does not support"
	}
	f.Message = fmt.Sprintf("%s %s %s: it supports Kubernetes %s (%s)%s", name, what, target, v.Line.Range(), d.from, note)
	f.Fix = addonFix(a, server, target, v.Below)
	return f
}

// addonFix says when to move the add-on and to what: before the control plane when a version in the
// table supports both the cluster's version and the target, right after it otherwise.
func addonFix(a addons.Addon, server, target apis.Release, below bool) string {
	if below {
		return fmt.Sprintf("%s is newer than %s supports: pin it to a version that supports %s (%s)", a.Name, target, target, a.Page)
	}
	if !server.IsZero() {
		if both := addons.Supporting(a.ID, server, target); len(both) > 0 {
			return fmt.Sprintf("upgrade %s to %s (supports Kubernetes %s) before the control plane", a.Name, both[0].Versions, both[0].Range())
		}
	}
	if after := addons.Supporting(a.ID, target); len(after) > 0 {
		return fmt.Sprintf("upgrade %s to %s (supports Kubernetes %s) right after the control plane: no version in drydock's table supports both %s and %s", a.Name, after[0].Versions, after[0].Range(), server, target)
	}
	return fmt.Sprintf("no %s version in drydock's table supports %s yet: check %s before the upgrade, or hold it until one does", a.Name, target, a.Page)
}
