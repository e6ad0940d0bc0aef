package simcluster

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"time"
)

// Guard is an authenticating TLS front for a local server (the Prometheus or Alertmanager of
// StartMonitoring), as production monitoring is reached: HTTPS with a certificate from a CA of its
// own, a bearer token and a tenant header, else 401.
type Guard struct {
	// URL is https://127.0.0.1:PORT.
	URL string
	// CAFile is the PEM of the CA that signed the guard's certificate.
	CAFile string

	srv *http.Server
	dir string
}

// GuardOptions say what a request must carry.
type GuardOptions struct {
	// Token a request must carry as `Authorization: Bearer TOKEN`.
	Token string
	// Header and Value: a header a request must carry as well (a tenant: X-Scope-OrgID).
	Header, Value string
}

// StartGuard fronts upstream (http://127.0.0.1:PORT) with a guard on a free loopback port.
func StartGuard(upstream string, opts GuardOptions) (*Guard, error) {
	target, err := url.Parse(upstream)
	if err != nil {
		return nil, fmt.Errorf("simcluster: guard %s: %w", upstream, err)
	}
	dir, err := os.MkdirTemp("", "drydock-guard-")
	if err != nil {
		return nil, err
	}
	g := &Guard{dir: dir, CAFile: filepath.Join(dir, "ca.pem")}
	cert, err := guardCertificate(g.CAFile)
	if err != nil {
		g.Stop()
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		g.Stop()
		return nil, err
	}
	g.URL = "https://" + ln.Addr().String()
	proxy := httputil.NewSingleHostReverseProxy(target)
	g.srv = &http.Server{ReadHeaderTimeout: 5 * time.Second, ErrorLog: log.New(io.Discard, "", 0), // refused handshakes are what the tests want
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !same(r.Header.Get("Authorization"), "Bearer "+opts.Token) || (opts.Header != "" && !same(r.Header.Get(opts.Header), opts.Value)) {
				w.Header().Set("WWW-Authenticate", `Bearer realm="monitoring"`)
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
			proxy.ServeHTTP(w, r)
		})}
	go func() { _ = g.srv.ServeTLS(ln, "", "") }()
	return g, nil
}

func same(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

// Stop closes the guard and removes its CA.
func (g *Guard) Stop() {
	if g.srv != nil {
		_ = g.srv.Close()
	}
	_ = os.RemoveAll(g.dir)
}

// guardCertificate makes a CA (written to caFile) and a certificate for 127.0.0.1 it signs.
func guardCertificate(caFile string) (tls.Certificate, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	now := time.Now()
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "drydock test monitoring CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		return tls.Certificate{}, err
	}
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o600); err != nil {
		return tls.Certificate{}, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	leaf := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "monitoring"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return tls.Certificate{}, err
	}
	der, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &key.PublicKey, caKey)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}
