package api

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"net/http"
	"strings"
)

// adminTokenLabel separates the admin token from every other value derived
// from the cluster secret (peer and driver authentication), so that none of
// them can stand in for another; the version lets the derivation change
// without old tokens being accepted by mistake.
const adminTokenLabel = "clustd admin token v1"

// AdminToken returns the bearer token that admin requests must carry: the
// hex encoding of HMAC-SHA256 keyed with the cluster secret over a fixed
// label. Every node of a cluster shares the secret and so the token, and the
// CLI derives it from the configuration file instead of asking for it.
func AdminToken(secret []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(adminTokenLabel))
	return hex.EncodeToString(m.Sum(nil))
}

// bearerToken returns the token of an "Authorization: Bearer TOKEN" header
// and whether there was one. The scheme is case-insensitive (RFC 7235 §2.1).
func bearerToken(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(strings.TrimSpace(h), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}

// tokenEqual compares in constant time, so that response timing does not
// reveal how much of a guessed token was right.
func tokenEqual(got, want string) bool {
	return want != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}
