package children

import (
	"strconv"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/intstr"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"
	policyv1ac "k8s.io/client-go/applyconfigurations/policy/v1"

	stratv1 "github.com/stratops/stratops/api/v1"
	"github.com/stratops/stratops/internal/eventlogger/settings"
	"github.com/stratops/stratops/pkg/messaging"
)

// EventLoggerBinary is the event logger's path in the operator's image.
const EventLoggerBinary = "/eventlogger"

// EventLoggerServiceAccount is the logger's own ServiceAccount, with no
// token: the logger never talks to the API server.
func EventLoggerServiceAccount(s *stratv1.Strategy) *corev1ac.ServiceAccountApplyConfiguration {
	return corev1ac.ServiceAccount(EventLoggerName(s), s.Namespace).
		WithLabels(ObjectLabels(s, ComponentEventLogger)).WithOwnerReferences(owner(s)).
		WithAutomountServiceAccountToken(false)
}

// EventLoggerTokenSecret holds the bearer token of the logger's API, which
// the logger requires and the engine is given. Immutable: the token
// changes only if the Secret is deleted, and then the pods roll with the
// new one (its UID is in their config hash).
func EventLoggerTokenSecret(s *stratv1.Strategy, token string) *corev1ac.SecretApplyConfiguration {
	return corev1ac.Secret(EventLoggerTokenName(s), s.Namespace).
		WithLabels(ObjectLabels(s, ComponentEventLogger)).WithOwnerReferences(owner(s)).
		WithType(corev1.SecretTypeOpaque).WithImmutable(true).
		WithData(map[string][]byte{EventLoggerTokenKey: []byte(token)})
}

// EventLoggerService is the logger's address in the cluster: the API
// port and the health and metrics port.
func EventLoggerService(s *stratv1.Strategy) *corev1ac.ServiceApplyConfiguration {
	return corev1ac.Service(EventLoggerName(s), s.Namespace).
		WithLabels(ObjectLabels(s, ComponentEventLogger)).WithOwnerReferences(owner(s)).
		WithSpec(corev1ac.ServiceSpec().
			WithType(corev1.ServiceTypeClusterIP).
			WithSelector(SelectorLabels(s, ComponentEventLogger)).
			WithPorts(
				corev1ac.ServicePort().WithName(EventLoggerPortName).WithPort(messaging.EventLoggerPort).
					WithTargetPort(intstr.FromString(EventLoggerPortName)).WithProtocol(corev1.ProtocolTCP),
				corev1ac.ServicePort().WithName(EventLoggerHealthPortName).WithPort(messaging.EventLoggerHealthPort).
					WithTargetPort(intstr.FromString(EventLoggerHealthPortName)).WithProtocol(corev1.ProtocolTCP)))
}

// EventLoggerDeployment is the logger's Deployment. withRedis false runs
// it on its in-memory bus (a backtest without Redis).
func EventLoggerDeployment(s *stratv1.Strategy, image string, rev Revision, withRedis bool) *appsv1ac.DeploymentApplyConfiguration {
	pe := PodEnv(s, withRedis, rev.Catalog)
	pe.EventLoggerToken = EventLoggerTokenRef(s)
	pe.LogLevel = string(LogLevel(s))
	pe.HealthInterval = HealthCheckInterval(s)
	w := podWiring(pe)
	probe := func(path string, period int32) *corev1ac.ProbeApplyConfiguration {
		return corev1ac.Probe().
			WithHTTPGet(corev1ac.HTTPGetAction().WithPath(path).WithPort(intstr.FromString(EventLoggerHealthPortName)).WithScheme(corev1.URISchemeHTTP)).
			WithPeriodSeconds(period).WithTimeoutSeconds(2).WithFailureThreshold(3).WithSuccessThreshold(1)
	}
	spool := SpoolSize(s)
	c := corev1ac.Container().WithName("eventlogger").WithImage(image).WithImagePullPolicy(corev1.PullIfNotPresent).
		WithCommand(EventLoggerBinary).WithEnv(w.env...).
		WithEnv(loggerSettingsEnv(spool)...).
		WithPorts(corev1ac.ContainerPort().WithName(EventLoggerPortName).WithContainerPort(messaging.EventLoggerPort).WithProtocol(corev1.ProtocolTCP),
			corev1ac.ContainerPort().WithName(EventLoggerHealthPortName).WithContainerPort(messaging.EventLoggerHealthPort).WithProtocol(corev1.ProtocolTCP)).
		WithLivenessProbe(probe("/healthz", 10)).WithReadinessProbe(probe("/readyz", 5)).
		WithSecurityContext(restrictedContainerSecurity()).
		WithVolumeMounts(w.mounts...).WithVolumeMounts(corev1ac.VolumeMount().WithName("tmp").WithMountPath("/tmp"),
		corev1ac.VolumeMount().WithName("spool").WithMountPath(SpoolMountPath))
	if rr := resources(s.Spec.EventLogger.Resources); rr != nil {
		c.WithResources(rr)
	}
	labels := ObjectLabels(s, ComponentEventLogger)
	return appsv1ac.Deployment(EventLoggerName(s), s.Namespace).
		WithLabels(labels).WithOwnerReferences(owner(s)).
		WithAnnotations(map[string]string{AnnotationStrategyGeneration: strconv.FormatInt(s.Generation, 10)}).
		WithSpec(appsv1ac.DeploymentSpec().
			WithReplicas(EventLoggerReplicas(s)).
			WithSelector(metav1ac.LabelSelector().WithMatchLabels(SelectorLabels(s, ComponentEventLogger))).
			WithStrategy(appsv1ac.DeploymentStrategy().WithType(appsv1.RollingUpdateDeploymentStrategyType)).
			WithTemplate(corev1ac.PodTemplateSpec().
				WithLabels(labels).WithAnnotations(rev.Annotations()).
				WithSpec(corev1ac.PodSpec().
					WithServiceAccountName(EventLoggerName(s)).WithAutomountServiceAccountToken(false).
					WithSecurityContext(restrictedPodSecurity()).
					// Replicas on different nodes where there are several:
					// a standby on the leader's node dies with it.
					WithTopologySpreadConstraints(corev1ac.TopologySpreadConstraint().
						WithMaxSkew(1).WithTopologyKey(corev1.LabelHostname).WithWhenUnsatisfiable(corev1.ScheduleAnyway).
						WithLabelSelector(metav1ac.LabelSelector().WithMatchLabels(SelectorLabels(s, ComponentEventLogger)))).
					// SIGTERM stops ingest, then the logger writes what
					// waits to the history for up to its drain timeout;
					// the grace period covers that and the stats' flush.
					WithTerminationGracePeriodSeconds(int64((EventLoggerDrainTimeout + 15*time.Second).Seconds())).
					WithContainers(c).
					WithVolumes(w.volumes...).
					WithVolumes(corev1ac.Volume().WithName("tmp").WithEmptyDir(corev1ac.EmptyDirVolumeSource())).
					WithVolumes(corev1ac.Volume().WithName("spool").WithEmptyDir(corev1ac.EmptyDirVolumeSource().WithSizeLimit(spool))))))
}

