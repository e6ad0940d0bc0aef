package rollout

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/invopop/jsonschema"
	"github.com/prometheus/common/config"
	"go.yaml.in/yaml/v3"
	"k8s.io/client-go/kubernetes"

	"github.com/drydock-dev/drydock/runbook"
)

// HTTPConfig is how drydock reaches Prometheus or Alertmanager: prometheus/common's HTTP client
// configuration, the `http_config` of Prometheus's own scrape and remote-write settings, with its
// field names (authorization, basic_auth, oauth2, tls_config, proxy_url, http_headers,
// follow_redirects, enable_http2). A credential is given by reference, never written: a `*_file`
// field, or a `*_ref` field holding env:NAME or secret:NAMESPACE/NAME/KEY. An inline password,
// credentials, bearer_token, key, client_secret, header secret or proxy header is refused (the
// runbook is copied into the run's journal and its ConfigMap in the cluster).
type HTTPConfig struct {
	cfg config.HTTPClientConfig
	raw any   // the setting as written, for the fields that hold credentials
	err error // what did not decode or failed prometheus/common's own validation
}

// UnmarshalJSON reads the setting with prometheus/common's YAML names and defaults
// (follow_redirects and enable_http2 on) and its own validation; what fails is reported by Check,
// at the setting's line.
func (c *HTTPConfig) UnmarshalJSON(b []byte) error {
	*c = HTTPConfig{cfg: config.DefaultHTTPClientConfig}
	if err := yaml.Unmarshal(b, &c.raw); err != nil {
		c.err = err
		return nil
	}
	dec := yaml.NewDecoder(bytes.NewReader(b)) // JSON is YAML
	dec.KnownFields(true)
	if err := dec.Decode(&c.cfg); err != nil {
		c.err = err
	}
	return nil
}

// MarshalJSON writes the setting as prometheus/common does (its secrets as "<secret>").
func (c HTTPConfig) MarshalJSON() ([]byte, error) {
	b, err := yaml.Marshal(c.cfg)
	if err != nil {
		return nil, err
	}
	var v any
	if err := yaml.Unmarshal(b, &v); err != nil {
		return nil, err
	}
	return json.Marshal(v)
}

// Config is the client configuration (prometheus/common's defaults when c is nil).
func (c *HTTPConfig) Config() config.HTTPClientConfig {
	if c == nil {
		return config.DefaultHTTPClientConfig
	}
	return c.cfg
}

// JSONSchema describes the setting from prometheus/common's types, by their YAML names.
func (HTTPConfig) JSONSchema() *jsonschema.Schema {
	r := &jsonschema.Reflector{FieldNameTag: "yaml", DoNotReference: true, ExpandedStruct: true, Anonymous: true,
		RequiredFromJSONSchemaTags: true, Mapper: httpSchemaTypes}
	s := r.Reflect(&config.HTTPClientConfig{})
	s.Version, s.ID = "", ""
	s.Description = "prometheus/common's HTTP client configuration (Prometheus's http_config): authorization, basic_auth, oauth2, " +
		"tls_config, proxy_url, http_headers...; credentials by *_file or *_ref (env:NAME, secret:NAMESPACE/NAME/KEY), never inline"
	return s
}

func httpSchemaTypes(t reflect.Type) *jsonschema.Schema {
	switch t {
	case reflect.TypeFor[config.URL]():
		return &jsonschema.Schema{Type: "string", Format: "uri"}
	case reflect.TypeFor[config.TLSVersion]():
		var names []any
		for n := range config.TLSVersions {
			names = append(names, n)
		}
		sort.Slice(names, func(i, j int) bool { return names[i].(string) < names[j].(string) })
		return &jsonschema.Schema{Type: "string", Enum: names}
	case reflect.TypeFor[config.Headers]():
		r := &jsonschema.Reflector{FieldNameTag: "yaml", DoNotReference: true, ExpandedStruct: true, RequiredFromJSONSchemaTags: true}
		h := r.Reflect(&config.Header{})
		h.Version, h.ID = "", ""
		return &jsonschema.Schema{Type: "object", AdditionalProperties: h,
			Description: "headers sent with every request (a tenant: X-Scope-OrgID: {values: [team-a]}); a secret one by files, never secrets"}
	}
	return nil
}

