package plugin

import (
	"net/http"
	"testing"

	"sigs.k8s.io/prow/pkg/github"
)

func TestValidSignature(t *testing.T) {
	payload := []byte(`{"repository":{"full_name":"openshift/origin"},"action":"created"}`)
	hierarchical := []byte(`
openshift/origin:
- value: repo-token
  created_at: 2026-01-01T00:00:00Z
openshift:
- value: org-token
  created_at: 2026-01-01T00:00:00Z
'*':
- value: global-token
  created_at: 2026-01-01T00:00:00Z
`)
	cases := []struct {
		name    string
		secret  []byte
		headers map[string]string
		want    bool
	}{
		{name: "both signatures", secret: []byte(testHMAC), headers: signed(payload, testHMAC), want: true},
		{name: "SHA-256 only", secret: []byte(testHMAC), headers: map[string]string{signatureSHA256Header: sign256(payload, testHMAC)}, want: true},
		{name: "SHA-1 only", secret: []byte(testHMAC), headers: map[string]string{signatureSHA1Header: github.PayloadSignature(payload, []byte(testHMAC))}, want: true},
		{name: "none", secret: []byte(testHMAC), want: false},
		{name: "wrong key", secret: []byte(testHMAC), headers: signed(payload, "other"), want: false},
		{name: "SHA-256 without its prefix", secret: []byte(testHMAC), headers: map[string]string{signatureSHA256Header: sign256(payload, testHMAC)[len("sha256="):]}, want: false},
		{name: "SHA-256 not hex", secret: []byte(testHMAC), headers: map[string]string{signatureSHA256Header: "sha256=zz"}, want: false},
		{name: "hierarchical secret: the repo's token", secret: hierarchical, headers: signed(payload, "repo-token"), want: true},
		{name: "hierarchical secret: the org's token is shadowed by the repo's", secret: hierarchical, headers: signed(payload, "org-token"), want: false},
		{name: "hierarchical secret: SHA-256 with the global token is shadowed too", secret: hierarchical,
			headers: map[string]string{signatureSHA256Header: sign256(payload, "global-token")}, want: false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			for k, v := range tc.headers {
				h.Set(k, v)
			}
			if got := validSignature(payload, h, func() []byte { return tc.secret }); got != tc.want {
				t.Errorf("validSignature = %v, want %v", got, tc.want)
			}
		})
	}
}
