package runbook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"strings"

	"github.com/invopop/jsonschema"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// SecretRef refers to a credential (a webhook URL, a token) that a runbook must never hold: the
// runbook, and so the run's journal and its copy in the cluster, keeps only the reference, resolved
// when the credential is used. Exactly one of Env, File and SecretKeyRef is set.
type SecretRef struct {
	// Env names an environment variable of the drydock process that holds the value.
	Env string `json:"env,omitempty"`
	// File is a file that holds the value (surrounding white space is trimmed).
	File string `json:"file,omitempty"`
	// SecretKeyRef is a key of a Kubernetes Secret (the run needs `get` on that Secret).
	SecretKeyRef *SecretKeySelector `json:"secretKeyRef,omitempty"`

	// literal: the runbook wrote the credential itself, which Validate refuses. The value is
	// dropped as it is read: nothing holds it.
	literal bool
}

// SecretKeySelector is one key of a Kubernetes Secret.
type SecretKeySelector struct {
	// Namespace of the Secret.
	Namespace string `json:"namespace"`
	// Name of the Secret.
	Name string `json:"name"`
	// Key in the Secret's data.
	Key string `json:"key"`
}

// IsZero reports an unset reference.
func (r SecretRef) IsZero() bool {
	return r.Env == "" && r.File == "" && r.SecretKeyRef == nil && !r.literal
}

// Literal reports a credential written in the runbook itself (refused by validation).
func (r SecretRef) Literal() bool { return r.literal }

// String names the reference, never the value: "env SLACK_WEBHOOK", "file /run/secrets/hook",
// "Secret drydock/slack key url".
func (r SecretRef) String() string {
	switch {
	case r.Env != "":
		return "env " + r.Env
	case r.File != "":
		return "file " + r.File
	case r.SecretKeyRef != nil:
		s := r.SecretKeyRef
		return fmt.Sprintf("Secret %s/%s key %s", s.Namespace, s.Name, s.Key)
	case r.literal:
		return "a literal value"
	}
	return "nothing"
}

// UnmarshalJSON reads a reference ({env: NAME}, {file: PATH}, {secretKeyRef: {namespace, name,
// key}}). A string is a literal credential: it is remembered as such, without its value, so that
// validation refuses it at its line and column.
func (r *SecretRef) UnmarshalJSON(b []byte) error {
	var s string
	if json.Unmarshal(b, &s) == nil {
		*r = SecretRef{literal: true}
		return nil
	}
	type plain SecretRef
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var p plain
	if err := dec.Decode(&p); err != nil {
		return errors.New("a credential is a reference: {env: NAME}, {file: PATH} or {secretKeyRef: {namespace: NS, name: NAME, key: KEY}}")
	}
	*r = SecretRef(p)
	return nil
}

// MarshalJSON writes the reference (a literal, whose value was never kept, as null).
func (r SecretRef) MarshalJSON() ([]byte, error) {
	if r.literal {
		return []byte("null"), nil
	}
	type plain SecretRef
	return json.Marshal(plain(r))
}

// JSONSchema describes a reference. It has no type, so that a string passes the schema and is
// refused by validation with a message that says how to refer to it instead.
func (SecretRef) JSONSchema() *jsonschema.Schema {
	props := jsonschema.NewProperties()
	props.Set("env", &jsonschema.Schema{Type: "string", MinLength: ptr(uint64(1)), Description: "an environment variable of the drydock process that holds the value"})
	props.Set("file", &jsonschema.Schema{Type: "string", MinLength: ptr(uint64(1)), Description: "a file that holds the value"})
	key := jsonschema.NewProperties()
	for _, k := range []string{"namespace", "name", "key"} {
		key.Set(k, &jsonschema.Schema{Type: "string", MinLength: ptr(uint64(1))})
	}
	props.Set("secretKeyRef", &jsonschema.Schema{Type: "object", Properties: key, Required: []string{"namespace", "name", "key"},
		AdditionalProperties: jsonschema.FalseSchema, Description: "a key of a Kubernetes Secret (the run needs get on it)"})
	return &jsonschema.Schema{
		Properties:           props,
		AdditionalProperties: jsonschema.FalseSchema,
		MinProperties:        ptr(uint64(1)),
		MaxProperties:        ptr(uint64(1)),
		Description: "a credential by reference, never its value (the runbook is copied into the run's journal): " +
			"{env: NAME}, {file: PATH} or {secretKeyRef: {namespace, name, key}}",
	}
}

func ptr[T any](v T) *T { return &v }

// SecretHint is how to refer to a credential instead of writing it, for a problem's hint.
const SecretHint = "refer to it instead: {env: SLACK_WEBHOOK} (an environment variable of drydock), {file: /run/secrets/webhook}, " +
	"or {secretKeyRef: {namespace: drydock, name: webhooks, key: slack}}"

// Check says what is wrong with the reference at field ("" when nothing), as a FieldError whose
// problem does not quote the runbook's line (it may hold the credential).
func (r SecretRef) Check(field, what string) []FieldError {
	switch {
	case r.literal:
		return []FieldError{{Field: field, Secret: true,
			Message: what + " is a credential written in the runbook, which is copied into the run's journal and its ConfigMap in the cluster",
			Hint:    SecretHint}}
	case r.IsZero():
		return []FieldError{{Field: field, Message: "needs a reference: env, file or secretKeyRef", Hint: SecretHint}}
	}
	return nil
}

// Access is what resolving the reference needs from the cluster: `get` on its Secret, if any.
func (r SecretRef) Access(why string) []Access {
	if s := r.SecretKeyRef; s != nil {
		return []Access{{Verb: "get", Resource: "secrets", Namespace: s.Namespace, Name: s.Name, Why: why}}
	}
	return nil
}

