package runbook

import (
	"context"
	"fmt"
	"strings"

	"golang.org/x/sync/errgroup"
	authv1 "k8s.io/api/authorization/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/drydock-dev/drydock/internal/kube"
)

// AccessError is a run refused before its first change: the user lacks permissions it needs.
type AccessError struct {
	Missing []Access
}

func (e *AccessError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "check access: %d permission(s) missing, so nothing was changed:", len(e.Missing))
	for _, a := range e.Missing {
		fmt.Fprintf(&b, "\n  - %s (%s)", a, a.Why)
	}
	b.WriteString("\ngrant them to the user drydock runs as (docs/permissions.md in the drydock repository lists what each command needs), or run as a user that has them")
	return b.String()
}

// Allowed asks the apiserver, with one SelfSubjectAccessReview per permission (several at once),
// which of need the current user lacks, in need's order. ok is false when the apiserver does not let
// the user ask (then nothing is known). Creating a review writes nothing: it is answered, not stored.
func Allowed(ctx context.Context, client kubernetes.Interface, need []Access) (missing []Access, ok bool, err error) {
	need = Dedupe(need)
	allowed := make([]bool, len(need))
	forbidden := make([]bool, len(need))
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(8) // a remote apiserver answers eight at once in about one round trip
	for i, a := range need {
		g.Go(func() error {
			review := &authv1.SelfSubjectAccessReview{}
			if a.NonResourceURL != "" {
				review.Spec.NonResourceAttributes = &authv1.NonResourceAttributes{Path: a.NonResourceURL, Verb: a.Verb}
			} else {
				review.Spec.ResourceAttributes = &authv1.ResourceAttributes{Verb: a.Verb, Group: a.Group, Resource: a.Resource,
					Subresource: a.Subresource, Namespace: a.Namespace, Name: a.Name}
			}
			var res *authv1.SelfSubjectAccessReview
			err := kube.Retry(ctx, nil, func(ctx context.Context) error {
				var err error
				res, err = client.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, review, metav1.CreateOptions{})
				return err
			})
			switch {
			case apierrors.IsForbidden(err):
				forbidden[i] = true
			case err != nil:
				return fmt.Errorf("check access: ask whether allowed to %s: %w", a, err)
			default:
				allowed[i] = res.Status.Allowed
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, false, err
	}
	for i, a := range need {
		if forbidden[i] {
			return nil, false, nil
		}
		if !allowed[i] {
			missing = append(missing, a)
		}
	}
	return missing, true, nil
}
