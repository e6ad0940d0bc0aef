package simcluster

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"helm.sh/helm/v4/pkg/action"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	helmkube "helm.sh/helm/v4/pkg/kube"
	helmrelease "helm.sh/helm/v4/pkg/release/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/drydock-dev/drydock/internal/kube"
)

// InstallChart installs the chart in dir as release in namespace (created when missing), relabelled
// as an older version of itself (version and appVersion): the add-on as the cluster has run it since
// before the upgrade, for drydock's addons step to upgrade to the chart as it is. Helm's own SDK and
// release storage, so the release is what `helm install` would have made.
func InstallChart(ctx context.Context, config *rest.Config, dir, release, namespace, version string, values map[string]any) error {
	ch, err := loader.Load(dir)
	if err != nil {
		return fmt.Errorf("load chart %s: %w", dir, err)
	}
	if version != "" {
		ch.Metadata.Version, ch.Metadata.AppVersion = version, version
	}
	client, err := kubernetes.NewForConfig(config)
	if err != nil {
		return err
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}
	if _, err := client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	g, err := kube.NewRESTGetter(config, namespace)
	if err != nil {
		return err
	}
	cfg := action.NewConfiguration(action.ConfigurationSetLogger(slog.DiscardHandler))
	if err := cfg.Init(g, namespace, "secret"); err != nil {
		return err
	}
	helmkube.ManagedFieldsManager = "helm" // as the helm CLI installs it
	in := action.NewInstall(cfg)
	in.ReleaseName, in.Namespace = release, namespace
	in.WaitStrategy = helmkube.HookOnlyStrategy
	if _, err := in.RunWithContext(ctx, ch, values); err != nil {
		return fmt.Errorf("install %s %s into %s: %w", release, version, namespace, err)
	}
	return nil
}

// HelmHistory is a release's revisions as Helm keeps them, oldest first, one word each:
// "1:superseded:fake-cni-1.0.0 2:deployed:fake-cni-1.1.0".
func HelmHistory(config *rest.Config, namespace, release string) (string, error) {
	g, err := kube.NewRESTGetter(config, namespace)
	if err != nil {
		return "", err
	}
	cfg := action.NewConfiguration(action.ConfigurationSetLogger(slog.DiscardHandler))
	if err := cfg.Init(g, namespace, "secret"); err != nil {
		return "", err
	}
	all, err := cfg.Releases.History(release)
	if err != nil {
		return "", fmt.Errorf("history of Helm release %s/%s: %w", namespace, release, err)
	}
	var rs []*helmrelease.Release
	for _, r := range all {
		if r, ok := r.(*helmrelease.Release); ok {
			rs = append(rs, r)
		}
	}
	slices.SortFunc(rs, func(a, b *helmrelease.Release) int { return a.Version - b.Version })
	var out []string
	for _, r := range rs {
		out = append(out, fmt.Sprintf("%d:%s:%s-%s", r.Version, r.Info.Status, r.Chart.Metadata.Name, r.Chart.Metadata.Version))
	}
	return strings.Join(out, " "), nil
}