// Resolve reads the credential: the environment variable (through getenv; nil: the process's),
// the file or the Secret's key. Its errors name the reference, never the value.
func (r SecretRef) Resolve(ctx context.Context, client kubernetes.Interface, getenv func(string) string) (string, error) {
	switch {
	case r.Env != "":
		if getenv == nil {
			getenv = os.Getenv
		}
		v := strings.TrimSpace(getenv(r.Env))
		if v == "" {
			return "", fmt.Errorf("read %s: the environment variable is not set (or empty): export it before running drydock", r)
		}
		return v, nil
	case r.File != "":
		b, err := os.ReadFile(r.File)
		if err != nil {
			return "", fmt.Errorf("read %s: %w", r, err)
		}
		return strings.TrimSpace(string(b)), nil
	case r.SecretKeyRef != nil:
		return r.secretKey(ctx, client)
	}
	return "", fmt.Errorf("read a credential: %s: refer to it by env, file or secretKeyRef", r)
}

func (r SecretRef) secretKey(ctx context.Context, client kubernetes.Interface) (string, error) {
	s := r.SecretKeyRef
	if client == nil {
		return "", fmt.Errorf("read %s: no cluster client", r)
	}
	sec, err := client.CoreV1().Secrets(s.Namespace).Get(ctx, s.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return "", fmt.Errorf("read %s: no such Secret: create it, or fix the reference", r)
	case apierrors.IsForbidden(err):
		return "", fmt.Errorf("read %s: forbidden: grant get on secrets %q in namespace %s", r, s.Name, s.Namespace)
	case err != nil:
		return "", fmt.Errorf("read %s: %w", r, err)
	}
	v, ok := sec.Data[s.Key]
	if !ok {
		v2, ok2 := sec.StringData[s.Key]
		if !ok2 {
			return "", fmt.Errorf("read %s: the Secret has no key %q", r, s.Key)
		}
		v = []byte(v2)
	}
	return strings.TrimSpace(string(v)), nil
}

var refRE = regexp.MustCompile(`^(env:[A-Za-z_][A-Za-z0-9_]*|secret:[a-z0-9]([-a-z0-9]*[a-z0-9])?/[a-z0-9]([-a-z0-9.]*[a-z0-9])?/[-._a-zA-Z0-9]+)$`)

// RefHint is the form of a reference written as one string (prometheus/common's *_ref fields).
const RefHint = "write env:NAME (an environment variable of drydock) or secret:NAMESPACE/NAME/KEY (a key of a Kubernetes Secret); a file goes in the matching *_file field"

// ParseRef reads a reference written as one string: env:NAME or secret:NAMESPACE/NAME/KEY.
func ParseRef(s string) (SecretRef, error) {
	if !refRE.MatchString(s) {
		return SecretRef{}, fmt.Errorf("%q is not a reference: %s", s, RefHint)
	}
	kind, rest, _ := strings.Cut(s, ":")
	if kind == "env" {
		return SecretRef{Env: rest}, nil
	}
	parts := strings.SplitN(rest, "/", 3)
	return SecretRef{SecretKeyRef: &SecretKeySelector{Namespace: parts[0], Name: parts[1], Key: parts[2]}}, nil
}

// fieldProblem places a step's FieldError; one about a credential does not quote the value.
func (rb *Runbook) fieldProblem(field string, fe FieldError) Problem {
	p := rb.problem(field, fe.Message, fe.Hint)
	if fe.Secret && p.snippet != "" {
		line := []rune(p.snippet)
		if c := p.Column - 1; c >= 0 && c < len(line) {
			p.snippet = string(line[:c]) + "<redacted>"
		}
	}
	return p
}

// checkNotify refuses a webhook written in the runbook: its URL is a credential.
func checkNotify(rb *Runbook) Problems {
	var problems Problems
	for i, n := range rb.Spec.Notify {
		field := fmt.Sprintf("spec.notify[%d].url", i)
		for _, fe := range n.URL.Check(field, "the webhook URL") {
			problems = append(problems, rb.fieldProblem(fe.Field, fe))
		}
	}
	return problems
}

// CredentialReader is a setting that reads credentials by reference (a health gate's http:):
// CredentialAccess is what that needs from the cluster (`get` on a Secret).
type CredentialReader interface {
	CredentialAccess() []Access
}

var credentialReader = reflect.TypeFor[CredentialReader]()

// credentialAccess finds, anywhere in a step's settings, the settings that read credentials, and
// returns what they need: a step kind declares its own permissions, and these come with it.
func credentialAccess(v reflect.Value) []Access {
	if !v.IsValid() {
		return nil
	}
	if v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface {
		if v.IsNil() {
			return nil
		}
		if v.Type().Implements(credentialReader) {
			return v.Interface().(CredentialReader).CredentialAccess()
		}
		return credentialAccess(v.Elem())
	}
	var out []Access
	switch v.Kind() {
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				out = append(out, credentialAccess(v.Field(i))...)
			}
		}
	case reflect.Slice, reflect.Array:
		for i := range v.Len() {
			out = append(out, credentialAccess(v.Index(i))...)
		}
	}
	return out
}

// notifyAccess is what reading the runbook's webhook URLs needs.
func notifyAccess(rb *Runbook) []Access {
	var out []Access
	for _, n := range rb.Spec.Notify {
		out = append(out, n.URL.Access("the notify: webhook URL is read from this Secret when the run ends")...)
	}
	return out
}

// stepCredentialAccess is what the credential references in a step's settings need.
func stepCredentialAccess(s Step) []Access { return credentialAccess(reflect.ValueOf(s)) }
