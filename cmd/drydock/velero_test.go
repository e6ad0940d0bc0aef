package main

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/drydock-dev/drydock/internal/simcluster"
)

// TestRollbackRestoresBackupOnlyWhenAsked: a run's Velero backup is its rollback point; `drydock
// rollback --restore-backup` restores it, and only with a confirmation (--yes without a terminal).
func TestRollbackRestoresBackupOnlyWhenAsked(t *testing.T) {
	simcluster.Need(t)
	ctx := context.Background()
	v, err := cluster.StartVelero(ctx, veleroOpts)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Stop()
	c := cluster.Client
	if _, err := c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "restoreme"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CoreV1().ConfigMaps("restoreme").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "precious"}, Data: map[string]string{"k": "v"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	p := newProc(t)
	rb := writeRunbook(t, "backup", `    - name: backup
      type: velero-backup
      timeout: 3m
      with: {includedNamespaces: [restoreme]}
`)
	out, code := p.run("run", rb)
	if code != 0 {
		t.Fatalf("run: exit %d\n%s", code, out)
	}
	id := runIDRE.FindStringSubmatch(out)[1]

	// Something goes wrong: the ConfigMap is lost.
	if err := c.CoreV1().ConfigMaps("restoreme").Delete(ctx, "precious", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	out, code = p.run("rollback", id)
	if code != 2 || !strings.Contains(out, "--restore-backup` restores it") {
		t.Errorf("plain rollback: exit %d, want 2 and a hint about the backup\n%s", code, out)
	}
	out, code = p.run("rollback", id, "--restore-backup")
	if code != 2 || !strings.Contains(out, "would restore Velero backup velero/drydock-"+id+": pass --yes") {
		t.Errorf("unconfirmed: exit %d\n%s", code, out)
	}
	if _, err := c.CoreV1().ConfigMaps("restoreme").Get(ctx, "precious", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("restored without confirmation: %v", err)
	}
	out, code = p.run("rollback", id, "--restore-backup", "--yes")
	if code != 0 || !strings.Contains(out, ": Completed,") {
		t.Fatalf("restore: exit %d\n%s", code, out)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := c.CoreV1().ConfigMaps("restoreme").Get(ctx, "precious", metav1.GetOptions{}); err == nil {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("the ConfigMap did not come back: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
