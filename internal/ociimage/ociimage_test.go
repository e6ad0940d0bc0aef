package ociimage

import (
	"archive/tar"
	"context"
	"errors"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// TestBuildPause: the pause image is built from this repository's source, named as pods give it,
// with one layer holding its static binary as the entrypoint; built twice, it has the same digest.
func TestBuildPause(t *testing.T) {
	root, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}").Output()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var digests []string
	for i := range 2 {
		dest := filepath.Join(dir, "pause"+string(rune('a'+i))+".tar")
		if err := Build(context.Background(), strings.TrimSpace(string(root)), Pause, dest); err != nil {
			t.Fatal(err)
		}
		tag, _ := name.NewTag(Pause.Ref)
		img, err := tarball.ImageFromPath(dest, &tag)
		if err != nil {
			t.Fatalf("read back: %v", err)
		}
		cfg, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(cfg.Config.Entrypoint, " "); got != "/pause" || cfg.OS != "linux" {
			t.Fatalf("entrypoint %q os %q, want /pause linux", got, cfg.OS)
		}
		files := listFiles(t, mutate.Extract(img))
		if len(files) != 1 || files["pause"]&0o111 == 0 {
			t.Fatalf("files %v, want only an executable pause", files)
		}
		d, _ := img.Digest()
		digests = append(digests, d.String())
	}
	if digests[0] != digests[1] {
		t.Fatalf("two builds, two digests: %v", digests)
	}
}

func listFiles(t *testing.T, rc io.ReadCloser) map[string]int64 {
	t.Helper()
	defer rc.Close()
	files := map[string]int64{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		files[h.Name] = h.Mode
	}
}
