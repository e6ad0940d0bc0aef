package addons

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"

	"helm.sh/helm/v4/pkg/action"
	chartcommon "helm.sh/helm/v4/pkg/chart/common"
	chart "helm.sh/helm/v4/pkg/chart/v2"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	helmkube "helm.sh/helm/v4/pkg/kube"
	rcommon "helm.sh/helm/v4/pkg/release/common"
	release "helm.sh/helm/v4/pkg/release/v1"
	"helm.sh/helm/v4/pkg/storage/driver"

	"github.com/drydock-dev/drydock/internal/kube"
	"github.com/drydock-dev/drydock/runbook"
)

// helmSource upgrades a Helm release with Helm's SDK and its release storage (Secrets, as the helm
// CLI keeps them), so `helm history` and `helm rollback` see drydock's revisions like their own.
type helmSource struct {
	env *runbook.Env
	a   *Addon
	h   *Helm
	cfg *action.Configuration
}

// helmState is what the journal keeps of a release the step started to upgrade: the revision it
// had before (0: none, it was installed), so that a resumed step neither upgrades twice nor loses
// the revision to roll back to.
type helmState struct {
	Before      int    `json:"before"`
	BeforeChart string `json:"beforeChart,omitempty"`
}

// HelmFieldManager is the server-side apply field manager of Helm releases: the helm CLI's own,
// so that a release installed with `helm` and upgraded by drydock (or the other way round) has one
// owner for its fields, and neither upgrade conflicts with the other.
const HelmFieldManager = "helm"

func init() { helmkube.ManagedFieldsManager = HelmFieldManager }

func newHelmSource(env *runbook.Env, a *Addon) (*helmSource, error) {
	g, err := kube.NewRESTGetter(env.REST, a.Helm.Namespace)
	if err != nil {
		return nil, err
	}
	// Helm logs through slog; the engine writes nothing to the terminal itself.
	cfg := action.NewConfiguration(action.ConfigurationSetLogger(slog.DiscardHandler))
	if err := cfg.Init(g, a.Helm.Namespace, "secret"); err != nil {
		return nil, fmt.Errorf("helm: %w", err)
	}
	return &helmSource{env: env, a: a, h: a.Helm, cfg: cfg}, nil
}

func (s *helmSource) key() string { return "helm/" + s.a.Name }

func (s *helmSource) what() string {
	return fmt.Sprintf("Helm release %s in namespace %s", s.h.Release, s.h.Namespace)
}

// history is the release's revisions, oldest first; none when it does not exist.
func (s *helmSource) history() ([]*release.Release, error) {
	all, err := s.cfg.Releases.History(s.h.Release)
	if errors.Is(err, driver.ErrReleaseNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the history of %s: %w", s.what(), err)
	}
	var out []*release.Release
	for _, r := range all {
		switch r := r.(type) {
		case *release.Release:
			out = append(out, r)
		case release.Release:
			out = append(out, &r)
		}
	}
	slices.SortFunc(out, func(a, b *release.Release) int { return a.Version - b.Version })
	return out, nil
}

func latest(hist []*release.Release) *release.Release {
	if len(hist) == 0 {
		return nil
	}
	return hist[len(hist)-1]
}

func deployed(hist []*release.Release) *release.Release {
	for i := len(hist) - 1; i >= 0; i-- {
		if hist[i].Info != nil && hist[i].Info.Status == rcommon.StatusDeployed {
			return hist[i]
		}
	}
	return nil
}

func chartName(c *chart.Chart) string {
	if c == nil || c.Metadata == nil {
		return "?"
	}
	return c.Metadata.Name + "-" + c.Metadata.Version
}

// load reads the chart and the values, and checks the chart's version.
func (s *helmSource) load() (*chart.Chart, map[string]any, error) {
	ch, err := loader.Load(s.h.Chart)
	if err != nil {
		return nil, nil, runbook.Invalid(fmt.Errorf("load chart %s: %w: helm.chart is a chart directory or a packaged .tgz, relative to the directory drydock runs in", s.h.Chart, err))
	}
	if s.h.Version != "" && ch.Metadata.Version != s.h.Version {
		return nil, nil, runbook.Invalid(fmt.Errorf("chart %s is %s, the runbook asks for version %s: point helm.chart at the right chart, or fix helm.version", s.h.Chart, chartName(ch), s.h.Version))
	}
	vals := map[string]any{}
	for _, f := range s.h.ValuesFiles {
		v, err := chartcommon.ReadValuesFile(f)
		if err != nil {
			return nil, nil, runbook.Invalid(fmt.Errorf("read values file %s: %w", f, err))
		}
		vals = mergeValues(vals, v)
	}
	return ch, mergeValues(vals, s.h.Values), nil
}