var (
	secretType      = reflect.TypeFor[config.Secret]()
	secretSliceType = reflect.TypeFor[[]config.Secret]()
	proxyHeaderType = reflect.TypeFor[config.ProxyHeader]()
	headersType     = reflect.TypeFor[config.Headers]()
)

// Check says what is wrong with the setting at field: what did not decode, a credential written
// inline, a reference (*_ref) that is not one, a proxy URL with a password.
func (c *HTTPConfig) Check(field string) []runbook.FieldError {
	if c == nil {
		return nil
	}
	var errs []runbook.FieldError
	if c.err != nil {
		errs = append(errs, runbook.FieldError{Field: field, Message: strings.TrimPrefix(c.err.Error(), "yaml: "),
			Hint: "it is prometheus/common's http_config: https://prometheus.io/docs/prometheus/latest/configuration/configuration/#http_config"})
	}
	walkHTTP(reflect.TypeFor[config.HTTPClientConfig](), c.raw, field, func(path string, t reflect.Type, v any) {
		name := path[strings.LastIndexAny(path, ".]")+1:]
		switch {
		case t == secretType || t == secretSliceType || t == proxyHeaderType:
			errs = append(errs, runbook.FieldError{Field: path, Secret: true,
				Message: "a credential written in the runbook, which is copied into the run's journal and its ConfigMap in the cluster",
				Hint:    secretFix(path, name)})
		case strings.HasSuffix(name, "_ref") && t.Kind() == reflect.String:
			s, _ := v.(string)
			if _, err := runbook.ParseRef(s); err != nil {
				errs = append(errs, runbook.FieldError{Field: path, Message: err.Error()})
			}
		case name == "proxy_url":
			s, _ := v.(string)
			if u, err := url.Parse(s); err == nil && u.User != nil {
				if _, has := u.User.Password(); has {
					errs = append(errs, runbook.FieldError{Field: path, Secret: true, Message: "a proxy URL with a password: a credential written in the runbook",
						Hint: "give the proxy's credentials another way (proxy_from_environment: true reads HTTPS_PROXY from drydock's environment)"})
				}
			}
		}
	})
	return errs
}

// secretFix says how to give the credential at path (named name) by reference.
func secretFix(path, name string) string {
	switch {
	case name == "bearer_token":
		return "use authorization: {credentials_file: /path/to/token} or {credentials_ref: env:PROM_TOKEN} (or secret:NAMESPACE/NAME/KEY)"
	case strings.Contains(path, "http_headers"):
		return "send a secret header from a file: http_headers: {NAME: {files: [/path/to/value]}}"
	case strings.Contains(path, "proxy_connect_header"):
		return "proxy_connect_header holds its values inline: drop it, or set the proxy through proxy_from_environment"
	}
	return fmt.Sprintf("use %s_file: /path/to/it, or %s_ref: env:NAME (or secret:NAMESPACE/NAME/KEY)", name, name)
}

// walkHTTP calls f for every field written in raw (the decoded YAML) that is a credential, a
// reference or a proxy URL, with its path, its type in prometheus/common, and its value.
func walkHTTP(t reflect.Type, raw any, path string, f func(path string, t reflect.Type, v any)) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	m, ok := raw.(map[string]any)
	switch {
	case t == secretType || t == secretSliceType || t == proxyHeaderType:
		if !empty(raw) {
			f(path, t, raw)
		}
		return
	case t == headersType && ok:
		for name, h := range m {
			walkHTTP(reflect.TypeFor[config.Header](), h, path+"."+name, f)
		}
		return
	case t.Kind() != reflect.Struct || !ok:
		return
	}
	for i := range t.NumField() {
		sf := t.Field(i)
		name, opts, _ := strings.Cut(sf.Tag.Get("yaml"), ",")
		if strings.Contains(opts, "inline") {
			walkHTTP(sf.Type, raw, path, f)
			continue
		}
		v, found := m[name]
		if name == "" || name == "-" || !found || v == nil {
			continue
		}
		if strings.HasSuffix(name, "_ref") || name == "proxy_url" {
			f(path+"."+name, sf.Type, v)
			continue
		}
		walkHTTP(sf.Type, v, path+"."+name, f)
	}
}

