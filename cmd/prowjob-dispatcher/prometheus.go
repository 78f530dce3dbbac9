package main

import (
	"errors"
	"flag"
	"fmt"
	"net/http"

	promconfig "github.com/prometheus/common/config"
)

// prometheusClientFlags say how to reach Prometheus: authentication and TLS,
// for the demand and the health queries alike. Either a file in
// Prometheus' own HTTP client format (the http_config of a scrape config:
// authorization, basic_auth, oauth2, tls_config, proxy_url ...), or the
// flags for the common cases, which include the previous dispatcher's
// --prometheus-bearer-token-path, --prometheus-username and
// --prometheus-password-path. Files named (token, password, CA) are read
// again as they change, so a rotated token or CA is used without a restart.
type prometheusClientFlags struct {
	httpConfig                              string
	bearerTokenPath, username, passwordPath string
	caFile, certFile, keyFile, serverName   string
	insecureSkipVerify                      bool
}

func (f *prometheusClientFlags) AddFlags(fs *flag.FlagSet) {
	fs.StringVar(&f.httpConfig, "prometheus-http-config", "", "file in Prometheus' HTTP client format (authorization, basic_auth, oauth2, tls_config, proxy_url) for the demand and health queries; exclusive with the other --prometheus-* auth and TLS flags")
	fs.StringVar(&f.bearerTokenPath, "prometheus-bearer-token-path", "", "file holding a bearer token for Prometheus, read at every query (a rotated token is picked up)")
	fs.StringVar(&f.username, "prometheus-username", "", "basic auth user for Prometheus (with --prometheus-password-path)")
	fs.StringVar(&f.passwordPath, "prometheus-password-path", "", "file holding the basic auth password for Prometheus, read at every query")
	fs.StringVar(&f.caFile, "prometheus-ca-file", "", "CA bundle that signs Prometheus' serving certificate (default: the system's); reloaded when it changes")
	fs.StringVar(&f.certFile, "prometheus-cert-file", "", "client certificate for Prometheus (mutual TLS, with --prometheus-key-file)")
	fs.StringVar(&f.keyFile, "prometheus-key-file", "", "client key for Prometheus (mutual TLS)")
	fs.StringVar(&f.serverName, "prometheus-server-name", "", "name Prometheus' serving certificate must hold (default: the URL's host)")
	fs.BoolVar(&f.insecureSkipVerify, "prometheus-insecure-skip-verify", false, "do not verify Prometheus' serving certificate (tests only)")
}

// flagsSet reports whether any auth or TLS flag other than --prometheus-http-config is set.
func (f *prometheusClientFlags) flagsSet() bool {
	return f.bearerTokenPath != "" || f.username != "" || f.passwordPath != "" || f.caFile != "" ||
		f.certFile != "" || f.keyFile != "" || f.serverName != "" || f.insecureSkipVerify
}

func (f *prometheusClientFlags) Validate() error {
	var errs []error
	if f.httpConfig != "" && f.flagsSet() {
		errs = append(errs, errors.New("--prometheus-http-config and the other --prometheus-* auth and TLS flags are exclusive: put everything in the file"))
	}
	if (f.username == "") != (f.passwordPath == "") {
		errs = append(errs, errors.New("--prometheus-username and --prometheus-password-path go together"))
	}
	if f.passwordPath != "" && f.bearerTokenPath != "" {
		errs = append(errs, errors.New("--prometheus-password-path and --prometheus-bearer-token-path are exclusive"))
	}
	if (f.certFile == "") != (f.keyFile == "") {
		errs = append(errs, errors.New("--prometheus-cert-file and --prometheus-key-file go together"))
	}
	if len(errs) == 0 {
		if _, err := f.config(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// config returns the HTTP client config the flags describe.
func (f *prometheusClientFlags) config() (promconfig.HTTPClientConfig, error) {
	if f.httpConfig != "" {
		cfg, _, err := promconfig.LoadHTTPConfigFile(f.httpConfig)
		if err != nil {
			return promconfig.HTTPClientConfig{}, fmt.Errorf("--prometheus-http-config %s: %w", f.httpConfig, err)
		}
		if err := cfg.Validate(); err != nil {
			return promconfig.HTTPClientConfig{}, fmt.Errorf("--prometheus-http-config %s: %w", f.httpConfig, err)
		}
		return *cfg, nil
	}
	cfg := promconfig.DefaultHTTPClientConfig
	if f.bearerTokenPath != "" {
		cfg.Authorization = &promconfig.Authorization{Type: "Bearer", CredentialsFile: f.bearerTokenPath}
	}
	if f.username != "" {
		cfg.BasicAuth = &promconfig.BasicAuth{Username: f.username, PasswordFile: f.passwordPath}
	}
	cfg.TLSConfig = promconfig.TLSConfig{CAFile: f.caFile, CertFile: f.certFile, KeyFile: f.keyFile,
		ServerName: f.serverName, InsecureSkipVerify: f.insecureSkipVerify}
	if err := cfg.Validate(); err != nil {
		return promconfig.HTTPClientConfig{}, fmt.Errorf("--prometheus-*: %w", err)
	}
	return cfg, nil
}

// roundTripper returns the transport of the Prometheus queries.
func (f *prometheusClientFlags) roundTripper() (http.RoundTripper, error) {
	cfg, err := f.config()
	if err != nil {
		return nil, err
	}
	rt, err := promconfig.NewRoundTripperFromConfig(cfg, "prowjob-dispatcher")
	if err != nil {
		return nil, fmt.Errorf("prometheus client: %w", err)
	}
	return rt, nil
}
