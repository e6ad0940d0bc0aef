package drain

// The drain's typed errors: what cmd maps to exit codes and what the engine journals.

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// RecordError: the journal write that records an eviction before it is sent failed; the drain
// stopped, and sent no eviction after it.
type RecordError struct {
	Node, Pod string
	Err       error
}

func (e *RecordError) Error() string {
	return fmt.Sprintf("journal the eviction of %s before sending it: %v; no eviction was sent after it", e.Pod, e.Err)
}

func (e *RecordError) Unwrap() error { return e.Err }

// NodeDeletedError: the node was deleted while it was drained (an autoscaler, a person); Left is
// how many of the plan's pods were still on it. The drain stops at once: a deleted node's pods are
// removed by the cluster (pod garbage collection), not evicted, and none of them is the drain's to wait for.
type NodeDeletedError struct {
	Node string
	Left int
}

func (e *NodeDeletedError) Error() string {
	return fmt.Sprintf("drain node %q: the node was deleted while drydock drained it, with %d pod(s) of the plan still on it: "+
		"they were not evicted (their budgets were not asked); the cluster deletes them and their controllers recreate them elsewhere", e.Node, e.Left)
}

// BlockedError is a drain that ran out of time with pods left; it says which and why.
type BlockedError struct {
	Node string
	Left []string // "default/web-7d9 blocked by PDB default/web: needs 3 healthy, has 3"
	// ByBudget says whether a PodDisruptionBudget holds at least one of them.
	ByBudget bool
	Cause    error
}

func (e *BlockedError) Error() string {
	return fmt.Sprintf("drain node %q: %v with %d pod(s) left: %s", e.Node, e.Cause, len(e.Left), strings.Join(e.Left, "; "))
}

// Unwrap is why the drain stopped: the step's or the node's timeout, or an interruption.
func (e *BlockedError) Unwrap() error { return e.Cause }

// NodeTimeoutError is the cause of a drain that ran out of its nodeTimeout.
type NodeTimeoutError struct {
	Node  string
	After time.Duration
}

func (e *NodeTimeoutError) Error() string {
	return fmt.Sprintf("nodeTimeout %s ran out", e.After)
}

// ErrBlocked reports whether err is a drain blocked by a budget.
func ErrBlocked(err error) bool {
	var be *BlockedError
	return errors.As(err, &be) && be.ByBudget
}
