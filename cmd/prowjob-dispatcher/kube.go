package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/demand"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/kubestate"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/webhook/httpapi"
)

// The state backends of serve.
const (
	backendFile       = "file"
	backendKubernetes = "kubernetes"
)

// inClusterNamespaceFile holds the pod's namespace in a pod with a service account token.
const inClusterNamespaceFile = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

// kubeFlags are the flags of the kubernetes state backend: replicas sharing
// state in the Kubernetes API, one leader on a Lease.
type kubeFlags struct {
	backend                                   string
	kubeconfig, namespace                     string
	replica, advertise                        string
	replicaSecretFile                         string
	leaseDuration, renewDeadline, retryPeriod time.Duration
	startTimeout, drainConfirmTimeout         time.Duration
}

func (f *kubeFlags) AddFlags(fs *flag.FlagSet) {
	fs.StringVar(&f.backend, "state-backend", backendFile, "where the state lives: file (--state-dir, one replica) or kubernetes (the API server: several replicas, one leader on a Lease)")
	fs.StringVar(&f.kubeconfig, "kubeconfig", "", "kubeconfig of the API server holding the state with --state-backend=kubernetes (empty: in-cluster)")
	fs.StringVar(&f.namespace, "namespace", "", "namespace of the state objects and the Lease (empty: $POD_NAMESPACE, the pod's namespace, else prowjob-dispatcher)")
	fs.StringVar(&f.replica, "replica-name", "", "this replica's name, unique among the replicas (empty: $POD_NAME, else the host name)")
	fs.StringVar(&f.advertise, "advertise-address", "", "root URL of this replica's API that the other replicas forward writes to (empty: http://$POD_IP:<api-port>, else http://<host name>:<api-port>)")
	fs.StringVar(&f.replicaSecretFile, "replica-secret-file", "", "with --state-backend=kubernetes (required): file with the secret every replica shares (at least 32 bytes), which signs the writes a follower forwards to the leader; a forwarded request not signed with it is refused")
	fs.DurationVar(&f.leaseDuration, "leader-elect-lease-duration", kubestate.DefaultLeaseDuration, "how long a leader's Lease lasts without renewal; a dead leader is replaced after at most this and a retry period")
	fs.DurationVar(&f.renewDeadline, "leader-elect-renew-deadline", kubestate.DefaultRenewDeadline, "how long a leader keeps trying to renew before it steps down")
	fs.DurationVar(&f.retryPeriod, "leader-elect-retry-period", kubestate.DefaultRetryPeriod, "how often replicas try to acquire or renew the Lease")
	fs.DurationVar(&f.startTimeout, "kube-start-timeout", 30*time.Second, "how long the start waits for the API server to list the shared state")
	fs.DurationVar(&f.drainConfirmTimeout, "drain-confirm-timeout", kubestate.DefaultDrainConfirmTimeout, "how long a drain's answer waits for every other live replica to have it in force; those that did not by then are named in the answer's unconfirmed")
}

func (f *kubeFlags) Validate() error {
	var errs []error
	switch f.backend {
	case backendFile:
	case backendKubernetes:
		if f.replicaSecretFile == "" {
			errs = append(errs, errors.New("--state-backend=kubernetes needs --replica-secret-file: the replicas authenticate the writes they forward to the leader with it"))
		}
		if !(f.leaseDuration > f.renewDeadline && f.renewDeadline > f.retryPeriod && f.retryPeriod > 0) {
			errs = append(errs, fmt.Errorf("want --leader-elect-lease-duration (%s) > --leader-elect-renew-deadline (%s) > --leader-elect-retry-period (%s) > 0",
				f.leaseDuration, f.renewDeadline, f.retryPeriod))
		}
	default:
		errs = append(errs, fmt.Errorf("--state-backend %q: want file or kubernetes", f.backend))
	}
	return errors.Join(errs...)
}

func (f *kubeFlags) enabled() bool { return f.backend == backendKubernetes }

// names completes the namespace, replica name and advertised address from
// the pod's environment.
func (f *kubeFlags) names(apiPort int) (namespace, replica, address string) {
	namespace, replica, address = f.namespace, f.replica, f.advertise
	if namespace == "" {
		namespace = os.Getenv("POD_NAMESPACE")
	}
	if namespace == "" {
		if b, err := os.ReadFile(inClusterNamespaceFile); err == nil {
			namespace = strings.TrimSpace(string(b))
		}
	}
	if namespace == "" {
		namespace = "prowjob-dispatcher"
	}
	host, _ := os.Hostname()
	if replica == "" {
		replica = os.Getenv("POD_NAME")
	}
	if replica == "" {
		replica = host
	}
	if address == "" {
		h := os.Getenv("POD_IP")
		if h == "" {
			h = host
		}
		address = "http://" + net.JoinHostPort(h, strconv.Itoa(apiPort))
	}
	return namespace, replica, address
}

// replicaAuth reads --replica-secret-file.
func (f *kubeFlags) replicaAuth() (*httpapi.ReplicaAuth, error) {
	ra, err := httpapi.ReadReplicaAuth(f.replicaSecretFile)
	if err != nil {
		return nil, fmt.Errorf("--replica-secret-file: %w", err)
	}
	return ra, nil
}

// restConfig is the API server's client config: the kubeconfig, or in-cluster.
func (f *kubeFlags) restConfig() (*rest.Config, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", f.kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("--kubeconfig %q: %w", f.kubeconfig, err)
	}
	cfg.UserAgent = "prowjob-dispatcher"
	return cfg, nil
}

// startShared starts the kubernetes state backend, the state of the
// dispatcher, and sets the dispatch options that go with it: the shared
// table serves before the configs load and, when demand is counted from
// admissions, this replica's counter (restored from its record by Load)
// and the sum of every replica's counts.
func (f *kubeFlags) startShared(ctx context.Context, apiPort int, opts *dispatch.Options, reg prometheus.Registerer, log logr.Logger) (*kubestate.Backend, error) {
	cfg, err := f.restConfig()
	if err != nil {
		return nil, err
	}
	namespace, replica, address := f.names(apiPort)
	b, err := kubestate.New(cfg, kubestate.Options{
		Namespace: namespace, Replica: replica, Address: address,
		LeaseDuration: f.leaseDuration, RenewDeadline: f.renewDeadline, RetryPeriod: f.retryPeriod,
		DrainConfirmTimeout: f.drainConfirmTimeout, Logger: log, Registerer: reg,
	})
	if err != nil {
		return nil, fmt.Errorf("--state-backend=kubernetes: %w", err)
	}
	startCtx, cancel := context.WithTimeout(ctx, f.startTimeout)
	defer cancel()
	start := time.Now()
	if err := b.Start(startCtx); err != nil {
		return nil, fmt.Errorf("--state-backend=kubernetes: namespace %s: %w", namespace, err)
	}
	log.Info("Listed the shared state", "namespace", namespace, "replica", replica, "address", address, "took", time.Since(start))
	opts.DeferInputs = true
	if opts.Demand == nil {
		opts.Admissions, opts.Demand = demand.NewAdmissions(demand.DefaultWindow, nil), b.Demand()
	}
	return b, nil
}

// leaderOf gives the API the backend's view of the leader.
type leaderOf struct {
	b       *kubestate.Backend
	replica string
}

func (l leaderOf) Leader() (string, string, bool) { return l.b.Leader() }
func (l leaderOf) Replica() string                { return l.replica }
