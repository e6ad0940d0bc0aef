package kube

import (
	"context"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"
)

// WaitGone watches until the one object lw lists (select it by name) is deleted, or returns at once
// when it is not there. obj is an empty object of its type.
func WaitGone(ctx context.Context, lw cache.ListerWatcher, obj runtime.Object) error {
	_, err := watchtools.UntilWithSync(ctx, lw, obj,
		func(store cache.Store) (bool, error) { return len(store.List()) == 0, nil },
		func(e watch.Event) (bool, error) { return e.Type == watch.Deleted, nil })
	return err
}