// mergeValues sets over's values into base, maps merged key by key (what helm does with -f and
// --set, written here because Helm's own merge logs to the standard logger).
func mergeValues(base, over map[string]any) map[string]any {
	out := make(map[string]any, len(base))
	for k, v := range base {
		out[k] = v
	}
	for k, v := range over {
		if vm, ok := v.(map[string]any); ok {
			if bm, ok := out[k].(map[string]any); ok {
				out[k] = mergeValues(bm, vm)
				continue
			}
		}
		out[k] = v
	}
	return out
}

func (s *helmSource) plan(context.Context) ([]string, error) {
	ch, _, err := s.load()
	if err != nil {
		return nil, err
	}
	hist, err := s.history()
	if err != nil {
		return nil, err
	}
	cur := deployed(hist)
	switch {
	case cur == nil && s.h.Install:
		return []string{fmt.Sprintf("helm install %s in %s from %s (%s); rollback uninstalls it", s.h.Release, s.h.Namespace, s.h.Chart, chartName(ch))}, nil
	case cur == nil:
		return nil, runbook.Invalid(s.notFound())
	}
	return []string{fmt.Sprintf("helm upgrade %s in %s from revision %d (%s) to %s (%s); rollback returns to revision %d",
		s.h.Release, s.h.Namespace, cur.Version, chartName(cur.Chart), chartName(ch), s.h.Chart, cur.Version)}, nil
}

func (s *helmSource) notFound() error {
	return fmt.Errorf("%s has no deployed revision: check the name (helm list -n %s), or set helm.install: true to install it", s.what(), s.h.Namespace)
}

// upgrade upgrades (or installs) the release once: a resumed step finds the revision its earlier
// attempt made, and a revision left pending by a crash is marked failed and upgraded again.
func (s *helmSource) upgrade(ctx context.Context) ([]workload, error) {
	ch, vals, err := s.load()
	if err != nil {
		return nil, err
	}
	hist, err := s.history()
	if err != nil {
		return nil, err
	}
	var st helmState
	if !s.env.LoadData(s.key(), &st) {
		if last := latest(hist); last != nil && last.Info.Status.IsPending() {
			return nil, fmt.Errorf("%s is %s at revision %d: another Helm operation is under way or was interrupted; finish it (helm rollback %s -n %s) and run again",
				s.what(), last.Info.Status, last.Version, s.h.Release, s.h.Namespace)
		}
		cur := deployed(hist)
		if cur == nil && !s.h.Install {
			return nil, runbook.Invalid(s.notFound())
		}
		if cur != nil {
			st = helmState{Before: cur.Version, BeforeChart: chartName(cur.Chart)}
		}
		// Journaled before Helm is called: if drydock dies in the call, rollback still knows where to go.
		if err := s.env.SaveData(ctx, s.key(), st); err != nil {
			return nil, err
		}
		if err := s.env.Record(ctx, runbook.Change{Kind: "helm-upgrade", Object: "helmrelease/" + s.h.Namespace + "/" + s.h.Release,
			Data: map[string]string{"addon": s.a.Name, "revision": strconv.Itoa(st.Before), "chart": st.BeforeChart}}); err != nil {
			return nil, err
		}
	}
	if last := latest(hist); last != nil && last.Version > st.Before {
		switch {
		case last.Info.Status == rcommon.StatusDeployed && last.Chart != nil && last.Chart.Metadata.Version == ch.Metadata.Version:
			s.env.Progress(fmt.Sprintf("%s: revision %d (%s) was made by this run before it stopped", s.a.Name, last.Version, chartName(last.Chart)), 0, 0)
			return s.workloads(last)
		case last.Info.Status.IsPending():
			// This run's own upgrade, cut short: Helm refuses to go on from a pending revision.
			last.SetStatus(rcommon.StatusFailed, "interrupted: drydock stopped during this operation and upgrades again")
			if err := s.cfg.Releases.Update(last); err != nil {
				return nil, fmt.Errorf("mark the interrupted revision %d of %s failed: %w", last.Version, s.what(), err)
			}
		}
	}
	if deployed(hist) == nil && st.Before > 0 {
		// Cut short after Helm marked the revision before superseded: Helm upgrades only from a
		// deployed revision, so back to that one first.
		if err := s.helmRollback(st.Before, fmt.Sprintf("drydock run %s: back to revision %d after an interrupted upgrade", s.env.RunID, st.Before)); err != nil {
			return nil, err
		}
		if hist, err = s.history(); err != nil {
			return nil, err
		}
	}
	desc := fmt.Sprintf("drydock run %s: upgrade to %s", s.env.RunID, chartName(ch))
	var rel any
	if st.Before == 0 {
		in := action.NewInstall(s.cfg)
		in.ReleaseName, in.Namespace, in.Description = s.h.Release, s.h.Namespace, desc
		in.WaitStrategy = helmkube.HookOnlyStrategy // drydock watches the rollout itself
		if last := latest(hist); last != nil {
			// A failed install before: Helm installs again only once it is gone.
			if err := s.uninstall(); err != nil {
				return nil, fmt.Errorf("remove the failed install of %s: %w", s.what(), err)
			}
		}
		rel, err = in.RunWithContext(ctx, ch, vals)
	} else {
		up := action.NewUpgrade(s.cfg)
		up.Namespace, up.Description = s.h.Namespace, desc
		up.WaitStrategy = helmkube.HookOnlyStrategy
		up.ReuseValues = s.h.ReuseValues
		up.MaxHistory = 10 // the helm CLI's default
		rel, err = up.RunWithContext(ctx, s.h.Release, ch, vals)
	}
	if err != nil {
		return nil, fmt.Errorf("helm upgrade %s: %w", s.what(), err)
	}
	r, ok := rel.(*release.Release)
	if !ok {
		return nil, fmt.Errorf("helm upgrade %s: unexpected release type %T", s.what(), rel)
	}
	s.env.Progress(fmt.Sprintf("%s: revision %d (%s) applied; waiting for its rollout", s.a.Name, r.Version, chartName(r.Chart)), 0, 0)
	return s.workloads(r)
}

