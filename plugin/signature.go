package plugin

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strings"

	"sigs.k8s.io/prow/pkg/github"
	"sigs.k8s.io/yaml"
)

// GitHub's signature headers.
const (
	signatureSHA1Header   = "X-Hub-Signature"
	signatureSHA256Header = "X-Hub-Signature-256"
)

// validSignature checks a delivery's HMAC signatures against the secret.
// GitHub sends both headers; this prow version checks only the SHA-1 one
// (github.ValidatePayload), so the SHA-256 one is checked here with the same
// secret file format (one token, or prow's org/repo -> tokens map). Every
// signature present must be valid, and at least one must be present.
func validSignature(payload []byte, h http.Header, tokenGenerator func() []byte) bool {
	sig1, sig256 := h.Get(signatureSHA1Header), h.Get(signatureSHA256Header)
	if sig1 == "" && sig256 == "" {
		return false
	}
	if sig1 != "" && !github.ValidatePayload(payload, sig1, tokenGenerator) {
		return false
	}
	if sig256 != "" && !validSHA256(payload, sig256, tokenGenerator) {
		return false
	}
	return true
}

// validSHA256 checks a "sha256=HEX" signature.
func validSHA256(payload []byte, sig string, tokenGenerator func() []byte) bool {
	hexSig, ok := strings.CutPrefix(sig, "sha256=")
	if !ok {
		return false
	}
	want, err := hex.DecodeString(hexSig)
	if err != nil {
		return false
	}
	var event github.GenericEvent
	if err := json.Unmarshal(payload, &event); err != nil {
		return false
	}
	orgRepo := event.Repo.FullName
	if orgRepo == "" {
		orgRepo = event.Org.Login
	}
	for _, key := range hmacKeys(orgRepo, tokenGenerator()) {
		mac := hmac.New(sha256.New, key)
		mac.Write(payload)
		if hmac.Equal(want, mac.Sum(nil)) {
			return true
		}
	}
	return false
}

// hmacKeys returns the keys for orgRepo the way prow's hook picks them: the
// secret is either one token, or a YAML map of "org/repo", "org" or "*" to
// tokens, the most specific entry winning.
func hmacKeys(orgRepo string, secret []byte) [][]byte {
	var byRepo map[string]github.HMACsForRepo
	if err := yaml.Unmarshal(secret, &byRepo); err != nil {
		return [][]byte{secret}
	}
	org, _, _ := strings.Cut(orgRepo, "/")
	for _, k := range []string{orgRepo, org, "*"} {
		if tokens, ok := byRepo[k]; ok {
			keys := make([][]byte, len(tokens))
			for i, t := range tokens {
				keys[i] = []byte(t.Value)
			}
			return keys
		}
	}
	return nil
}
