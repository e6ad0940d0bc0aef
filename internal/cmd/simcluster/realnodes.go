package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/drydock-dev/drydock/internal/simcluster"
)

// deployWeb makes the Deployment namespace/name the webserver image on the real nodes
// (simcluster.WebDeployment, a preStop hook of preStop): created, or its pods replaced when it
// exists (its selector must be app=NAME), and waits until every replica is available.
func deployWeb(ctx context.Context, c *simcluster.Cluster, namespace, name string, replicas int32, preStop time.Duration) error {
	if namespace == "" || name == "" || replicas < 1 {
		return errors.New("usage: simcluster web --namespace NS [--replicas K ≥ 1] [--pre-stop 2s] NAME")
	}
	want := simcluster.WebDeployment(namespace, name, replicas, simcluster.WebOptions{PreStop: preStop})
	deployments := c.Client.AppsV1().Deployments(namespace)
	d, err := deployments.Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		_, err = deployments.Create(ctx, want, metav1.CreateOptions{})
	case err == nil:
		d.Spec.Replicas, d.Spec.Template = want.Spec.Replicas, want.Spec.Template
		_, err = deployments.Update(ctx, d, metav1.UpdateOptions{})
	}
	if err != nil {
		return fmt.Errorf("web: Deployment %s/%s: %w", namespace, name, err)
	}
	if err := c.WaitDeploymentReady(ctx, namespace, name, 3*time.Minute); err != nil {
		return fmt.Errorf("web: Deployment %s/%s did not roll out on the real nodes within 3 minutes: %w", namespace, name, err)
	}
	fmt.Fprintf(os.Stderr, "simcluster: Deployment %s/%s runs %d webserver pods on the real nodes\n", namespace, name, replicas)
	return nil
}

func splitList(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}
