package controllers

import (
	"context"
	"fmt"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	stratv1 "github.com/stratops/stratops/api/v1"
	"github.com/stratops/stratops/internal/lifecycle"
	"github.com/stratops/stratops/pkg/messaging"
)

// reconcileEventLogger provisions the event logger and sets
// EventLoggerReady from its Deployment.
func (r *StrategyReconciler) reconcileEventLogger(ctx context.Context, sc *scope) (ctrl.Result, error) {
	s := sc.strategy
	image := s.Spec.EventLogger.Image
	if image == "" {
		image = r.EventLoggerImage
	}
	replicas := eventLoggerReplicas(s)
	objs := []client.Object{desiredCatalogConfigMap(s, sc.catalogJSON), desiredServiceAccount(s), desiredEventLoggerService(s)}
	if sc.redisState != lifecycle.RedisGated {
		// The gate: a Live strategy's logger rolls out only once Redis
		// proved itself.
		objs = append(objs, desiredEventLoggerDeployment(s, image, replicas, sc.configHash, sc.redis != nil))
	}
	var dep *appsv1.Deployment
	for _, obj := range objs {
		live, err := r.ensure(ctx, s, obj)
		if err != nil {
			return ctrl.Result{}, err
		}
		if d, ok := live.(*appsv1.Deployment); ok {
			dep = d
		}
	}
	if dep == nil {
		s.Status.EventLogger = &stratv1.WorkloadStatus{Replicas: 0}
		lifecycle.SetCondition(s, stratv1.ConditionEventLoggerReady, false, stratv1.ReasonGated, "The event logger waits for Redis to pass its probes")
		return ctrl.Result{}, nil
	}
	sc.loggerListening = dep.Status.AvailableReplicas > 0
	ready, msg := deploymentAvailable(dep, replicas)
	s.Status.EventLogger = &stratv1.WorkloadStatus{Replicas: replicas, ReadyReplicas: dep.Status.AvailableReplicas}
	if ready {
		lifecycle.SetCondition(s, stratv1.ConditionEventLoggerReady, true, stratv1.ReasonEventLoggerAvailable,
			fmt.Sprintf("Deployment %s has %d/%d replicas available", dep.Name, dep.Status.AvailableReplicas, replicas))
	} else {
		lifecycle.SetCondition(s, stratv1.ConditionEventLoggerReady, false, stratv1.ReasonEventLoggerNotReady, msg)
	}
	return ctrl.Result{}, nil
}

// deploymentAvailable reports whether a Deployment has rolled out its
// current template with every replica available, and if not, why.
func deploymentAvailable(d *appsv1.Deployment, want int32) (bool, string) {
	switch {
	case d.Status.ObservedGeneration < d.Generation:
		return false, fmt.Sprintf("Deployment %s: waiting for the deployment controller to observe generation %d", d.Name, d.Generation)
	case d.Status.UpdatedReplicas < want:
		return false, fmt.Sprintf("Deployment %s: %d/%d replicas updated", d.Name, d.Status.UpdatedReplicas, want)
	case d.Status.AvailableReplicas < want:
		return false, fmt.Sprintf("Deployment %s: %d/%d replicas available", d.Name, d.Status.AvailableReplicas, want)
	case d.Status.Replicas > d.Status.UpdatedReplicas:
		return false, fmt.Sprintf("Deployment %s: %d old replicas pending termination", d.Name, d.Status.Replicas-d.Status.UpdatedReplicas)
	}
	return true, ""
}

// eventLoggerBinary is the event logger's path in the operator's image.
const eventLoggerBinary = "/eventlogger"

func desiredCatalogConfigMap(s *stratv1.Strategy, catalogJSON []byte) *corev1.ConfigMap {
	return &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{
			Name: catalogName(s), Namespace: s.Namespace,
			Labels: objectLabels(s, componentCatalog),
		},
		Data: map[string]string{messaging.CatalogFileName: string(catalogJSON)},
	}
}

func desiredServiceAccount(s *stratv1.Strategy) *corev1.ServiceAccount {
	return &corev1.ServiceAccount{
		ObjectMeta: metav1.ObjectMeta{
			Name: eventLoggerName(s), Namespace: s.Namespace,
			Labels: objectLabels(s, componentEventLog),
		},
		// The event logger never talks to the API server.
		AutomountServiceAccountToken: ptr.To(false),
	}
}

