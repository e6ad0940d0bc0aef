//go:generate go run ../../internal/cmd/genfeatures -root ../.. -o zz_generated.featuregates.go

// Package config knows what a Kubernetes release does to the configuration of the control plane and
// the kubelets: feature gates it removes or locks (generated from k8s.io/kubernetes at the versions
// drydock pins, with a drift test), flags it removes (hand-kept, a source per line), kubeadm
// configuration it no longer reads, and in-tree volume plugins it no longer serves.
package config

import (
	"fmt"
	"sort"
	"strings"

	"github.com/drydock-dev/drydock/preflight/apis"
)

// Spec is one stage of a feature gate, from the Kubernetes version it applies to.
type Spec struct {
	Since      string // "1.33"
	Default    bool
	Locked     bool
	PreRelease string // ALPHA, BETA, DEPRECATED, or "" (GA)
}

// Gates is every feature gate of one Kubernetes release.
type Gates struct {
	Kubernetes string // v1.37.1
	Gates      map[string][]Spec
}

// Release is the gates' minor.
func (g Gates) Release() apis.Release {
	r, _ := apis.ParseRelease(g.Kubernetes)
	return r
}

// Source names where the gates come from.
func (g Gates) Source() string {
	return "https://github.com/kubernetes/kubernetes/blob/" + g.Kubernetes + "/pkg/features/kube_features.go (and the gates it registers; generated)"
}

// at is the stage of specs in force at release k (the last one from k or before).
func at(specs []Spec, k apis.Release) (Spec, bool) {
	var out Spec
	found := false
	for _, s := range specs {
		r, err := apis.ParseRelease(s.Since)
		if err == nil && r.AtOrBefore(k) {
			out, found = s, true
		}
	}
	return out, found
}

// gatesFor is the generated release for target k: the same minor (exact), else the newest before it.
func gatesFor(k apis.Release) (Gates, bool, bool) {
	var best Gates
	ok := false
	for _, g := range Generated {
		r := g.Release()
		if r == k {
			return g, true, true
		}
		if r.AtOrBefore(k) {
			best, ok = g, true
		}
	}
	return best, false, ok
}

// Problem is what the target does to one setting.
type Problem struct {
	Error   bool // the component refuses to start (else a warning)
	Message string
	Fix     string
	Source  string
}

// JudgeGate says what target does to feature gate name set to value; false when nothing.
func JudgeGate(name string, value bool, target apis.Release) (Problem, bool) {
	g, exact, ok := gatesFor(target)
	if !ok {
		return Problem{}, false
	}
	set := fmt.Sprintf("%s=%v", name, value)
	specs, known := g.Gates[name]
	if !known {
		if !exact {
			return Problem{Message: fmt.Sprintf("feature gate %s is not known to Kubernetes %s, the newest drydock knows the gates of: %s may not accept it", set, g.Kubernetes, target),
				Fix: "check the feature gates of " + target.String() + " before the upgrade", Source: g.Source()}, true
		}
		was := ""
		for _, o := range Generated {
			if _, in := o.Gates[name]; in && o.Release().AtOrBefore(target) && o.Release() != target {
				was = " (it is removed in " + target.String() + ")"
			}
		}
		return Problem{Error: true, Message: fmt.Sprintf("feature gate %s is not a gate of Kubernetes %s%s: the component refuses to start with it set", set, target, was),
			Fix: fmt.Sprintf("remove %s from the feature gates as you upgrade the component (from kubeadm's extraArgs or KubeletConfiguration too)", name), Source: g.Source()}, true
	}
	s, found := at(specs, target)
	if !found {
		return Problem{}, false
	}
	switch {
	case s.Locked && s.Default != value:
		return Problem{Error: true, Message: fmt.Sprintf("feature gate %s is locked to %v in %s (%s): the component refuses to start with it set otherwise", set, s.Default, target, stage(s)),
			Fix: fmt.Sprintf("remove %s from the feature gates, and make sure what it switched off is no longer needed: it is %v for good", name, s.Default), Source: g.Source()}, true
	case s.Locked:
		how := "from " + target.String()
		if !exact {
			how = "in " + g.Kubernetes + ", so it may be gone in " + target.String()
		}
		return Problem{Message: fmt.Sprintf("feature gate %s is locked to its default %s (%s): the setting does nothing, and a locked gate is removed in a later release", set, how, stage(s)),
			Fix: fmt.Sprintf("remove %s from the feature gates", name), Source: g.Source()}, true
	case s.PreRelease == "DEPRECATED":
		return Problem{Message: fmt.Sprintf("feature gate %s is deprecated in %s", set, target),
			Fix: fmt.Sprintf("stop relying on %s and remove it from the feature gates", name), Source: g.Source()}, true
	}
	return Problem{}, false
}

func stage(s Spec) string {
	p := s.PreRelease
	if p == "" {
		p = "GA"
	}
	return strings.ToLower(p) + " since " + s.Since
}

// ParseFeatureGates reads --feature-gates=A=true,B=false (or a kubeadm extraArgs value).
func ParseFeatureGates(v string) (map[string]bool, []string) {
	out := map[string]bool{}
	var bad []string
	for _, kv := range strings.Split(v, ",") {
		kv = strings.TrimSpace(kv)
		if kv == "" {
			continue
		}
		k, val, _ := strings.Cut(kv, "=")
		switch strings.ToLower(strings.TrimSpace(val)) {
		case "true":
			out[strings.TrimSpace(k)] = true
		case "false":
			out[strings.TrimSpace(k)] = false
		default:
			bad = append(bad, kv)
		}
	}
	return out, bad
}

// SortedGates lists a gate map's names in order.
func SortedGates(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
