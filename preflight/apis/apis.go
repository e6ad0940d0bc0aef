// Package apis knows when each Kubernetes API version of a kind was deprecated and removed.
//
// The table is generated (zz_generated.lifecycle.go, by internal/cmd/genapis) from the
// APILifecycleDeprecated/Removed/Replacement methods that k8s.io/api, k8s.io/apiextensions-apiserver
// and k8s.io/kube-aggregator generate for their prerelease types; the group-versions those modules
// no longer carry come from the hand-kept Overlay, one line per kind with its source.
package apis

import (
	"fmt"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/version"
)

// Release is a Kubernetes minor release, e.g. {1, 22}. The zero value means "not known".
type Release struct{ Major, Minor int }

func (r Release) String() string {
	if r.Major == 0 {
		return ""
	}
	return fmt.Sprintf("%d.%d", r.Major, r.Minor)
}

// IsZero reports an unknown release.
func (r Release) IsZero() bool { return r.Major == 0 }

// AtOrBefore reports whether r is known and not later than t.
func (r Release) AtOrBefore(t Release) bool {
	return !r.IsZero() && (r.Major < t.Major || r.Major == t.Major && r.Minor <= t.Minor)
}

// ParseRelease reads "1.22", "v1.22" or "v1.22.3" (the patch is ignored).
func ParseRelease(s string) (Release, error) {
	v, err := version.ParseGeneric(s)
	if err != nil {
		return Release{}, fmt.Errorf("%q is not a Kubernetes version: write it as v1.36 or v1.36.2", s)
	}
	return Release{int(v.Major()), int(v.Minor())}, nil
}

// Lifecycle is one kind at one API version.
type Lifecycle struct {
	Group, Version, Kind string
	Deprecated           Release
	Removed              Release
	// Replacement is the apiVersion and kind to use instead ("networking.k8s.io/v1 Ingress"); empty
	// when there is none.
	Replacement string
	// Source says where the entry comes from: the generating module, or a link for Overlay lines.
	Source string
	// Note is what to do instead when there is no replacement API (Overlay lines).
	Note string
}

// GroupVersionKind of the entry.
func (l Lifecycle) GroupVersionKind() schema.GroupVersionKind {
	return schema.GroupVersionKind{Group: l.Group, Version: l.Version, Kind: l.Kind}
}

// APIVersion as written in a manifest ("apps/v1beta1", "v1").
func (l Lifecycle) APIVersion() string { return l.GroupVersionKind().GroupVersion().String() }

var index = func() map[schema.GroupVersionKind]Lifecycle {
	m := make(map[schema.GroupVersionKind]Lifecycle, len(generated)+len(Overlay))
	for _, t := range [][]Lifecycle{generated, Overlay} {
		for _, l := range t {
			m[l.GroupVersionKind()] = l
		}
	}
	return m
}()

// Lookup finds the lifecycle of kind at apiVersion ("extensions/v1beta1", "Ingress"). Kinds that
// were never deprecated are not found.
func Lookup(apiVersion, kind string) (Lifecycle, bool) {
	gv, err := schema.ParseGroupVersion(apiVersion)
	if err != nil {
		return Lifecycle{}, false
	}
	l, ok := index[gv.WithKind(kind)]
	return l, ok
}

// FlaggedKinds returns the kinds with a version that target deprecates or no longer serves: only an
// object of one of these kinds can have been written through such a version (a kind that moved
// groups, as Ingress from extensions to networking.k8s.io, keeps its name).
func FlaggedKinds(target Release) map[string]bool {
	kinds := map[string]bool{}
	for _, l := range index {
		if l.At(target) != Fine {
			kinds[l.Kind] = true
		}
	}
	return kinds
}

// All returns every entry, generated and overlay, sorted by group, version and kind.
func All() []Lifecycle {
	out := make([]Lifecycle, 0, len(index))
	for _, l := range index {
		out = append(out, l)
	}
	sort.Slice(out, func(i, j int) bool { return Less(out[i], out[j]) })
	return out
}

// Generated returns the generated entries only (for the drift test).
func Generated() []Lifecycle { return generated }

// Less orders entries by group, version, kind.
func Less(a, b Lifecycle) bool {
	if a.Group != b.Group {
		return a.Group < b.Group
	}
	if a.Version != b.Version {
		return a.Version < b.Version
	}
	return a.Kind < b.Kind
}

// Latest is the newest release the table knows anything about (a removal or deprecation).
func Latest() Release {
	var r Release
	for _, l := range index {
		for _, x := range []Release{l.Deprecated, l.Removed} {
			if r.AtOrBefore(x) || r.IsZero() {
				if !x.IsZero() {
					r = x
				}
			}
		}
	}
	return r
}

// Status of an API version at a target release.
type Status int

const (
	Fine       Status = iota // served, not deprecated
	Deprecated               // deprecated by the target, still served
	Removed                  // no longer served by the target
)

// At says what the target release does with this API version.
func (l Lifecycle) At(target Release) Status {
	switch {
	case l.Removed.AtOrBefore(target):
		return Removed
	case l.Deprecated.AtOrBefore(target):
		return Deprecated
	}
	return Fine
}

// Fix says what to do about the entry, in one sentence.
func (l Lifecycle) Fix() string {
	switch {
	case l.Replacement != "":
		return "use " + l.Replacement + " instead"
	case l.Note != "":
		return l.Note
	}
	return "no replacement API: move to the alternative the Kubernetes deprecation guide names, or remove the object"
}

// Pinned is the Kubernetes release of PinnedModule, the k8s.io/api version the table was
// generated from: the newest release drydock can check for is the one after it.
var Pinned = func() Release {
	r, err := ParseRelease(strings.Replace(PinnedModule, "v0.", "v1.", 1))
	if err != nil {
		panic(err)
	}
	return r
}()
