package framework

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Process is a child process whose output goes to a log file.
type Process struct {
	// Name labels the process in errors.
	Name string
	// LogPath is the file holding its stdout and stderr.
	LogPath string
	cmd     *exec.Cmd
	done    chan struct{}
	err     error
}

// StartProcess starts bin with args, logging to logDir/name.log.
func StartProcess(name, logDir, bin string, args ...string) (*Process, error) {
	logPath := filepath.Join(logDir, name+".log")
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("%s: log file: %w", name, err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	// Its own process group, so a stray child cannot outlive the test.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	fmt.Fprintf(f, "==== %s %s\n", bin, strings.Join(args, " "))
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: starting %s: %w", name, bin, err)
	}
	p := &Process{Name: name, LogPath: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	return p, nil
}

// Exited reports whether the process has exited.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Kill sends SIGKILL and waits for the process to exit.
func (p *Process) Kill() {
	if p.Exited() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// Signal sends sig (SIGSTOP, SIGCONT, ...) to the process.
func (p *Process) Signal(sig syscall.Signal) error {
	if p.Exited() {
		return fmt.Errorf("%s: %s: already exited", p.Name, sig)
	}
	if err := p.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("%s: %s: %w", p.Name, sig, err)
	}
	return nil
}

// Stop sends SIGTERM and waits up to timeout, then kills.
func (p *Process) Stop(timeout time.Duration) error {
	if p.Exited() {
		return nil
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		var exitErr *exec.ExitError
		if errors.As(p.err, &exitErr) {
			return fmt.Errorf("%s exited after SIGTERM: %w", p.Name, p.err)
		}
		return nil
	case <-time.After(timeout):
		p.Kill()
		return fmt.Errorf("%s did not stop within %s of SIGTERM; killed", p.Name, timeout)
	}
}

// LogTail returns the last n bytes of the process log, for failure messages.
func (p *Process) LogTail(n int) string {
	data, err := os.ReadFile(p.LogPath)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	if len(data) > n {
		data = data[len(data)-n:]
	}
	return string(data)
}

// WaitHTTP polls url until it answers 200 or ctx is done, failing early when
// the process exits.
func (p *Process) WaitHTTP(ctx context.Context, url string) error {
	return p.waitHTTPWith(ctx, &http.Client{Timeout: 2 * time.Second}, url)
}

// waitHTTPWith is WaitHTTP through client (a TLS one, say).
func (p *Process) waitHTTPWith(ctx context.Context, client *http.Client, url string) error {
	var last string
	for {
		if p.Exited() {
			return fmt.Errorf("%s exited before %s answered 200 (%v); log:\n%s", p.Name, url, p.err, p.LogTail(4000))
		}
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %s did not answer 200 (last: %s): %w; log:\n%s", p.Name, url, last, ctx.Err(), p.LogTail(4000))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// WaitListening polls url until it gives any HTTP answer or ctx is done,
// failing early when the process exits.
func (p *Process) WaitListening(ctx context.Context, url string) error {
	client := &http.Client{Timeout: 2 * time.Second}
	for {
		if p.Exited() {
			return fmt.Errorf("%s exited before listening on %s (%v); log:\n%s", p.Name, url, p.err, p.LogTail(4000))
		}
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %s never answered (%v): %w; log:\n%s", p.Name, url, err, ctx.Err(), p.LogTail(4000))
		case <-time.After(100 * time.Millisecond):
		}
	}
}
