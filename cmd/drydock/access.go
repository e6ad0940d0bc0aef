package main

import (
	"fmt"
	"strings"

	"github.com/drydock-dev/drydock/preflight"
	"github.com/drydock-dev/drydock/runbook"
	"github.com/drydock-dev/drydock/steps"
)

// docs/permissions.md's table is generated from what the code declares (runbook.EngineAccess,
// each step kind's Access, preflight.AccessFor), so that the two cannot drift; access-check, and
// every run before its first change, ask about the same list.
const (
	accessTableBegin = "<!-- access-table: generated from the code; `go test ./cmd/drydock -run TestPermissionsTable -update` rewrites it -->"
	accessTableEnd   = "<!-- /access-table -->"
)

// accessTable renders the permissions each command and step kind needs as a Markdown table.
func accessTable() string {
	var b strings.Builder
	b.WriteString("| what | permissions |\n|---|---|\n")
	fmt.Fprintf(&b, "| `drydock preflight` (all checks) | %s |\n", renderAccess(preflight.AccessFor()))
	fmt.Fprintf(&b, "| any run (`run`, `resume`, `rollback`, `drain`): the cluster's lock, and the journal's ConfigMaps in the state namespace (`kube-system` by default) | %s |\n",
		renderAccess(runbook.EngineAccess("")))
	// Step kinds with the same needs share a row, in the registry's order.
	var order []string
	kinds := map[string][]string{}
	for _, k := range steps.Registry {
		s := k.New()
		var need []runbook.Access
		if a, ok := s.(runbook.AccessNeeder); ok {
			need = a.Access()
		}
		r := renderAccess(need)
		if r == "" {
			r = "nothing from drydock (a command brings its own credentials)"
		}
		if _, seen := kinds[r]; !seen {
			order = append(order, r)
		}
		kinds[r] = append(kinds[r], "`"+k.Name+"`")
	}
	for _, r := range order {
		fmt.Fprintf(&b, "| step %s | %s |\n", strings.Join(kinds[r], ", "), r)
	}
	return b.String()
}

func renderAccess(list []runbook.Access) string {
	var parts []string
	for _, a := range runbook.Dedupe(list) {
		parts = append(parts, "`"+a.String()+"`")
	}
	return strings.Join(parts, ", ")
}