func desiredEventLoggerService(s *stratv1.Strategy) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{
			Name: eventLoggerName(s), Namespace: s.Namespace,
			Labels: objectLabels(s, componentEventLog),
		},
		Spec: corev1.ServiceSpec{
			Type:     corev1.ServiceTypeClusterIP,
			Selector: selectorLabels(s, componentEventLog),
			Ports: []corev1.ServicePort{{
				Name: eventLoggerPortName, Port: messaging.EventLoggerPort,
				TargetPort: intstr.FromString(eventLoggerPortName), Protocol: corev1.ProtocolTCP,
			}},
		},
	}
}

// desiredEventLoggerDeployment is the event logger's Deployment. replicas
// is what the reconciler decided (spec.eventLogger.replicas, or 0 while a
// Live strategy is gated).
func desiredEventLoggerDeployment(s *stratv1.Strategy, image string, replicas int32, hash string, withRedis bool) *appsv1.Deployment {
	pe := podEnvFor(s, withRedis)
	pe.LogLevel = string(logLevel(s))
	pe.HealthInterval = healthCheckInterval(s)
	w := podWiring(pe)
	env := w.env
	volumes := append(w.volumes, corev1.Volume{
		Name: tmpVolume, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}},
	})
	mounts := append(w.mounts, corev1.VolumeMount{Name: tmpVolume, MountPath: "/tmp"})
	probe := func(path string, period int32) *corev1.Probe {
		return &corev1.Probe{
			ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
				Path: path, Port: intstr.FromString(eventLoggerPortName), Scheme: corev1.URISchemeHTTP,
			}},
			PeriodSeconds: period, TimeoutSeconds: 2, FailureThreshold: 3, SuccessThreshold: 1,
		}
	}
	labels := objectLabels(s, componentEventLog)
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: eventLoggerName(s), Namespace: s.Namespace, Labels: labels,
			Annotations: map[string]string{annotationStrategyGeneration: strconv.FormatInt(s.Generation, 10)}},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: selectorLabels(s, componentEventLog)},
			Strategy: appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{
					Labels:      labels,
					Annotations: map[string]string{annotationConfigHash: hash},
				},
				Spec: corev1.PodSpec{
					ServiceAccountName:           eventLoggerName(s),
					AutomountServiceAccountToken: ptr.To(false),
					SecurityContext:              restrictedPodSecurity(),
					// Gives the logger time to flush stats and queued events.
					TerminationGracePeriodSeconds: ptr.To[int64](30),
					Containers: []corev1.Container{{
						Name:            "eventlogger",
						Image:           image,
						ImagePullPolicy: corev1.PullIfNotPresent,
						Command:         []string{eventLoggerBinary},
						Env:             env,
						Ports: []corev1.ContainerPort{{
							Name: eventLoggerPortName, ContainerPort: messaging.EventLoggerPort, Protocol: corev1.ProtocolTCP,
						}},
						LivenessProbe:   probe("/healthz", 10),
						ReadinessProbe:  probe("/readyz", 5),
						Resources:       s.Spec.EventLogger.Resources,
						SecurityContext: restrictedContainerSecurity(),
						VolumeMounts:    mounts,
					}},
					Volumes: volumes,
				},
			},
		},
	}
}

// eventLoggerURL is the event logger's address inside the cluster.
func eventLoggerURL(s *stratv1.Strategy) string {
	return fmt.Sprintf("http://%s.%s.svc:%d", eventLoggerName(s), s.Namespace, messaging.EventLoggerPort)
}

func logLevel(s *stratv1.Strategy) stratv1.LogLevel {
	if s.Spec.EventLogger.LogLevel == "" {
		return "info"
	}
	return s.Spec.EventLogger.LogLevel
}

// eventLoggerReplicas is the spec's replica count, 1 when unset.
func eventLoggerReplicas(s *stratv1.Strategy) int32 {
	if s.Spec.EventLogger.Replicas == nil {
		return 1
	}
	return *s.Spec.EventLogger.Replicas
}