func (s *helmSource) workloads(r *release.Release) ([]workload, error) {
	objs, err := decodeManifest(r.Manifest, fmt.Sprintf("the manifest of %s revision %d", s.what(), r.Version))
	if err != nil {
		return nil, err
	}
	return workloadsOf(objs, s.h.Namespace), nil
}

// rollback returns the release to the revision it had before the step (helm rollback), or
// uninstalls it when the step installed it.
func (s *helmSource) rollback(ctx context.Context) ([]workload, *runbook.Kept, error) {
	var st helmState
	if !s.env.LoadData(s.key(), &st) {
		return nil, nil, nil // never started
	}
	hist, err := s.history()
	if err != nil {
		return nil, nil, err
	}
	desc := fmt.Sprintf("drydock run %s: rolled back to revision %d", s.env.RunID, st.Before)
	last := latest(hist)
	switch {
	case last == nil:
		return nil, nil, nil // gone (installed, then uninstalled)
	case st.Before == 0:
		if err := s.uninstall(); err != nil && !errors.Is(err, driver.ErrReleaseNotFound) {
			return nil, nil, fmt.Errorf("uninstall %s, which this run installed: %w", s.what(), err)
		}
		return nil, nil, nil
	case last.Version == st.Before && last.Info.Status == rcommon.StatusDeployed:
		return s.wl(last) // never upgraded
	case last.Info.Status == rcommon.StatusDeployed && last.Info.Description == desc:
		return s.wl(last) // rolled back already, before a crash
	case last.Info.Status.IsPending():
		last.SetStatus(rcommon.StatusFailed, "interrupted: drydock stopped during this operation and rolls back")
		if err := s.cfg.Releases.Update(last); err != nil {
			return nil, nil, fmt.Errorf("mark the interrupted revision %d of %s failed: %w", last.Version, s.what(), err)
		}
	}
	if err := s.helmRollback(st.Before, desc); err != nil {
		return nil, nil, err
	}
	hist, err = s.history()
	if err != nil {
		return nil, nil, err
	}
	s.env.Progress(fmt.Sprintf("%s: rolled back to revision %d (%s) as revision %d", s.a.Name, st.Before, st.BeforeChart, latest(hist).Version), 0, 0)
	return s.wl(latest(hist))
}

func (s *helmSource) wl(r *release.Release) ([]workload, *runbook.Kept, error) {
	ws, err := s.workloads(r)
	return ws, nil, err
}

func (s *helmSource) helmRollback(to int, desc string) error {
	rb := action.NewRollback(s.cfg)
	rb.Version, rb.Description = to, desc
	rb.WaitStrategy = helmkube.HookOnlyStrategy // drydock watches the rollout itself
	rb.MaxHistory = 10
	if err := rb.Run(s.h.Release); err != nil {
		return fmt.Errorf("helm rollback %s to revision %d: %w", s.what(), to, err)
	}
	return nil
}

func (s *helmSource) uninstall() error {
	u := action.NewUninstall(s.cfg)
	u.WaitStrategy = helmkube.HookOnlyStrategy
	u.Description = "drydock run " + s.env.RunID + ": uninstall"
	_, err := u.Run(s.h.Release)
	return err
}
