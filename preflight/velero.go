package preflight

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	velerov1 "github.com/vmware-tanzu/velero/pkg/apis/velero/v1"

	"github.com/drydock-dev/drydock/internal/velero"
	"github.com/drydock-dev/drydock/runbook"
)

// VeleroInput configures the velero check.
type VeleroInput struct {
	// Namespace Velero runs in (default velero).
	Namespace string
	// Required: the work ahead backs up with Velero, so its absence is an error, not a note.
	Required bool
	// MaxAge of the newest Completed backup before it is reported (default 24h).
	MaxAge time.Duration
	// Namespaces the newest backup must cover (default: any backup counts).
	Namespaces []string
}

// checkVelero: Velero is installed, its storage locations are Available and validated lately, and
// a recent backup completed.
func checkVelero(ctx context.Context, in *Input) ([]Finding, error) {
	vi := in.Velero
	if vi.MaxAge == 0 {
		vi.MaxAge = 24 * time.Hour
	}
	vc, err := velero.New(in.REST, vi.Namespace)
	if err != nil {
		return nil, err
	}
	if err := vc.Installed(); err != nil {
		if !errors.Is(err, velero.ErrNotInstalled) {
			return nil, err
		}
		sev := runbook.SeverityInfo
		if vi.Required {
			sev = runbook.SeverityError
		}
		return []Finding{{Severity: sev, Object: "velero.io/v1", Message: "Velero is not installed: no backup can be made before the upgrade",
			Fix: "install Velero (velero install ...) with a BackupStorageLocation"}}, nil
	}
	var out []Finding
	locs, err := vc.StorageLocations(ctx)
	if err != nil {
		return nil, fmt.Errorf("list BackupStorageLocations in %s: %w", vc.Namespace, err)
	}
	if len(locs) == 0 {
		out = append(out, Finding{Severity: runbook.SeverityError, Object: "namespace " + vc.Namespace, Message: "Velero has no BackupStorageLocation: backups have nowhere to go",
			Fix: "create one (velero backup-location create)"})
	}
	for _, l := range locs {
		switch {
		case l.Status.Phase != velerov1.BackupStorageLocationPhaseAvailable:
			msg := l.Status.Message
			if msg == "" {
				msg = "no message"
			}
			out = append(out, Finding{Severity: runbook.SeverityError, ObjectRef: Ref("BackupStorageLocation", l.Namespace, l.Name),
				Message: fmt.Sprintf("%s: %s; new backups end FailedValidation", velero.Phase(l.Status.Phase), msg),
				Fix:     "fix the bucket, endpoint or credentials (kubectl -n " + l.Namespace + " describe backupstoragelocation " + l.Name + ")"})
		case l.Status.LastValidationTime == nil:
			out = append(out, Finding{Severity: runbook.SeverityWarning, ObjectRef: Ref("BackupStorageLocation", l.Namespace, l.Name), Message: "never validated by the Velero server", Fix: "check that the Velero server runs"})
		default:
			every := time.Minute
			if l.Spec.ValidationFrequency != nil && l.Spec.ValidationFrequency.Duration > 0 {
				every = l.Spec.ValidationFrequency.Duration
			}
			if age := time.Since(l.Status.LastValidationTime.Time); age > 3*every+time.Minute {
				out = append(out, Finding{Severity: runbook.SeverityWarning, ObjectRef: Ref("BackupStorageLocation", l.Namespace, l.Name),
					Message: fmt.Sprintf("last validated %s ago although it is validated every %s: is the Velero server running?", age.Round(time.Second), every),
					Fix:     "kubectl -n " + l.Namespace + " logs deploy/velero"})
			}
		}
	}

	backups, err := vc.Backups(ctx, "")
	if err != nil {
		return nil, fmt.Errorf("list backups in %s: %w", vc.Namespace, err)
	}
	var newest *velerov1.Backup
	for i := range backups {
		b := &backups[i]
		if b.Status.CompletionTimestamp == nil {
			continue
		}
		age := time.Since(b.Status.CompletionTimestamp.Time)
		switch b.Status.Phase {
		case velerov1.BackupPhaseCompleted:
			if len(vi.Namespaces) > 0 && !velero.Covers(b, vi.Namespaces) { // no scope: any backup counts
				continue
			}
			if newest == nil || b.Status.CompletionTimestamp.After(newest.Status.CompletionTimestamp.Time) {
				newest = b
			}
		case velerov1.BackupPhasePartiallyFailed, velerov1.BackupPhaseFailed, velerov1.BackupPhaseFailedValidation:
			if age <= vi.MaxAge {
				out = append(out, Finding{Severity: runbook.SeverityWarning, ObjectRef: Ref("Backup", b.Namespace, b.Name),
					Message: fmt.Sprintf("%s %s ago (%d errors, %d warnings) %s", b.Status.Phase, age.Round(time.Second), b.Status.Errors, b.Status.Warnings, b.Status.FailureReason),
					Fix:     "velero backup describe " + b.Name + " --details"})
			}
		}
	}
	switch {
	case newest == nil:
		what := "no Completed Velero backup exists"
		if len(vi.Namespaces) > 0 {
			what = "no Completed Velero backup covers " + strings.Join(vi.Namespaces, ", ")
		}
		out = append(out, Finding{Severity: runbook.SeverityWarning, Object: "namespace " + vc.Namespace, Message: what,
			Fix: "the runbook's velero-backup step makes one; for the scheduled case, create a Velero Schedule"})
	case time.Since(newest.Status.CompletionTimestamp.Time) > vi.MaxAge:
		out = append(out, Finding{Severity: runbook.SeverityWarning, ObjectRef: Ref("Backup", newest.Namespace, newest.Name),
			Message: fmt.Sprintf("the newest Completed backup is %s old (more than %s)", time.Since(newest.Status.CompletionTimestamp.Time).Round(time.Minute), vi.MaxAge),
			Fix:     "check the Velero Schedules, or back up before the upgrade (velero-backup step)"})
	}
	return out, nil
}
