package kube

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"
)

// WaitGone watches until the one object lw lists (select it by name) is deleted, or returns at once
// when it is not there. obj is an empty object of its type. A list the apiserver refuses (403, 401)
// is returned at once: the informer underneath would retry it until ctx ends and say only that its
// cache did not sync.
func WaitGone(ctx context.Context, lw cache.ListerWatcher, obj runtime.Object) error {
	if _, err := cache.ToListerWatcherWithContext(lw).ListWithContext(ctx, metav1.ListOptions{ResourceVersion: "0", Limit: 1}); apierrors.IsForbidden(err) || apierrors.IsUnauthorized(err) {
		return fmt.Errorf("wait until deleted: %w", err)
	}
	_, err := watchtools.UntilWithSync(ctx, lw, obj,
		func(store cache.Store) (bool, error) { return len(store.List()) == 0, nil },
		func(e watch.Event) (bool, error) { return e.Type == watch.Deleted, nil })
	return err
}
