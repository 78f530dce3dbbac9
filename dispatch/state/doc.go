// Package state is the dispatcher's state port: the model of what survives
// a restart (the table, overrides, drains and caps, provisional jobs) and
// Backend, the one interface through which package dispatch loads, writes,
// saves and watches it. The file store (package store) and the Kubernetes
// backend (package kubestate) implement it; Memory keeps nothing.
package state
