// Package certs makes the webhook's self-signed serving certificate: a CA
// and a serving certificate it signs, written where the webhook server
// reads them, and the CA bundle for the MutatingWebhookConfiguration.
package certs
