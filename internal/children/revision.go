package children

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"

	stratv1 "github.com/stratops/stratops/api/v1"
	"github.com/stratops/stratops/pkg/messaging"
)

// Annotations of a revision, on the pod templates the operator writes.
const (
	// AnnotationRevision names what a pod runs: its template, catalog,
	// Redis settings and the values of the Secret keys it references.
	AnnotationRevision = "stratops.dev/revision"
	// AnnotationRevisionParts lists the digests the revision is made of,
	// so that what differs between two revisions can be said.
	AnnotationRevisionParts = "stratops.dev/revision-parts"
)

// Parts of a revision, in AnnotationRevisionParts.
const (
	PartTemplate = "template"
	PartCatalog  = "catalog"
	PartRedis    = "redis"
	PartToken    = "token"
	// PartSecret prefixes a referenced Secret key: "secret:<name>/<key>".
	PartSecret = "secret:"
)

// Revision is one revision of what a Strategy's pods run.
type Revision struct {
	// Name is the revision's hash.
	Name string
	// Parts are the digests it is made of, by part.
	Parts map[string]string
	// Catalog is the catalog ConfigMap its pods mount: named for the
	// catalog's digest, immutable.
	Catalog string
}

// SecretValue is a referenced Secret key's value, for a revision.
type SecretValue struct {
	Name, Key string
	Value     []byte
}

// NewRevision makes the revision of a pod from its own spec (the engine's
// template, or the logger's settings), the catalog (catalogSum: the
// SHA-256 of its JSON, as the catalog ConfigMap holds it), the Redis settings,
// the values of the Secret keys it references and the logger token's
// Secret UID. A Secret value enters only as an HMAC with key, a key the
// operator alone holds: never a plain hash that could be checked against
// a guess.
func NewRevision(s *stratv1.Strategy, own any, catalogSum [sha256.Size]byte, secrets []SecretValue, tokenUID string, key []byte) (Revision, error) {
	digest := func(v any) (string, error) {
		b, err := json.Marshal(v)
		if err != nil {
			return "", err
		}
		sum := sha256.Sum256(b)
		return hex.EncodeToString(sum[:])[:12], nil
	}
	parts := map[string]string{}
	var err error
	if parts[PartTemplate], err = digest(own); err != nil {
		return Revision{}, fmt.Errorf("revision: %w", err)
	}
	parts[PartCatalog] = hex.EncodeToString(catalogSum[:])[:12]
	if s.Spec.Redis != nil {
		if parts[PartRedis], err = digest(RedisEnv(s)); err != nil {
			return Revision{}, fmt.Errorf("revision: %w", err)
		}
	}
	for _, sv := range secrets {
		m := hmac.New(sha256.New, key)
		m.Write(sv.Value)
		parts[PartSecret+sv.Name+"/"+sv.Key] = hex.EncodeToString(m.Sum(nil))[:16]
	}
	if tokenUID != "" {
		parts[PartToken] = tokenUID
	}
	name := sha256.Sum256([]byte(FormatParts(parts)))
	return Revision{
		Name: hex.EncodeToString(name[:])[:10], Parts: parts,
		Catalog: s.Name + "-catalog-" + parts[PartCatalog][:10],
	}, nil
}

// FormatParts writes parts as AnnotationRevisionParts holds them:
// "part=digest" pairs, sorted, comma-separated.
func FormatParts(parts map[string]string) string {
	keys := make([]string, 0, len(parts))
	for k := range parts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(k + "=" + parts[k])
	}
	return b.String()
}

// ParseParts reads AnnotationRevisionParts.
func ParseParts(v string) map[string]string {
	out := map[string]string{}
	for _, kv := range strings.Split(v, ",") {
		if k, d, ok := strings.Cut(kv, "="); ok {
			out[k] = d
		}
	}
	return out
}

// Differences says, in words, what differs between two revisions' parts:
// "the engine template", "the catalog", "the Redis settings", "Secret
// redis-auth key password", "the event logger's token".
func Differences(from, to map[string]string) []string {
	keys := map[string]bool{}
	for k := range from {
		keys[k] = true
	}
	for k := range to {
		keys[k] = true
	}
	var out []string
	for _, k := range sortedKeys(keys) {
		if from[k] == to[k] {
			continue
		}
		switch {
		case k == PartTemplate:
			out = append(out, "the engine template")
		case k == PartCatalog:
			out = append(out, "the catalog")
		case k == PartRedis:
			out = append(out, "the Redis settings")
		case k == PartToken:
			out = append(out, "the event logger's token")
		case strings.HasPrefix(k, PartSecret):
			name, key, _ := strings.Cut(strings.TrimPrefix(k, PartSecret), "/")
			out = append(out, fmt.Sprintf("Secret %s key %s", name, key))
		default:
			out = append(out, k)
		}
	}
	return out
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Annotations are the pod template annotations of the revision.
func (r Revision) Annotations() map[string]string {
	return map[string]string{AnnotationRevision: r.Name, AnnotationRevisionParts: FormatParts(r.Parts)}
}

// CatalogConfigMap is the catalog of a revision, which the Strategy's
// pods mount: named for its digest (Revision.Catalog) and immutable, so a
// running pod's catalog never changes under it.
func CatalogConfigMap(s *stratv1.Strategy, name string, catalogJSON []byte) *corev1ac.ConfigMapApplyConfiguration {
	return corev1ac.ConfigMap(name, s.Namespace).
		WithLabels(ObjectLabels(s, ComponentCatalog)).WithOwnerReferences(owner(s)).
		WithImmutable(true).
		WithData(map[string]string{messaging.CatalogFileName: string(catalogJSON)})
}

// CatalogsIn lists the catalog ConfigMaps a pod spec mounts.
func CatalogsIn(p corev1.PodSpec) []string {
	var out []string
	for _, v := range p.Volumes {
		if v.ConfigMap != nil && v.Name == volumeNames["/etc/stratops"] {
			out = append(out, v.ConfigMap.Name)
		}
	}
	return out
}
