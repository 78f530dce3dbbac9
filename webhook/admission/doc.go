// Package admission is the mutating admission webhook that sets spec.cluster
// on new ProwJobs to the dispatcher's assignment, in the shape of
// controller-runtime's pkg/webhook/admission: a Handler that decodes only the
// ProwJob fields it reads, makes one call into dispatch and answers with a
// one-operation patch, never a denial. NewServer serves it over TLS with
// controller-runtime's webhook server; Metrics count its outcomes.
package admission
