package children

import (
	"fmt"
	"path"
	"time"

	corev1 "k8s.io/api/core/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"

	stratv1 "github.com/stratops/stratops/api/v1"
	"github.com/stratops/stratops/pkg/messaging"
)

// volumeNames name the volumes of the files of the pod contract, by the
// directory they are mounted in.
var volumeNames = map[string]string{
	path.Dir(messaging.CatalogPath): "catalog",
	path.Dir(messaging.RedisCAPath): "redis-ca",
}

// DefaultHealthCheckInterval is spec.redis.healthCheckInterval's default.
const DefaultHealthCheckInterval = 30 * time.Second

// HealthCheckInterval is how often the Strategy's Redis, channels and keys
// are checked.
func HealthCheckInterval(s *stratv1.Strategy) time.Duration {
	if s.Spec.Redis != nil && s.Spec.Redis.HealthCheckInterval != nil && s.Spec.Redis.HealthCheckInterval.Duration > 0 {
		return s.Spec.Redis.HealthCheckInterval.Duration
	}
	return DefaultHealthCheckInterval
}

// RedisEnv is the Strategy's Redis as the pod contract carries it: the one
// conversion from spec.redis, for the pods and (resolved with the Secrets'
// values) for the operator's own probes.
func RedisEnv(s *stratv1.Strategy) messaging.RedisEnv {
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
		if ref := t.ClientCertSecretRef; ref != nil {
			e.ClientCert = &messaging.SecretKeyRef{Name: ref.Name, Key: corev1.TLSCertKey}
			e.ClientKey = &messaging.SecretKeyRef{Name: ref.Name, Key: corev1.TLSPrivateKeyKey}
		}
	}
	return e
}

// PodEnv is what a pod of the Strategy is handed, with the catalog of its
// revision (a ConfigMap); withRedis false gives it no Redis (a backtest on
// the in-memory bus).
func PodEnv(s *stratv1.Strategy, withRedis bool, catalog string) messaging.PodEnv {
	p := messaging.PodEnv{
		Mode:    messaging.Mode(s.Spec.Mode),
		Catalog: messaging.FileRef{ConfigMap: catalog, Key: messaging.CatalogFileName, Path: messaging.CatalogPath},
	}
	if withRedis && s.Spec.Redis != nil {
		p.KeyPrefix = s.Spec.Redis.KeyPrefix
		p.Redis = new(RedisEnv(s))
	}
	return p
}

// EventLoggerURL is the event logger's address inside the cluster.
func EventLoggerURL(s *stratv1.Strategy) string {
	return fmt.Sprintf("http://%s.%s.svc:%d", EventLoggerName(s), s.Namespace, messaging.EventLoggerPort)
}

// wiring is the pod contract in corev1 terms: environment variables, the
// password through a secretKeyRef, the catalog and the CA as files from
// volumes.
type wiring struct {
	env     []*corev1ac.EnvVarApplyConfiguration
	volumes []*corev1ac.VolumeApplyConfiguration
	mounts  []*corev1ac.VolumeMountApplyConfiguration
}

func podWiring(p messaging.PodEnv) wiring {
	var w wiring
	mounted := map[string]bool{}
	for _, e := range p.Env() {
		v := corev1ac.EnvVar().WithName(e.Name)
		if ref := e.Secret; ref != nil {
			v.WithValueFrom(corev1ac.EnvVarSource().WithSecretKeyRef(
				corev1ac.SecretKeySelector().WithName(ref.Name).WithKey(ref.Key)))
		} else {
			v.WithValue(e.Value)
		}
		w.env = append(w.env, v)
		if f := e.File; f != nil && !mounted[f.Dir()] {
			mounted[f.Dir()] = true
			name := volumeNames[f.Dir()]
			if name == "" {
				name = path.Base(f.Dir())
			}
			w.volumes = append(w.volumes, fileVolume(name, *f))
			w.mounts = append(w.mounts, corev1ac.VolumeMount().WithName(name).WithMountPath(f.Dir()).WithReadOnly(true))
		}
	}
	return w
}

// fileVolume is the volume that puts a file of the contract at its path.
// A ConfigMap whose key is already the file's name is mounted whole, as
// the catalog always has been; a Secret shows only the one key.
func fileVolume(name string, f messaging.FileRef) *corev1ac.VolumeApplyConfiguration {
	file := path.Base(f.Path)
	if f.Secret != "" {
		return corev1ac.Volume().WithName(name).WithSecret(corev1ac.SecretVolumeSource().
			WithSecretName(f.Secret).WithItems(corev1ac.KeyToPath().WithKey(f.Key).WithPath(file)).WithDefaultMode(0o444))
	}
	cm := corev1ac.ConfigMapVolumeSource().WithName(f.ConfigMap)
	if f.Key != file {
		cm.WithItems(corev1ac.KeyToPath().WithKey(f.Key).WithPath(file))
	}
	return corev1ac.Volume().WithName(name).WithConfigMap(cm)
}

// restrictedContainerSecurity satisfies the restricted Pod Security Standard.
func restrictedContainerSecurity() *corev1ac.SecurityContextApplyConfiguration {
	return corev1ac.SecurityContext().
		WithAllowPrivilegeEscalation(false).WithReadOnlyRootFilesystem(true).WithRunAsNonRoot(true).
		WithCapabilities(corev1ac.Capabilities().WithDrop("ALL")).
		WithSeccompProfile(corev1ac.SeccompProfile().WithType("RuntimeDefault"))
}

// restrictedPodSecurity is the pod-level half of the restricted standard.
// 65532 is the nonroot user of the operator's image.
func restrictedPodSecurity() *corev1ac.PodSecurityContextApplyConfiguration {
	return corev1ac.PodSecurityContext().
		WithRunAsNonRoot(true).WithRunAsUser(65532).WithRunAsGroup(65532).WithFSGroup(65532).
		WithSeccompProfile(corev1ac.SeccompProfile().WithType("RuntimeDefault"))
}