// SpoolMountPath is where the logger's spool volume is mounted.
const SpoolMountPath = "/var/spool/stratops"

// EventLoggerDrainTimeout is how long a stopping logger keeps writing what
// waits to the history.
const EventLoggerDrainTimeout = 45 * time.Second

// DefaultSpoolSize is the logger's spool room when the spec sets none.
var DefaultSpoolSize = resource.MustParse("256Mi")

// loggerSettingsEnv are the logger's own settings (package settings, the
// codec the logger reads them with): its spool on the pod's volume, its
// drain, and its name in the lease, the pod's own (the replica that
// records is named in status.eventLogger.leader).
func loggerSettingsEnv(spool resource.Quantity) []*corev1ac.EnvVarApplyConfiguration {
	st := settings.Defaults()
	st.SpoolDir = SpoolMountPath
	// The spool's own limit stays under the volume's, which the kubelet
	// enforces by evicting the pod: a tenth is left for a segment being
	// rotated and the spool's own files.
	st.SpoolMaxBytes = spool.Value() * 9 / 10
	st.DrainTimeout = EventLoggerDrainTimeout
	st.PodNameFromPod = true
	var out []*corev1ac.EnvVarApplyConfiguration
	for _, e := range st.Env() {
		v := corev1ac.EnvVar().WithName(e.Name)
		if e.FieldPath != "" {
			v.WithValueFrom(corev1ac.EnvVarSource().WithFieldRef(corev1ac.ObjectFieldSelector().WithAPIVersion("v1").WithFieldPath(e.FieldPath)))
		} else {
			v.WithValue(e.Value)
		}
		out = append(out, v)
	}
	return out
}

// SpoolSize is the spec's spool size, or the default.
func SpoolSize(s *stratv1.Strategy) resource.Quantity {
	if q := s.Spec.EventLogger.SpoolSize; q != nil {
		return *q
	}
	return DefaultSpoolSize
}

// resources is the spec's resource requirements as an apply
// configuration, nil when none is set.
func resources(r corev1.ResourceRequirements) *corev1ac.ResourceRequirementsApplyConfiguration {
	if len(r.Limits) == 0 && len(r.Requests) == 0 && len(r.Claims) == 0 {
		return nil
	}
	ac := corev1ac.ResourceRequirements()
	if len(r.Limits) > 0 {
		ac.WithLimits(r.Limits)
	}
	if len(r.Requests) > 0 {
		ac.WithRequests(r.Requests)
	}
	for _, c := range r.Claims {
		ac.WithClaims(corev1ac.ResourceClaim().WithName(c.Name).WithRequest(c.Request))
	}
	return ac
}

// LogLevel is the logger's log level, info when unset.
func LogLevel(s *stratv1.Strategy) stratv1.LogLevel {
	if s.Spec.EventLogger.LogLevel == "" {
		return "info"
	}
	return s.Spec.EventLogger.LogLevel
}

// EventLoggerReplicas is the spec's replica count, 1 when unset.
func EventLoggerReplicas(s *stratv1.Strategy) int32 {
	if s.Spec.EventLogger.Replicas == nil {
		return 1
	}
	return *s.Spec.EventLogger.Replicas
}

// EventLoggerPodDisruptionBudget keeps one replica of several up through a
// node drain: the standby takes over while the other moves.
func EventLoggerPodDisruptionBudget(s *stratv1.Strategy) *policyv1ac.PodDisruptionBudgetApplyConfiguration {
	return policyv1ac.PodDisruptionBudget(EventLoggerName(s), s.Namespace).
		WithLabels(ObjectLabels(s, ComponentEventLogger)).WithOwnerReferences(owner(s)).
		WithSpec(policyv1ac.PodDisruptionBudgetSpec().
			WithMaxUnavailable(intstr.FromInt32(1)).
			WithSelector(metav1ac.LabelSelector().WithMatchLabels(SelectorLabels(s, ComponentEventLogger))))
}
