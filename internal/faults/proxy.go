package faults

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Proxy is a loopback HTTP reverse proxy in front of an apiserver that injects faults into what
// passes through it, for a process drydock does not control the client of (the drydock binary in
// make bench): point it at Kubeconfig. It authenticates upstream with cfg's credentials.
type Proxy struct {
	URL        string
	Kubeconfig string
	srv        *http.Server
	dir        string
}

// StartProxy serves on a free loopback port until Stop.
func StartProxy(cfg *rest.Config, in *Injector) (*Proxy, error) {
	upstream, err := rest.TransportFor(cfg)
	if err != nil {
		return nil, err
	}
	target, err := url.Parse(cfg.Host)
	if err != nil {
		return nil, fmt.Errorf("faults: apiserver URL %q: %w", cfg.Host, err)
	}
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.Transport = &transport{in: in, next: upstream}
	rp.FlushInterval = -1 // watches stream
	rp.ErrorHandler = func(w http.ResponseWriter, r *http.Request, err error) {
		// An injected reset or lost answer reaches the client as a broken connection, not a 502.
		var op *net.OpError
		if errors.As(err, &op) {
			if hj, ok := w.(http.Hijacker); ok {
				if conn, _, herr := hj.Hijack(); herr == nil {
					if tc, ok := conn.(*net.TCPConn); ok {
						_ = tc.SetLinger(0) // RST, not FIN
					}
					conn.Close()
					return
				}
			}
		}
		if errors.Is(err, context.Canceled) {
			return
		}
		w.WriteHeader(http.StatusBadGateway)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{URL: "http://" + l.Addr().String(), srv: &http.Server{Handler: rp}}
	go func() { _ = p.srv.Serve(l) }()
	p.dir, err = os.MkdirTemp("", "drydock-faults-")
	if err != nil {
		p.Stop()
		return nil, err
	}
	kc := clientcmdapi.NewConfig()
	kc.Clusters["faulty"] = &clientcmdapi.Cluster{Server: p.URL}
	kc.AuthInfos["faulty"] = &clientcmdapi.AuthInfo{}
	kc.Contexts["faulty"] = &clientcmdapi.Context{Cluster: "faulty", AuthInfo: "faulty"}
	kc.CurrentContext = "faulty"
	p.Kubeconfig = filepath.Join(p.dir, "kubeconfig")
	if err := clientcmd.WriteToFile(*kc, p.Kubeconfig); err != nil {
		p.Stop()
		return nil, fmt.Errorf("faults: write kubeconfig: %w", err)
	}
	return p, nil
}

// Stop ends the proxy and removes its kubeconfig.
func (p *Proxy) Stop() {
	_ = p.srv.Close()
	if p.dir != "" {
		_ = os.RemoveAll(p.dir)
	}
}
