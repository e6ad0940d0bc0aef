package addons

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"
	"k8s.io/kubectl/pkg/polymorphichelpers"
	"sigs.k8s.io/yaml"

	"github.com/drydock-dev/drydock/runbook"
)

// workload is a DaemonSet, Deployment or StatefulSet an add-on rolls out.
type workload struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
}

func (w workload) String() string {
	return strings.ToLower(w.Kind) + " " + w.Namespace + "/" + w.Name
}

var workloadResources = map[string]string{"DaemonSet": "daemonsets", "Deployment": "deployments", "StatefulSet": "statefulsets"}

// workloadsOf lists the apps/v1 workloads among objects, the ones a rollout is waited for.
func workloadsOf(objects []*unstructured.Unstructured, defaultNamespace string) []workload {
	var out []workload
	for _, o := range objects {
		gvk := o.GroupVersionKind()
		if gvk.Group != "apps" || workloadResources[gvk.Kind] == "" {
			continue
		}
		ns := o.GetNamespace()
		if ns == "" {
			ns = defaultNamespace
		}
		out = append(out, workload{Kind: gvk.Kind, Namespace: ns, Name: o.GetName()})
	}
	return out
}

// decodeManifest splits a multi-document YAML stream (a Helm release's manifest, a manifest file)
// into objects; empty documents are skipped, a List's items are taken one by one.
func decodeManifest(text, source string) ([]*unstructured.Unstructured, error) {
	var out []*unstructured.Unstructured
	for i, doc := range splitDocuments(text) {
		var m map[string]any
		if err := yaml.Unmarshal([]byte(doc), &m); err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", source, i+1, err)
		}
		if len(m) == 0 {
			continue
		}
		u := &unstructured.Unstructured{Object: m}
		if u.GetKind() == "" || u.GetAPIVersion() == "" {
			return nil, fmt.Errorf("%s: document %d has no apiVersion or kind: every object needs both", source, i+1)
		}
		if u.IsList() {
			l, err := u.ToList()
			if err != nil {
				return nil, fmt.Errorf("%s: document %d: %w", source, i+1, err)
			}
			for j := range l.Items {
				out = append(out, &l.Items[j])
			}
			continue
		}
		out = append(out, u)
	}
	return out, nil
}

// splitDocuments splits at lines that are exactly "---" (a document separator, possibly followed by
// a comment).
func splitDocuments(text string) []string {
	var docs []string
	var cur strings.Builder
	for line := range strings.SplitSeq(text, "\n") {
		if t := strings.TrimRight(line, " \t\r"); t == "---" || strings.HasPrefix(t, "--- ") || strings.HasPrefix(t, "---#") {
			docs = append(docs, cur.String())
			cur.Reset()
			continue
		}
		cur.WriteString(line)
		cur.WriteByte('\n')
	}
	return append(docs, cur.String())
}

// errNotReady is a rollout that did not finish within its time: the add-on is rolled back.
var errNotReady = errors.New("did not roll out")

// waitRollouts watches each workload until kubectl's rollout status says it is done (the same
// rules as `kubectl rollout status`: observed generation, updated, ready and available replicas),
// or timeout passes. Each change of the status is a progress line.
func waitRollouts(ctx context.Context, env *runbook.Env, dyn dynamic.Interface, addon string, ws []workload, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for _, w := range ws {
		if err := waitRollout(ctx, env, dyn, addon, w, deadline); err != nil {
			return err
		}
	}
	return nil
}

func waitRollout(ctx context.Context, env *runbook.Env, dyn dynamic.Interface, addon string, w workload, deadline time.Time) error {
	gk := schema.GroupKind{Group: "apps", Kind: w.Kind}
	viewer, err := polymorphichelpers.StatusViewerFor(gk)
	if err != nil {
		return err
	}
	res := dyn.Resource(schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: workloadResources[w.Kind]}).Namespace(w.Namespace)
	sel := fields.OneTermEqualSelector("metadata.name", w.Name).String()
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.FieldSelector = sel
			return res.List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.FieldSelector = sel
			return res.Watch(ctx, o)
		},
	}
	wctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	last := ""
	_, err = watchtools.UntilWithSync(wctx, lw, &unstructured.Unstructured{}, func(store cache.Store) (bool, error) {
		if len(store.List()) == 0 {
			last = "waiting"
			env.Progress(fmt.Sprintf("%s: waiting for %s to exist", addon, w), 0, 0)
		}
		return false, nil
	}, func(ev watch.Event) (bool, error) {
		switch ev.Type {
		case watch.Deleted:
			return false, fmt.Errorf("%s was deleted while it rolled out", w)
		case watch.Added, watch.Modified:
			u, ok := ev.Object.(*unstructured.Unstructured)
			if !ok {
				return false, nil
			}
			msg, done, err := viewer.Status(u, 0)
			if err != nil {
				return false, fmt.Errorf("%s: %w", w, err)
			}
			if msg = strings.TrimSpace(msg); msg != last && !done {
				last = msg
				env.Progress(addon+": "+msg, 0, 0)
			}
			return done, nil
		}
		return false, nil
	})
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil:
		return ctx.Err()
	case wctx.Err() != nil:
		if last == "" || last == "waiting" {
			last = "it never appeared"
		}
		return fmt.Errorf("%s %w in time (last status: %s)", w, errNotReady, last)
	}
	return err
}
