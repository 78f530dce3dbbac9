package framework

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"

	"k8s.io/client-go/tools/clientcmd"
)

// Netns is a network namespace of the test's own with a veth pair to the
// host, on link-local addresses: HostIP on the host's end, NSIP inside. A
// process run inside (ServeConfig.Netns) reaches the host only at HostIP
// and is reached at NSIP; Cut takes the namespace's end of the link down,
// which cuts it off from everything but its own loopback.
type Netns struct {
	Name          string
	HostIP, NSIP  string
	hostIf, nsIf  string
	cleanupOnce   sync.Once
	cleanupResult error
	createdNetns  bool
	createdVeth   bool
}

// NetnsSupported reports whether network namespaces can be made here
// (root, iproute2 and the kernel allow `ip netns add`); the error says why not.
func NetnsSupported(ctx context.Context) error {
	name := fmt.Sprintf("pjd-probe-%d", os.Getpid())
	if out, err := exec.CommandContext(ctx, "ip", "netns", "add", name).CombinedOutput(); err != nil {
		return fmt.Errorf("ip netns add %s: %w: %s", name, err, strings.TrimSpace(string(out)))
	}
	if out, err := exec.CommandContext(ctx, "ip", "netns", "del", name).CombinedOutput(); err != nil {
		return fmt.Errorf("ip netns del %s: %w: %s", name, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// CreateNetns makes the namespace name with a veth pair (interfaces named
// after tag, at most 10 characters) addressed hostIP/30 on the host and
// nsIP/30 inside, both up, and the namespace's loopback up. Delete removes
// them; on an error what was made is removed already.
func CreateNetns(ctx context.Context, name, tag, hostIP, nsIP string) (*Netns, error) {
	n := &Netns{Name: name, HostIP: hostIP, NSIP: nsIP, hostIf: tag + "h", nsIf: tag + "n"}
	steps := [][]string{
		{"netns", "add", name},
		{"link", "add", n.hostIf, "type", "veth", "peer", "name", n.nsIf},
		{"link", "set", n.nsIf, "netns", name},
		{"addr", "add", hostIP + "/30", "dev", n.hostIf},
		{"link", "set", n.hostIf, "up"},
		{"-n", name, "addr", "add", nsIP + "/30", "dev", n.nsIf},
		{"-n", name, "link", "set", n.nsIf, "up"},
		{"-n", name, "link", "set", "lo", "up"},
	}
	for i, step := range steps {
		if err := ip(ctx, step...); err != nil {
			_ = n.Delete()
			return nil, fmt.Errorf("network namespace %s: %w", name, err)
		}
		n.createdNetns = true
		n.createdVeth = n.createdVeth || i >= 1
	}
	return n, nil
}

// Cut takes the namespace's end of the veth down: nothing goes in or out.
func (n *Netns) Cut(ctx context.Context) error {
	return ip(ctx, "-n", n.Name, "link", "set", n.nsIf, "down")
}

// Heal brings the namespace's end of the veth up again.
func (n *Netns) Heal(ctx context.Context) error {
	return ip(ctx, "-n", n.Name, "link", "set", n.nsIf, "up")
}

// Delete removes the veth pair and the namespace (once; later calls return
// the first result). Processes still inside keep the namespace alive until
// they exit.
func (n *Netns) Delete() error {
	n.cleanupOnce.Do(func() {
		var errs []error
		ctx := context.Background()
		if n.createdVeth {
			// Deleting one end deletes both; the host's end is gone with the
			// namespace's when it was moved in already.
			if err := ip(ctx, "link", "del", n.hostIf); err != nil && !strings.Contains(err.Error(), "Cannot find device") {
				errs = append(errs, err)
			}
		}
		if n.createdNetns {
			if err := ip(ctx, "netns", "del", n.Name); err != nil {
				errs = append(errs, err)
			}
		}
		n.cleanupResult = errors.Join(errs...)
	})
	return n.cleanupResult
}

func ip(ctx context.Context, args ...string) error {
	if out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Relay forwards every TCP connection accepted on listen to target, both
// ways, until Close: how a process in a Netns reaches a server that
// listens on the host's loopback only.
type Relay struct {
	// Addr is the address it listens on.
	Addr   string
	target string
	ln     net.Listener
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
}

// StartRelay listens on listen ("169.254.77.1:0") and relays to target.
func StartRelay(listen, target string) (*Relay, error) {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, fmt.Errorf("relay to %s: %w", target, err)
	}
	r := &Relay{Addr: ln.Addr().String(), target: target, ln: ln, conns: map[net.Conn]struct{}{}}
	r.wg.Add(1)
	go r.accept()
	return r, nil
}

func (r *Relay) accept() {
	defer r.wg.Done()
	for {
		in, err := r.ln.Accept()
		if err != nil {
			return
		}
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			out, err := net.Dial("tcp", r.target)
			if err != nil {
				in.Close()
				return
			}
			r.track(in, out)
			var wg sync.WaitGroup
			wg.Add(2)
			pipe := func(dst, src net.Conn) {
				defer wg.Done()
				_, _ = io.Copy(dst, src)
				if tc, ok := dst.(*net.TCPConn); ok {
					_ = tc.CloseWrite()
				}
			}
			go pipe(out, in)
			go pipe(in, out)
			wg.Wait()
			in.Close()
			out.Close()
			r.untrack(in, out)
		}()
	}
}

func (r *Relay) track(cs ...net.Conn) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range cs {
		r.conns[c] = struct{}{}
	}
}

func (r *Relay) untrack(cs ...net.Conn) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range cs {
		delete(r.conns, c)
	}
}

// Close stops listening, closes the relayed connections and waits for them.
func (r *Relay) Close() {
	r.ln.Close()
	r.mu.Lock()
	for c := range r.conns {
		c.Close()
	}
	r.mu.Unlock()
	r.wg.Wait()
}

// KubeconfigVia writes to out a copy of the kubeconfig at in whose clusters
// are reached at server (https://HOST:PORT) while their certificate is
// still checked for tlsServerName (the address the API server's
// certificate names, 127.0.0.1).
func KubeconfigVia(in, out, server, tlsServerName string) error {
	cfg, err := clientcmd.LoadFromFile(in)
	if err != nil {
		return fmt.Errorf("kubeconfig %s: %w", in, err)
	}
	for _, c := range cfg.Clusters {
		c.Server = server
		c.TLSServerName = tlsServerName
	}
	if err := clientcmd.WriteToFile(*cfg, out); err != nil {
		return fmt.Errorf("kubeconfig %s: %w", out, err)
	}
	return nil
}
