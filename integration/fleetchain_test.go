package integration

// The chain of the fleet metrics test (fleetmetrics_test.go): the
// deploy/prometheus-agent configuration rewritten for the lab,
// Prometheus in agent mode and VictoriaMetrics started inside the test's
// namespace, and instant queries on the store's Prometheus API.

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/edgefw/edgefw/internal/netnstest"
)

// fleetStartStore runs a single-node VictoriaMetrics on addr inside ns
// with storage in a temporary directory, and waits for it to answer.
// Points become visible to queries 1 s after they arrive (the default
// 30 s would hide the last scrapes) and nothing is cached between queries.
func fleetStartStore(t *testing.T, ns *netnstest.NS, addr string) *metricsScraper {
	t.Helper()
	fleetRun(t, ns, "victoria-metrics", "-storageDataPath="+t.TempDir(), "-httpListenAddr="+addr,
		"-search.latencyOffset=1s", "-search.disableCache", "-loggerLevel=WARN")
	s := newMetricsScraper(t, ns, addr)
	fleetWaitHTTP(t, s, "/health")
	return s
}

// fleetStartAgent runs Prometheus in agent mode inside ns with the
// configuration given, its web endpoint on addr, and waits until it is
// ready.
func fleetStartAgent(t *testing.T, ns *netnstest.NS, addr string, config []byte) {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(path, config, 0o644); err != nil {
		t.Fatal(err)
	}
	fleetRun(t, ns, "prometheus", "--enable-feature=agent", "--config.file="+path,
		"--storage.agent.path="+filepath.Join(dir, "wal"), "--web.listen-address="+addr, "--log.level=warn")
	fleetWaitHTTP(t, newMetricsScraper(t, ns, addr), "/-/ready")
}

// fleetRun starts a program in ns, stopped (and its output shown if the
// test failed) when the test ends.
func fleetRun(t *testing.T, ns *netnstest.NS, name string, args ...string) {
	t.Helper()
	out := &lockedBuffer{}
	cmd := ns.Command(name, args...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(daemonExitTimeout):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", name, out.String())
		}
	})
}

func fleetWaitHTTP(t *testing.T, s *metricsScraper, path string) {
	t.Helper()
	daemonPoll(t, 30*time.Second, s.url+path+" to answer 200", func() (bool, string) {
		code, _, body, err := s.Get(path)
		return err == nil && code == 200, fmt.Sprintf("%d %v %s", code, err, body)
	})
}

// fleetSample is one element of an instant query's result.
type fleetSample struct {
	Metric map[string]string
	Value  float64
}

// fleetQuery runs an instant query on the store's Prometheus API.
func fleetQuery(s *metricsScraper, expr string) ([]fleetSample, error) {
	code, _, body, err := s.Get("/api/v1/query?query=" + url.QueryEscape(expr))
	if err != nil {
		return nil, err
	}
	var resp struct {
		Status, Error string
		Data          struct {
			ResultType string          `json:"resultType"`
			Result     json.RawMessage `json:"result"`
		}
	}
	if err := json.Unmarshal(body, &resp); err != nil || resp.Status != "success" {
		return nil, fmt.Errorf("query %s: HTTP %d: %v %s", expr, code, err, body)
	}
	value := func(pair []any) float64 {
		if len(pair) == 2 {
			if s, ok := pair[1].(string); ok {
				v, _ := strconv.ParseFloat(s, 64)
				return v
			}
		}
		return 0
	}
	if resp.Data.ResultType == "scalar" {
		var pair []any
		err := json.Unmarshal(resp.Data.Result, &pair)
		return []fleetSample{{Value: value(pair)}}, err
	}
	var vec []struct {
		Metric map[string]string
		Value  []any
	}
	if err := json.Unmarshal(resp.Data.Result, &vec); err != nil {
		return nil, fmt.Errorf("query %s: %v: %s", expr, err, body)
	}
	out := make([]fleetSample, 0, len(vec))
	for _, v := range vec {
		out = append(out, fleetSample{Metric: v.Metric, Value: value(v.Value)})
	}
	return out, nil
}

// fleetValue is the value of a query that returns one sample.
func fleetValue(t *testing.T, s *metricsScraper, expr string) float64 {
	t.Helper()
	res, err := fleetQuery(s, expr)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 1 {
		t.Fatalf("query %s: %d results, want 1: %v", expr, len(res), res)
	}
	return res[0].Value
}

