package runbook

import (
	"context"
	"fmt"
	"strings"

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
	b.WriteString("\ngrant them to the user drydock runs as (the README's permission table lists what each command needs), or run as a user that has them")
	return b.String()
}

// Allowed asks the apiserver, with one SelfSubjectAccessReview per permission, which of need the
// current user lacks. ok is false when the apiserver does not let the user ask (then nothing is
// known). Creating a review writes nothing: it is answered, not stored.
func Allowed(ctx context.Context, client kubernetes.Interface, need []Access) (missing []Access, ok bool, err error) {
	for _, a := range Dedupe(need) {
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
		if apierrors.IsForbidden(err) {
			return nil, false, nil
		}
		if err != nil {
			return nil, false, fmt.Errorf("check access: ask whether allowed to %s: %w", a, err)
		}
		if !res.Status.Allowed {
			missing = append(missing, a)
		}
	}
	return missing, true, nil
}
