package controllers

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"

	stratv1 "github.com/stratops/stratops/api/v1"
	"github.com/stratops/stratops/internal/eventlogger"
)

const (
	catalogVolume   = "catalog"
	catalogMountDir = "/etc/stratops"
	redisCAVolume   = "redis-ca"
	redisCAMountDir = "/etc/stratops/redis-ca"
	tmpVolume       = "tmp"
)

// wiring is what a pod of a Strategy (event logger or engine) needs to
// follow the standard without hand wiring: the catalog mounted from the
// ConfigMap, the Redis connection as environment variables, the password
// through a secretKeyRef and the CA through a Secret volume.
type wiring struct {
	env     []corev1.EnvVar
	volumes []corev1.Volume
	mounts  []corev1.VolumeMount
}

// podWiring wires a pod; withRedis false gives it no Redis (a backtest on
// the in-memory bus).
func podWiring(s *stratv1.Strategy, withRedis bool) wiring {
	w := wiring{
		env: []corev1.EnvVar{
			{Name: eventlogger.EnvMode, Value: string(s.Spec.Mode)},
			{Name: eventlogger.EnvCatalogFile, Value: catalogMountDir + "/" + eventlogger.CatalogFileName},
		},
		volumes: []corev1.Volume{{
			Name: catalogVolume,
			VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
				LocalObjectReference: corev1.LocalObjectReference{Name: catalogName(s)},
			}},
		}},
		mounts: []corev1.VolumeMount{{Name: catalogVolume, MountPath: catalogMountDir, ReadOnly: true}},
	}
	if !withRedis || s.Spec.Redis == nil {
		return w
	}
	r := s.Spec.Redis
	add := func(name, value string) {
		if value != "" {
			w.env = append(w.env, corev1.EnvVar{Name: name, Value: value})
		}
	}
	add(eventlogger.EnvKeyPrefix, r.KeyPrefix)
	add(eventlogger.EnvRedisTopology, string(r.Topology))
	addrs := r.Addresses
	if r.Topology == stratv1.TopologyStandalone || r.Topology == "" {
		addrs = []string{r.Address}
	}
	add(eventlogger.EnvRedisAddrs, strings.Join(addrs, ","))
	add(eventlogger.EnvRedisMasterName, r.SentinelMasterName)
	if r.DB != 0 {
		add(eventlogger.EnvRedisDB, strconv.Itoa(int(r.DB)))
	}
	add(eventlogger.EnvRedisUsername, r.Username)
	if r.DialTimeout != nil {
		add(eventlogger.EnvRedisDialTimeout, r.DialTimeout.Duration.String())
	}
	if ref := r.PasswordSecretRef; ref != nil {
		w.env = append(w.env, corev1.EnvVar{
			Name: eventlogger.EnvRedisPassword,
			ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
				LocalObjectReference: corev1.LocalObjectReference{Name: ref.Name},
				Key:                  ref.Key,
			}},
		})
	}
	if t := r.TLS; t != nil && t.Enabled {
		add(eventlogger.EnvRedisTLS, "true")
		add(eventlogger.EnvRedisTLSServer, t.ServerName)
		if t.InsecureSkipVerify {
			add(eventlogger.EnvRedisTLSInsecure, "true")
		}
		if ref := t.CASecretRef; ref != nil {
			w.volumes = append(w.volumes, corev1.Volume{
				Name: redisCAVolume,
				VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
					SecretName:  ref.Name,
					Items:       []corev1.KeyToPath{{Key: ref.Key, Path: "ca.crt"}},
					DefaultMode: ptr.To[int32](0o444),
				}},
			})
			w.mounts = append(w.mounts, corev1.VolumeMount{Name: redisCAVolume, MountPath: redisCAMountDir, ReadOnly: true})
			add(eventlogger.EnvRedisTLSCAFile, redisCAMountDir+"/ca.crt")
		}
	}
	return w
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
