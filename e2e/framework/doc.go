// Package framework runs the parts of an end-to-end test for real: a
// kube-apiserver and etcd (controller-runtime's envtest) with the ProwJob CRD,
// a Prometheus holding generated job history, and the prowjob-dispatcher
// binary as separate processes. The e2e tests in the parent folder use it.
package framework