// empty: nothing written (null, "", [] or {}).
func empty(v any) bool {
	switch v := v.(type) {
	case nil:
		return true
	case string:
		return v == ""
	case []any:
		return len(v) == 0
	case map[string]any:
		return len(v) == 0
	}
	return false
}

// CredentialAccess is `get` on each Secret a *_ref of the setting names (secret:NAMESPACE/NAME/KEY):
// the run asks for it before its first change.
func (c *HTTPConfig) CredentialAccess() []runbook.Access {
	if c == nil {
		return nil
	}
	var out []runbook.Access
	walkHTTP(reflect.TypeFor[config.HTTPClientConfig](), c.raw, "", func(path string, t reflect.Type, v any) {
		s, _ := v.(string)
		if r, err := runbook.ParseRef(s); err == nil && strings.HasSuffix(path, "_ref") {
			out = append(out, r.Access("a health gate's credential for Prometheus or Alertmanager ("+strings.TrimPrefix(path, ".")+") is read from this Secret")...)
		}
	})
	return out
}

// refManager reads a *_ref for prometheus/common: env:NAME or secret:NAMESPACE/NAME/KEY.
type refManager struct{ client kubernetes.Interface }

func (m refManager) Fetch(ctx context.Context, ref string) (string, error) {
	r, err := runbook.ParseRef(ref)
	if err != nil {
		return "", err
	}
	return r.Resolve(ctx, m.client, nil)
}

// httpClient is the client of one gate: its configuration, references read from the process's
// environment or the cluster, a 401 or 403 answered as a deniedError, a 10s timeout.
func httpClient(c *HTTPConfig, kube kubernetes.Interface) (*http.Client, error) {
	client, err := config.NewClientFromConfig(c.Config(), "drydock", config.WithSecretManager(refManager{client: kube}))
	if err != nil {
		return nil, err
	}
	client.Transport = denied{client.Transport}
	client.Timeout = 10 * time.Second
	return client, nil
}

// denied turns an answer that refuses the credentials (401, 403) into an error that says so.
type denied struct{ next http.RoundTripper }

// deniedError is a 401 or 403 answer.
type deniedError struct{ status string }

func (e *deniedError) Error() string { return "answered " + e.status }

func (d denied) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := d.next.RoundTrip(r)
	if err == nil && (resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden) {
		resp.Body.Close()
		return nil, &deniedError{status: resp.Status}
	}
	return resp, err
}

// explain says why a request to what (Prometheus, Alertmanager) at u failed, with the fix, when
// the reason is one the http setting fixes.
func explain(what, u string, err error) string {
	var de *deniedError
	var ua x509.UnknownAuthorityError
	var he x509.HostnameError
	switch {
	case errors.As(err, &de):
		return fmt.Sprintf("%s %s %s: give drydock its credentials in the gate's http setting (authorization: {credentials_file: …} or {credentials_ref: env:TOKEN}, basic_auth, oauth2; a tenant header in http_headers)", what, u, de)
	case errors.As(err, &ua):
		return fmt.Sprintf("%s %s: TLS: its certificate is signed by an unknown authority: give that CA in the gate's http.tls_config.ca_file (or ca_ref)", what, u)
	case errors.As(err, &he):
		return fmt.Sprintf("%s %s: TLS: %v: set http.tls_config.server_name to a name the certificate has", what, u, he)
	}
	return fmt.Sprintf("%s %s did not answer: %v", what, u, err)
}

// checkGateURL says what is wrong with a Prometheus or Alertmanager URL.
func checkGateURL(field, u string) []runbook.FieldError {
	p, err := url.Parse(u)
	if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
		return []runbook.FieldError{{Field: field, Message: fmt.Sprintf("%q is not an http(s) URL: write it as http://prometheus.monitoring:9090", u)}}
	}
	if _, has := p.User.Password(); has {
		return []runbook.FieldError{{Field: field, Secret: true, Message: "a URL with a password: a credential written in the runbook, which is copied into the run's journal",
			Hint: "write the URL without it, and give the password in http: {basic_auth: {username: NAME, password_file: /path}} or password_ref: env:NAME"}}
	}
	return nil
}
