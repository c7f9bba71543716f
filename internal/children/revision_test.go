package children

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
)

// A revision covers a Secret value only through an HMAC under the
// operator's key: the same value under another key, or a plain hash of
// it, reads differently, so the annotation cannot confirm a guess.
func TestNewRevision_CoversSecretValuesByKeyedHashOnly(t *testing.T) {
	s := live()
	cat := sha256.Sum256([]byte(`{"mode":"Live"}`))
	key := []byte(strings.Repeat("k", 32))
	secret := []SecretValue{{Name: "redis-auth", Key: "password", Value: []byte("hunter2")}}
	r1, err := NewRevision(s, "own", cat, secret, "uid-1", key)
	if err != nil {
		t.Fatal(err)
	}
	part := r1.Parts["secret:redis-auth/password"]
	plain := sha256.Sum256([]byte("hunter2"))
	if part == "" || strings.Contains(hex.EncodeToString(plain[:]), part) {
		t.Fatalf("the secret part %q is empty or a plain hash of the value", part)
	}
	r2, _ := NewRevision(s, "own", cat, secret, "uid-1", []byte(strings.Repeat("j", 32)))
	if r2.Parts["secret:redis-auth/password"] == part {
		t.Fatal("another key gives the same digest")
	}
	same, _ := NewRevision(s, "own", cat, secret, "uid-1", key)
	if same.Name != r1.Name || FormatParts(same.Parts) != FormatParts(r1.Parts) {
		t.Fatal("a revision is not a function of its inputs")
	}
	changed, _ := NewRevision(s, "own", cat, []SecretValue{{Name: "redis-auth", Key: "password", Value: []byte("hunter3")}}, "uid-1", key)
	if changed.Name == r1.Name {
		t.Fatal("a new value is not a new revision")
	}
	if d := Differences(r1.Parts, changed.Parts); len(d) != 1 || d[0] != "Secret redis-auth key password" {
		t.Fatalf("differences %v", d)
	}
	if !strings.HasPrefix(r1.Catalog, s.Name+"-catalog-") || r1.Catalog != changed.Catalog {
		t.Fatalf("catalog %q / %q: named for the catalog alone", r1.Catalog, changed.Catalog)
	}
	if got := ParseParts(FormatParts(r1.Parts)); FormatParts(got) != FormatParts(r1.Parts) {
		t.Fatalf("parts do not round-trip: %v", got)
	}
}
