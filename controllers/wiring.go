package controllers

import (
	"crypto/sha256"
	"encoding/hex"
	"path"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"

	stratv1 "github.com/stratops/stratops/api/v1"
	"github.com/stratops/stratops/pkg/messaging"
)

// volumeNames name the volumes of the files of the pod contract, by the
// directory they are mounted in.
var volumeNames = map[string]string{
	path.Dir(messaging.CatalogPath): "catalog",
	path.Dir(messaging.RedisCAPath): "redis-ca",
}

const tmpVolume = "tmp"

// wiring is what a pod of a Strategy (event logger or engine) needs to
// follow the standard without hand wiring: the pod contract of package
// messaging (PodEnv) in corev1 terms: environment variables, the password
// through a secretKeyRef, the catalog and the CA as files from volumes.
type wiring struct {
	env     []corev1.EnvVar
	volumes []corev1.Volume
	mounts  []corev1.VolumeMount
}

// redisEnvFor is the Strategy's Redis as the pod contract carries it: the
// one conversion from spec.redis, for the pods and (resolved with the
// Secrets' values) for the operator's own probes.
func redisEnvFor(s *stratv1.Strategy) messaging.RedisEnv {
	r := s.Spec.Redis
	e := messaging.RedisEnv{
		Topology: string(r.Topology), Addrs: r.Addresses, MasterName: r.SentinelMasterName,
		DB: int(r.DB), Username: r.Username,
	}
	if r.Topology == stratv1.TopologyStandalone || r.Topology == "" {
		e.Addrs = []string{r.Address}
	}
	if r.DialTimeout != nil {
		e.DialTimeout = r.DialTimeout.Duration
	}
	if ref := r.PasswordSecretRef; ref != nil {
		e.Password = &messaging.SecretKeyRef{Name: ref.Name, Key: ref.Key}
	}
	if t := r.TLS; t != nil && t.Enabled {
		e.TLS, e.ServerName, e.InsecureSkipVerify = true, t.ServerName, t.InsecureSkipVerify
		if ref := t.CASecretRef; ref != nil {
			e.CA = &messaging.SecretKeyRef{Name: ref.Name, Key: ref.Key}
		}
	}
	return e
}

// podEnvFor is what a pod of the Strategy is handed; withRedis false gives
// it no Redis (a backtest on the in-memory bus).
func podEnvFor(s *stratv1.Strategy, withRedis bool) messaging.PodEnv {
	p := messaging.PodEnv{
		Mode:    messaging.Mode(s.Spec.Mode),
		Catalog: messaging.FileRef{ConfigMap: catalogName(s), Key: messaging.CatalogFileName, Path: messaging.CatalogPath},
	}
	if withRedis && s.Spec.Redis != nil {
		p.KeyPrefix = s.Spec.Redis.KeyPrefix
		p.Redis = new(redisEnvFor(s))
	}
	return p
}

// podWiring maps the pod contract to corev1: each variable, the Secret
// references, and a volume with its mount for each directory of files.
func podWiring(p messaging.PodEnv) wiring {
	var w wiring
	mounted := map[string]bool{}
	for _, e := range p.Env() {
		v := corev1.EnvVar{Name: e.Name, Value: e.Value}
		if ref := e.Secret; ref != nil {
			v.Value = ""
			v.ValueFrom = &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
				LocalObjectReference: corev1.LocalObjectReference{Name: ref.Name}, Key: ref.Key,
			}}
		}
		w.env = append(w.env, v)
		if f := e.File; f != nil && !mounted[f.Dir()] {
			mounted[f.Dir()] = true
			name := volumeNames[f.Dir()]
			if name == "" {
				name = path.Base(f.Dir())
			}
			w.volumes = append(w.volumes, fileVolume(name, *f))
			w.mounts = append(w.mounts, corev1.VolumeMount{Name: name, MountPath: f.Dir(), ReadOnly: true})
		}
	}
	return w
}

// fileVolume is the volume that puts a file of the contract at its path.
// A ConfigMap whose key is already the file's name is mounted whole, as
// the catalog always has been; a Secret shows only the one key.
func fileVolume(name string, f messaging.FileRef) corev1.Volume {
	file := path.Base(f.Path)
	if f.Secret != "" {
		return corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
			SecretName: f.Secret, Items: []corev1.KeyToPath{{Key: f.Key, Path: file}}, DefaultMode: ptr.To[int32](0o444),
		}}}
	}
	cm := &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: f.ConfigMap}}
	if f.Key != file {
		cm.Items = []corev1.KeyToPath{{Key: f.Key, Path: file}}
	}
	return corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{ConfigMap: cm}}
}

// configHash changes whenever the catalog or a referenced Secret changes.
// It hashes the Secrets' resource versions, never their contents.
func configHash(catalogJSON []byte, secrets []resolvedSecret) string {
	h := sha256.New()
	h.Write(catalogJSON)
	for _, s := range secrets {
		h.Write([]byte{0})
		h.Write([]byte(s.ref.Name + "/" + s.resourceVersion))
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// restrictedContainerSecurity satisfies the restricted Pod Security Standard.
func restrictedContainerSecurity() *corev1.SecurityContext {
	return &corev1.SecurityContext{
		AllowPrivilegeEscalation: ptr.To(false),
		ReadOnlyRootFilesystem:   ptr.To(true),
		RunAsNonRoot:             ptr.To(true),
		Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
		SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
}

// restrictedPodSecurity is the pod-level half of the restricted standard.
// 65532 is the nonroot user of the operator's distroless image.
func restrictedPodSecurity() *corev1.PodSecurityContext {
	return &corev1.PodSecurityContext{
		RunAsNonRoot:   ptr.To(true),
		RunAsUser:      ptr.To[int64](65532),
		RunAsGroup:     ptr.To[int64](65532),
		FSGroup:        ptr.To[int64](65532),
		SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
}
