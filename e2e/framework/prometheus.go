package framework

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"time"
)

// DemandMetric is the counter Prow exports and the dispatcher's demand query reads.
const DemandMetric = "prowjob_state_transitions"

// History is generated Prometheus history: for each job, a
// prowjob_state_transitions{job_name=JOB,state="pending"} counter that grows
// linearly by Demand[JOB] between Start and End.
type History struct {
	Demand     map[string]float64
	Start, End time.Time
	// Step is the sample interval (default 10m).
	Step time.Duration
}

// WriteOpenMetrics writes the history in the OpenMetrics text format that
// `promtool tsdb create-blocks-from openmetrics` reads.
func (h History) WriteOpenMetrics(path string) error {
	step := h.Step
	if step == 0 {
		step = 10 * time.Minute
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("history %s: %w", path, err)
	}
	w := bufio.NewWriter(f)
	fmt.Fprintf(w, "# HELP %s ProwJob state transitions.\n# TYPE %s unknown\n", DemandMetric, DemandMetric)
	jobsSorted := make([]string, 0, len(h.Demand))
	for job := range h.Demand {
		jobsSorted = append(jobsSorted, job)
	}
	sort.Strings(jobsSorted)
	span := h.End.Sub(h.Start).Seconds()
	for _, job := range jobsSorted {
		for t := h.Start; !t.After(h.End); t = t.Add(step) {
			v := h.Demand[job] * t.Sub(h.Start).Seconds() / span
			fmt.Fprintf(w, "%s{job_name=%q,state=\"pending\"} %s %d\n", DemandMetric, job, strconv.FormatFloat(v, 'f', 4, 64), t.Unix())
		}
		// Another state, which the demand query must not count.
		fmt.Fprintf(w, "%s{job_name=%q,state=\"success\"} 0 %d\n", DemandMetric, job, h.Start.Unix())
		fmt.Fprintf(w, "%s{job_name=%q,state=\"success\"} 1000000 %d\n", DemandMetric, job, h.End.Unix())
	}
	fmt.Fprintln(w, "# EOF")
	if err := w.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("history %s: %w", path, err)
	}
	return f.Close()
}

// CreateBlocks writes the history into TSDB blocks under dataDir with promtool.
func (h History) CreateBlocks(ctx context.Context, promtool, dataDir string) error {
	om := filepath.Join(filepath.Dir(dataDir), filepath.Base(dataDir)+".om")
	if err := h.WriteOpenMetrics(om); err != nil {
		return err
	}
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return err
	}
	out, err := exec.CommandContext(ctx, promtool, "tsdb", "create-blocks-from", "openmetrics",
		"--max-block-duration=24h", om, dataDir).CombinedOutput()
	if err != nil {
		return fmt.Errorf("promtool tsdb create-blocks-from openmetrics %s: %w\n%s", om, err, out)
	}
	return nil
}

// Prometheus is a running Prometheus server.
type Prometheus struct {
	*Process
	// URL is its base URL (http://127.0.0.1:PORT).
	URL string
}

// StartPrometheus starts prometheus on a free loopback port serving dataDir,
// with no scrape targets and a retention long enough that no generated block is
// dropped, and waits until it is ready.
func StartPrometheus(ctx context.Context, bin, dataDir, logDir string) (*Prometheus, error) {
	return startPrometheus(ctx, bin, dataDir, logDir, "global:\n  scrape_interval: 1h\n")
}

// StartScrapingPrometheus starts prometheus on a free loopback port with an
// empty dataDir, scraping target (host:port, path /metrics) every second,
// and waits until it is ready.
func StartScrapingPrometheus(ctx context.Context, bin, dataDir, logDir, target string) (*Prometheus, error) {
	return startPrometheus(ctx, bin, dataDir, logDir, fmt.Sprintf(
		"global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n- job_name: prow\n  static_configs:\n  - targets: [%q]\n", target))
}

// StartSecurePrometheus is StartPrometheus serving HTTPS with the
// authentication of webConfig (Prometheus' own --web.config.file:
// tls_server_config, basic_auth_users). client reaches it (trusts its CA,
// sends credentials) and is used to wait until it is ready.
func StartSecurePrometheus(ctx context.Context, bin, dataDir, logDir, webConfig string, client *http.Client) (*Prometheus, error) {
	return startPrometheusWith(ctx, bin, dataDir, logDir, "global:\n  scrape_interval: 1h\n", webConfig, client)
}

func startPrometheus(ctx context.Context, bin, dataDir, logDir, config string) (*Prometheus, error) {
	return startPrometheusWith(ctx, bin, dataDir, logDir, config, "", nil)
}

func startPrometheusWith(ctx context.Context, bin, dataDir, logDir, config, webConfig string, client *http.Client) (*Prometheus, error) {
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return nil, err
	}
	cfg := filepath.Join(filepath.Dir(dataDir), filepath.Base(dataDir)+".yml")
	if err := os.WriteFile(cfg, []byte(config), 0o644); err != nil {
		return nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	args := []string{
		"--config.file=" + cfg,
		"--storage.tsdb.path=" + dataDir,
		"--storage.tsdb.retention.time=3650d",
		"--web.listen-address=" + addr,
		"--log.level=warn",
	}
	scheme := "http"
	if webConfig != "" {
		args, scheme = append(args, "--web.config.file="+webConfig), "https"
	}
	p, err := StartProcess("prometheus-"+filepath.Base(dataDir), logDir, bin, args...)
	if err != nil {
		return nil, err
	}
	prom := &Prometheus{Process: p, URL: scheme + "://" + addr}
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if client == nil {
		err = p.WaitHTTP(wctx, prom.URL+"/-/ready")
	} else {
		err = p.waitHTTPWith(wctx, client, prom.URL+"/-/ready")
	}
	if err != nil {
		p.Kill()
		return nil, err
	}
	return prom, nil
}
