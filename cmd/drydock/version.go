package main

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/util/version"
	apimachineryversion "k8s.io/apimachinery/pkg/version"
	"k8s.io/client-go/discovery"
	"sigs.k8s.io/yaml"

	"github.com/drydock-dev/drydock/internal/buildinfo"
	"github.com/drydock-dev/drydock/internal/exitcode"
)

// VersionOptions are the options of `drydock version`.
type VersionOptions struct {
	ClientOnly bool
	Output     string

	f         *Factory
	discovery discovery.ServerVersionInterface
}

// VersionReport is what `drydock version -o json|yaml` prints.
type VersionReport struct {
	Client buildinfo.Info            `json:"clientVersion"`
	Server *apimachineryversion.Info `json:"serverVersion,omitempty"`
	Skew   *Skew                     `json:"skew,omitempty"`
}

// Skew says whether drydock's Kubernetes client and the apiserver are inside the version skew policy
// that kubectl follows: a client is supported within one minor version, older or newer, of the apiserver.
type Skew struct {
	Supported bool   `json:"supported"`
	Message   string `json:"message"`
}

// NewVersionCommand returns `drydock version`. runF, when not nil, replaces Run (tests).
func NewVersionCommand(f *Factory, runF func(*VersionOptions) error) *cobra.Command {
	o := &VersionOptions{}
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the client and server versions and whether they are inside the skew policy",
		Example: `  drydock version
  drydock version --client
  drydock version -o json`,
		Args: cobra.NoArgs,
		RunE: runE(f, o, runF),
	}
	cmd.Flags().BoolVar(&o.ClientOnly, "client", false, "print the client version only; do not contact the cluster")
	cmd.Flags().StringVarP(&o.Output, "output", "o", "", "output format: json or yaml (default: human-readable)")
	return cmd
}

// Complete keeps the factory; the server is asked in Run, so that the client version is printed
// whatever happens to the server.
func (o *VersionOptions) Complete(f *Factory, _ *cobra.Command, _ []string) error {
	o.f = f
	return nil
}

// serverDiscovery is the discovery client of the kubeconfig's cluster.
func (o *VersionOptions) serverDiscovery() (discovery.ServerVersionInterface, error) {
	if o.discovery != nil {
		return o.discovery, nil
	}
	cfg, err := o.f.RESTConfig()
	if err != nil {
		return nil, fmt.Errorf("%w (or use --client)", err)
	}
	return discovery.NewDiscoveryClientForConfig(cfg)
}

// Validate checks the flags; it has no side effects.
func (o *VersionOptions) Validate() error {
	switch o.Output {
	case "", "json", "yaml":
		return nil
	}
	return exitcode.UsageError(fmt.Errorf("version: unknown output format %q: use -o json or -o yaml", o.Output))
}

// Run prints the report. The client part is printed even when the server cannot be reached.
func (o *VersionOptions) Run(ctx context.Context) error {
	report := VersionReport{Client: buildinfo.Get()}
	var serverErr error
	if !o.ClientOnly {
		dc, err := o.serverDiscovery()
		if err == nil {
			report.Server, err = serverVersion(ctx, dc)
			if err != nil {
				err = fmt.Errorf("get server version: %w", err)
			}
		}
		serverErr = err
		if serverErr == nil {
			skew := CheckSkew(report.Client.Kubernetes, report.Server.GitVersion)
			report.Skew = &skew
		}
	}

	switch o.Output {
	case "json":
		b, err := json.MarshalIndent(report, "", "  ")
		if err != nil {
			return err
		}
		fmt.Fprintln(o.f.out(), string(b))
	case "yaml":
		b, err := yaml.Marshal(report)
		if err != nil {
			return err
		}
		fmt.Fprint(o.f.out(), string(b))
	default:
		fmt.Fprintf(o.f.out(), "Client Version: %s (Kubernetes client %s, %s, %s)\n",
			report.Client.Version, report.Client.Kubernetes, report.Client.GoVersion, report.Client.Platform)
		if report.Server != nil {
			fmt.Fprintf(o.f.out(), "Server Version: %s\n", report.Server.GitVersion)
		}
		if report.Skew != nil {
			state := "supported"
			if !report.Skew.Supported {
				state = "NOT supported"
			}
			fmt.Fprintf(o.f.out(), "Version Skew:   %s: %s\n", state, report.Skew.Message)
		}
	}
	if serverErr != nil {
		return fmt.Errorf("version: %w", serverErr)
	}
	return nil
}

func serverVersion(ctx context.Context, dc discovery.ServerVersionInterface) (*apimachineryversion.Info, error) {
	type result struct {
		info *apimachineryversion.Info
		err  error
	}
	// ServerVersion takes no context; keep Ctrl-C responsive while it runs (--request-timeout bounds it).
	ch := make(chan result, 1)
	go func() {
		info, err := dc.ServerVersion()
		ch <- result{info, err}
	}()
	select {
	case r := <-ch:
		return r.info, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(2 * time.Minute):
		return nil, fmt.Errorf("no answer in 2m0s")
	}
}

// CheckSkew applies the kubectl/apiserver skew policy to a client and a server version.
func CheckSkew(client, server string) Skew {
	c, err := version.ParseGeneric(client)
	if err != nil {
		return Skew{Supported: false, Message: fmt.Sprintf("cannot read client version %q: %v", client, err)}
	}
	s, err := version.ParseGeneric(server)
	if err != nil {
		return Skew{Supported: false, Message: fmt.Sprintf("cannot read server version %q: %v", server, err)}
	}
	if c.Major() != s.Major() {
		return Skew{false, fmt.Sprintf("client %d.%d and server %d.%d differ in major version",
			c.Major(), c.Minor(), s.Major(), s.Minor())}
	}
	diff := int(c.Minor()) - int(s.Minor())
	switch {
	case diff == 0:
		return Skew{true, fmt.Sprintf("client and server are both %d.%d", s.Major(), s.Minor())}
	case diff == 1 || diff == -1:
		return Skew{true, fmt.Sprintf("client %d.%d is within one minor version of server %d.%d",
			c.Major(), c.Minor(), s.Major(), s.Minor())}
	case diff > 1:
		return Skew{false, fmt.Sprintf("client %d.%d is %d minor versions newer than server %d.%d; the policy allows one: use a drydock built for %d.%d",
			c.Major(), c.Minor(), diff, s.Major(), s.Minor(), s.Major(), s.Minor())}
	default:
		return Skew{false, fmt.Sprintf("client %d.%d is %d minor versions older than server %d.%d; the policy allows one: upgrade drydock",
			c.Major(), c.Minor(), -diff, s.Major(), s.Minor())}
	}
}
