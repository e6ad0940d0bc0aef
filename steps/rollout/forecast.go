package rollout

import (
	"fmt"
	"time"

	"github.com/drydock-dev/drydock/runbook"
)

// assumedAction is the forecast of an action whose runbook does not say how long it takes.
var assumedAction = runbook.Est(2*time.Minute, 30*time.Second, 10*time.Minute)

// Forecast is how long the action takes on one node until it is Ready at the target, and what the
// forecast assumed for lack of expectedDuration.
func (a *Action) Forecast() (runbook.Estimate, []string) {
	if a.ExpectedDuration.IsZero() {
		return assumedAction, []string{fmt.Sprintf("the upgrade action takes %s per node (set action.expectedDuration to what it takes)", assumedAction)}
	}
	d := a.ExpectedDuration.Duration
	return runbook.Est(d, d*3/4, d*3/2), nil
}
