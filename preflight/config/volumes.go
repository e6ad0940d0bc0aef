package config

import (
	corev1 "k8s.io/api/core/v1"
	csitrans "k8s.io/csi-translation-lib"

	"github.com/drydock-dev/drydock/preflight/apis"
)

// GonePlugin is an in-tree volume source the pinned release serves no plugin for, migration
// included: a volume of that kind cannot be mounted.
type GonePlugin struct {
	Field   string // the field of the volume source: cephfs, rbd, ...
	Removed apis.Release
	Source  string
}

// volumeTree is the pinned release's in-tree plugins: none of the GonePlugins is among them.
const volumeTree = "https://github.com/kubernetes/kubernetes/tree/v1.37.1/pkg/volume (no plugin) and https://github.com/kubernetes/kubernetes/tree/v1.37.1/staging/src/k8s.io/csi-translation-lib/plugins (no migration)"

// GonePlugins is hand-kept: checked against pkg/volume and csi-translation-lib of k8s.io/kubernetes
// v1.37.1. Removed is the release that dropped the plugin where a source says it, else zero (gone
// before the oldest release drydock can upgrade from).
var GonePlugins = []GonePlugin{
	{Field: "cephfs", Removed: r(31), Source: "https://github.com/kubernetes/kubernetes/pull/124544"},
	{Field: "rbd", Removed: r(31), Source: "https://github.com/kubernetes/kubernetes/pull/124546"},
	{Field: "glusterfs", Source: volumeTree},
	{Field: "quobyte", Source: volumeTree},
	{Field: "flocker", Source: volumeTree},
	{Field: "storageos", Source: volumeTree},
	{Field: "scaleIO", Source: volumeTree},
	{Field: "photonPersistentDisk", Source: volumeTree},
}

// VolumeUse is what a volume needs from the target.
type VolumeUse struct {
	// Gone: no plugin at all (GonePlugins).
	Gone *GonePlugin
	// CSIDriver: served only through CSI migration, by this driver (which must be installed).
	InTree, CSIDriver string
	// GitRepo: a gitRepo volume, which the target serves only while the GitRepoVolumeDriver gate
	// allows it.
	GitRepo bool
}

var translator = csitrans.New()

// PVUse says what a PersistentVolume's source needs.
func PVUse(pv *corev1.PersistentVolume) (VolumeUse, bool) {
	if g := gone(pvFields(&pv.Spec.PersistentVolumeSource)); g != nil {
		return VolumeUse{Gone: g}, true
	}
	if translator.IsPVMigratable(pv) {
		return migrated(pv, nil)
	}
	return VolumeUse{}, false
}

// migrated names the in-tree plugin of a PV or an inline volume and the CSI driver it migrates to.
func migrated(pv *corev1.PersistentVolume, v *corev1.Volume) (VolumeUse, bool) {
	plugin, err := translator.GetInTreePluginNameFromSpec(pv, v)
	if err != nil {
		return VolumeUse{}, false
	}
	driver, err := translator.GetCSINameFromInTreeName(plugin)
	if err != nil {
		return VolumeUse{}, false
	}
	return VolumeUse{InTree: plugin, CSIDriver: driver}, true
}

// InlineUse says what a pod's inline volume needs.
func InlineUse(v *corev1.Volume) (VolumeUse, bool) {
	if g := gone(inlineFields(&v.VolumeSource)); g != nil {
		return VolumeUse{Gone: g}, true
	}
	if v.GitRepo != nil {
		return VolumeUse{GitRepo: true}, true
	}
	if translator.IsInlineMigratable(v) {
		return migrated(nil, v)
	}
	return VolumeUse{}, false
}

// GitRepoServed says whether target still mounts gitRepo volumes (its gate's default, when locked).
func GitRepoServed(target apis.Release) (served bool, source string) {
	g, _, ok := gatesFor(target)
	if !ok {
		return true, ""
	}
	s, found := at(g.Gates["GitRepoVolumeDriver"], target)
	if !found {
		return true, ""
	}
	return s.Default || !s.Locked, g.Source()
}

func pvFields(s *corev1.PersistentVolumeSource) map[string]bool {
	return map[string]bool{"cephfs": s.CephFS != nil, "rbd": s.RBD != nil, "glusterfs": s.Glusterfs != nil, "quobyte": s.Quobyte != nil,
		"flocker": s.Flocker != nil, "storageos": s.StorageOS != nil, "scaleIO": s.ScaleIO != nil, "photonPersistentDisk": s.PhotonPersistentDisk != nil}
}

func inlineFields(s *corev1.VolumeSource) map[string]bool {
	return map[string]bool{"cephfs": s.CephFS != nil, "rbd": s.RBD != nil, "glusterfs": s.Glusterfs != nil, "quobyte": s.Quobyte != nil,
		"flocker": s.Flocker != nil, "storageos": s.StorageOS != nil, "scaleIO": s.ScaleIO != nil, "photonPersistentDisk": s.PhotonPersistentDisk != nil}
}

func gone(set map[string]bool) *GonePlugin {
	for i := range GonePlugins {
		if set[GonePlugins[i].Field] {
			return &GonePlugins[i]
		}
	}
	return nil
}