// fleetWaitValue waits until the store's answer to expr (one sample) is
// at least min, and returns it.
func fleetWaitValue(t *testing.T, s *metricsScraper, expr string, min float64) float64 {
	t.Helper()
	var got float64
	daemonPoll(t, fleetChainTimeout, fmt.Sprintf("%s ≥ %v in %s", expr, min, s.url), func() (bool, string) {
		res, err := fleetQuery(s, expr)
		if err != nil || len(res) != 1 {
			return false, fmt.Sprintf("%v %v", res, err)
		}
		got = res[0].Value
		return got >= min, fmt.Sprint(got)
	})
	return got
}

// labScrapeInterval is the lab agents' scrape interval.
const labScrapeInterval = 5 * time.Second

// fleetAgentConfigFile is the deploy configuration, parsed, with the
// identity it gives the host.
type fleetAgentConfigFile struct {
	doc            map[string]any
	site, instance string
	interval       time.Duration
	sampleLimit    int
}

func fleetAgentConfig(t *testing.T) *fleetAgentConfigFile {
	t.Helper()
	data, err := os.ReadFile(agentConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	c := &fleetAgentConfigFile{}
	if err := yaml.Unmarshal(data, &c.doc); err != nil {
		t.Fatalf("%s: %v", agentConfigPath, err)
	}
	global, _ := c.doc["global"].(map[string]any)
	labels, _ := global["external_labels"].(map[string]any)
	c.site, _ = labels["site"].(string)
	if c.interval, err = time.ParseDuration(fmt.Sprint(global["scrape_interval"])); err != nil {
		t.Fatalf("%s: scrape_interval: %v", agentConfigPath, err)
	}
	jobs, _ := c.doc["scrape_configs"].([]any)
	if len(jobs) != 1 {
		t.Fatalf("%s: %d scrape configs, want the one edgefw job", agentConfigPath, len(jobs))
	}
	job := jobs[0].(map[string]any)
	c.sampleLimit, _ = job["sample_limit"].(int)
	statics, _ := job["static_configs"].([]any)
	if len(statics) != 1 {
		t.Fatalf("%s: %d static configs, want 1", agentConfigPath, len(statics))
	}
	targetLabels, _ := statics[0].(map[string]any)["labels"].(map[string]any)
	c.instance, _ = targetLabels["instance"].(string)
	if c.site == "" || c.instance == "" || c.sampleLimit == 0 || job["job_name"] != "edgefw" {
		t.Fatalf("%s: want job edgefw with a site external label, an instance label and a sample_limit; got site %q, instance %q, sample_limit %d, job %v",
			agentConfigPath, c.site, c.instance, c.sampleLimit, job["job_name"])
	}
	return c
}

// forLab is the configuration with the lab's target and store put in,
// everything else as it is. Without relabel (the raw "before"), the
// relabelling and the sample limit are left out.
func (c *fleetAgentConfigFile) forLab(t *testing.T, target, store string, relabel bool) []byte {
	t.Helper()
	var doc map[string]any
	data, _ := yaml.Marshal(c.doc)
	if err := yaml.Unmarshal(data, &doc); err != nil { // a deep copy
		t.Fatal(err)
	}
	// The lab scrapes every few seconds instead of the deploy interval, so
	// the test does not wait minutes for samples; the budget's samples per
	// second are computed at the deploy interval (cfg.interval).
	global := doc["global"].(map[string]any)
	global["scrape_interval"], global["scrape_timeout"] = labScrapeInterval.String(), labScrapeInterval.String()
	job := doc["scrape_configs"].([]any)[0].(map[string]any)
	job["static_configs"].([]any)[0].(map[string]any)["targets"] = []any{target}
	writes, _ := doc["remote_write"].([]any)
	if len(writes) != 1 {
		t.Fatalf("%s: %d remote_write entries, want 1", agentConfigPath, len(writes))
	}
	write := writes[0].(map[string]any)
	write["url"] = "http://" + store + "/api/v1/write"
	if !relabel {
		delete(job, "metric_relabel_configs")
		delete(job, "sample_limit")
		delete(write, "write_relabel_configs")
	}
	out, err := yaml.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
