// Package loadtest holds the admission webhook's load harness, a test-only
// tool: it serves a 50,000-job table through the real webhook server over
// TLS on the loopback interface and posts AdmissionReviews to it at a fixed
// rate, then prints latency percentiles, throughput, errors and memory.
//
// The default run is a short smoke test. The long run is asked for with flags:
//
//	go test ./webhook/loadtest -run TestLoad -v -args -rate 1000 -duration 60s
package loadtest
