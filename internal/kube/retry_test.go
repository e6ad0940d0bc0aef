package kube

import (
	"fmt"
	"io"
	"net/http"
	"syscall"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

func TestTransient(t *testing.T) {
	nodes := schema.GroupResource{Resource: "nodes"}
	pods := schema.GroupResource{Resource: "pods"}
	budget := apierrors.NewTooManyRequests("Cannot evict pod as it would violate the pod's disruption budget.", 0)
	budget.ErrStatus.Details = &metav1.StatusDetails{Causes: []metav1.StatusCause{{Type: "DisruptionBudget"}}}
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"500", apierrors.NewInternalError(fmt.Errorf("etcd")), true},
		{"503", apierrors.NewServiceUnavailable("restarting"), true},
		{"504 of the eviction API", apierrors.NewTimeoutError("conflict on the budget", 0), true},
		{"429 throttled", apierrors.NewTooManyRequests("slow down", 1), true},
		{"429 of a budget", budget, false},
		{"403 with a Status", apierrors.NewForbidden(nodes, "n1", fmt.Errorf("denied")), false},
		// client-go's error for a response whose body is not a Status: the code decides.
		{"403 page of a proxy", apierrors.NewGenericServerResponse(http.StatusForbidden, "patch", nodes, "n1", "<html>", 0, true), false},
		{"404 page of a proxy", apierrors.NewGenericServerResponse(http.StatusNotFound, "get", pods, "p", "unknown", 0, true), false},
		{"502 page of a load balancer", apierrors.NewGenericServerResponse(http.StatusBadGateway, "patch", nodes, "n1", "unknown", 0, true), true},
		{"404 with a Status", apierrors.NewNotFound(pods, "p"), false},
		{"409", apierrors.NewConflict(nodes, "n1", fmt.Errorf("changed")), false},
		{"connection reset", fmt.Errorf("patch: %w", syscall.ECONNRESET), true},
		{"EOF", fmt.Errorf("get: %w", io.ErrUnexpectedEOF), true},
		{"a plain error", fmt.Errorf("bad input"), false},
	} {
		if got := Transient(tc.err); got != tc.want {
			t.Errorf("%s: Transient(%v) = %v, want %v", tc.name, tc.err, got, tc.want)
		}
	}
}
