package admission

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	admissionv1 "k8s.io/api/admission/v1"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/table"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/webhook/certs"
)

// freePort returns a loopback port that was free a moment ago
// (controller-runtime's server takes a port number, not a listener).
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startServer starts the webhook server on 127.0.0.1 with a self-signed
// certificate in a temp dir, and returns its URL, the cert dir and a client
// trusting the CA. The server stops at the end of the test.
func startServer(t *testing.T, a *Handler) (url, certDir string, client *http.Client) {
	t.Helper()
	return startServerWith(t, a, ServerOptions{})
}

// startServerWith is startServer with options (Host, Port, CertDir and Logger are set here).
func startServerWith(t *testing.T, a *Handler, opts ServerOptions) (url, certDir string, client *http.Client) {
	t.Helper()
	certDir = t.TempDir()
	b, _, err := certs.Ensure(certDir, certs.Hosts(nil), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	opts.Host, opts.Port, opts.CertDir, opts.Logger = "127.0.0.1", port, certDir, logr.Discard()
	srv, err := NewServer(opts, a)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("server Start returned %v after cancel", err)
		}
	})
	client = trustingClient(b.CA)
	url = "https://localhost:" + strconv.Itoa(port) + MutatePath
	waitListening(t, port, done)
	return url, certDir, client
}

func trustingClient(caPEM []byte) *http.Client {
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		DisableKeepAlives: true,
	}}
}

// waitListening waits until the port accepts TCP connections, or the server fails.
func waitListening(t *testing.T, port int, done <-chan error) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		select {
		case err := <-done:
			t.Fatalf("server stopped: %v", err)
		default:
		}
		if c, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port))); err == nil {
			c.Close()
			return
		}
	}
	t.Fatal("the webhook server did not listen within 10s")
}

func postReview(client *http.Client, url string, body []byte) (*admissionv1.AdmissionResponse, error) {
	resp, err := client.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	var review admissionv1.AdmissionReview
	if err := json.NewDecoder(resp.Body).Decode(&review); err != nil {
		return nil, err
	}
	if review.Response == nil {
		return nil, errors.New("no response in the review")
	}
	return review.Response, nil
}

// TestServerTLSRoundTrip posts the docs' AdmissionReview over real TLS to
// controller-runtime's webhook server and checks the patch, then rotates the
// certificate on disk and checks that the server picks up the new one.
func TestServerTLSRoundTrip(t *testing.T) {
	a, _ := newTestAdmission(t, &fakeAdmitter{decide: answer(dispatch.Decision{Cluster: "build05", Reason: table.ReasonCapability, Patch: true}, nil)})
	url, certDir, client := startServer(t, a)
	body, err := os.ReadFile("../../docs/examples/admissionreview.json")
	if err != nil {
		t.Fatal(err)
	}
	resp, err := postReview(client, url, body)
	if err != nil {
		t.Fatal(err)
	}
	if !resp.Allowed || resp.UID != "4b7d3a7e-0b59-4cde-9a5e-3f0c0f6a9d11" {
		t.Errorf("allowed %v, uid %q", resp.Allowed, resp.UID)
	}
	if want := `[{"op":"replace","path":"/spec/cluster","value":"build05"}]`; string(resp.Patch) != want {
		t.Errorf("patch = %s, want %s", resp.Patch, want)
	}
	if resp.PatchType == nil || *resp.PatchType != admissionv1.PatchTypeJSONPatch {
		t.Errorf("patch type = %v", resp.PatchType)
	}

	// Rotate: a new CA and certificate. The old CA must stop working and the new one start.
	rotated, err := certs.Generate(certs.Hosts(nil), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := rotated.Write(certDir); err != nil {
		t.Fatal(err)
	}
	newClient := trustingClient(rotated.CA)
	var lastErr error
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if _, lastErr = postReview(newClient, url, body); lastErr == nil {
			break
		}
	}
	if lastErr != nil {
		t.Fatalf("the rotated certificate was not served within 20s: %v", lastErr)
	}
	if _, err := postReview(client, url, body); err == nil {
		t.Error("a client trusting only the old CA still connects after rotation")
	}
}

// TestServerBoundsASlowBody: a client that trickles its body is cut off
// after BodyTimeout instead of holding the connection.
func TestServerBoundsASlowBody(t *testing.T) {
	a, _ := newTestAdmission(t, &fakeAdmitter{decide: answer(dispatch.Decision{}, nil)})
	url, _, client := startServerWith(t, a, ServerOptions{BodyTimeout: 300 * time.Millisecond})
	tlsConfig := client.Transport.(*http.Transport).TLSClientConfig
	host := strings.TrimSuffix(strings.TrimPrefix(url, "https://"), MutatePath)
	conn, err := tls.Dial("tcp", host, tlsConfig)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{", MutatePath); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	closed := make(chan struct{})
	go func() { // the server answers or closes; reading returns either way
		_, _ = io.Copy(io.Discard, conn)
		close(closed)
	}()
	for {
		select {
		case <-closed:
			if took := time.Since(start); took > 20*time.Second {
				t.Errorf("the connection was held %s", took)
			}
			return
		case <-time.After(100 * time.Millisecond):
			if _, err := conn.Write([]byte(" ")); err != nil {
				return // the server closed the connection
			}
			if time.Since(start) > 30*time.Second {
				t.Fatal("a trickled body kept the connection open for 30 s")
			}
		}
	}
}
