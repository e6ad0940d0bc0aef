// Package ociimage packs programs of this repository into container images on this machine, with
// go-containerregistry: a static binary in one layer, written as an image archive that a real
// node's containerd imports. Real nodes never pull: every image they run is one of these.
package ociimage

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Image is a program of this repository as an image.
type Image struct {
	// Ref is the image's name as pods give it (imagePullPolicy: IfNotPresent or Never).
	Ref string
	// Package is the Go main package, relative to the module root.
	Package string
}

// The images real nodes run.
var (
	// Pause holds a pod's namespaces: the sandbox image containerd is configured with.
	Pause = Image{Ref: "drydock.local/pause:1", Package: "./internal/cmd/pause"}
	// Webserver is the HTTP workload with graceful shutdown and a preStop endpoint.
	Webserver = Image{Ref: "drydock.local/webserver:1", Package: "./internal/cmd/webserver"}
	// All are the images a real node imports when it starts.
	All = []Image{Pause, Webserver}
)

// Binary is the program's file name in the image (/NAME), its entrypoint.
func (i Image) Binary() string { return filepath.Base(i.Package) }

// Build compiles the image's program in the module at root (static, for this machine's
// architecture, reproducibly) and writes the image as a docker-archive tarball at dest.
func Build(ctx context.Context, root string, img Image, dest string) error {
	tmp, err := os.MkdirTemp("", "drydock-image-")
	if err != nil {
		return fmt.Errorf("build image %s: %w", img.Ref, err)
	}
	defer os.RemoveAll(tmp)
	bin := filepath.Join(tmp, img.Binary())
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", "-s -w", "-o", bin, img.Package)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build image %s: go build %s: %w\n%s", img.Ref, img.Package, err, out)
	}
	i, err := FromBinary(bin)
	if err != nil {
		return fmt.Errorf("build image %s: %w", img.Ref, err)
	}
	ref, err := name.ParseReference(img.Ref)
	if err != nil {
		return fmt.Errorf("build image %s: %w", img.Ref, err)
	}
	if err := tarball.WriteToFile(dest, ref, i); err != nil {
		return fmt.Errorf("build image %s: write %s: %w", img.Ref, dest, err)
	}
	return nil
}

// FromBinary is an image of one layer holding the file at bin as /NAME, its entrypoint.
func FromBinary(bin string) (v1.Image, error) {
	b, err := os.ReadFile(bin)
	if err != nil {
		return nil, err
	}
	base := filepath.Base(bin)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	// No time and no owner: the same binary always gives the same layer digest.
	if err := tw.WriteHeader(&tar.Header{Name: base, Mode: 0o755, Size: int64(len(b)), Typeflag: tar.TypeReg, Format: tar.FormatPAX}); err != nil {
		return nil, err
	}
	if _, err := tw.Write(b); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	data := buf.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
	if err != nil {
		return nil, err
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return nil, err
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture = "linux", runtime.GOARCH
	cfg.Config.Entrypoint = []string{"/" + base}
	cfg.Config.Env = []string{"PATH=/"}
	return mutate.ConfigFile(img, cfg)
}

// Names are the refs of imgs, for a message.
func Names(imgs []Image) string {
	var out []string
	for _, i := range imgs {
		out = append(out, i.Ref)
	}
	return strings.Join(out, ", ")
}
