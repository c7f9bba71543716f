package children

import (
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"

	stratv1 "github.com/stratops/stratops/api/v1"
	"github.com/stratops/stratops/pkg/messaging"
)

// Label and annotation keys the operator puts on what it creates.
const (
	LabelName      = "app.kubernetes.io/name"
	LabelInstance  = "app.kubernetes.io/instance"
	LabelComponent = "app.kubernetes.io/component"
	LabelManagedBy = "app.kubernetes.io/managed-by"
	LabelPartOf    = "app.kubernetes.io/part-of"
	LabelStrategy  = "stratops.dev/strategy"

	// AnnotationStrategyGeneration on the logger Deployment is the
	// Strategy generation it was rolled out for.
	AnnotationStrategyGeneration = "stratops.dev/strategy-generation"

	// ManagerName is the operator's name: the managed-by label and its
	// field manager.
	ManagerName = "stratops"

	ComponentEventLogger = "event-logger"
	ComponentEngine      = "engine"
	ComponentCatalog     = "catalog"

	// EventLoggerPortName names the logger's API port (state and events,
	// behind the token); EventLoggerHealthPortName its health and metrics
	// port.
	EventLoggerPortName       = "http"
	EventLoggerHealthPortName = "metrics"

	// EventLoggerTokenKey is the key of the logger's API token in its
	// Secret.
	EventLoggerTokenKey = "token"
)

// SelectorLabels select one component of one Strategy. They go into
// immutable Deployment selectors: never change them.
func SelectorLabels(s *stratv1.Strategy, component string) map[string]string {
	return map[string]string{
		LabelName:      ManagerName,
		LabelInstance:  s.Name,
		LabelComponent: component,
	}
}

// ObjectLabels are the standard labels of a child object.
func ObjectLabels(s *stratv1.Strategy, component string) map[string]string {
	l := SelectorLabels(s, component)
	l[LabelManagedBy] = ManagerName
	l[LabelPartOf] = ManagerName
	l[LabelStrategy] = s.Name
	return l
}

// Names of a Strategy's children.
func EventLoggerName(s *stratv1.Strategy) string { return s.Name + "-eventlogger" }
func EngineName(s *stratv1.Strategy) string      { return s.Name + "-engine" }

// EventLoggerTokenName is the Secret holding the logger's API token.
func EventLoggerTokenName(s *stratv1.Strategy) string { return s.Name + "-eventlogger-token" }

// EventLoggerTokenRef is the token's Secret key, as the pods get it.
func EventLoggerTokenRef(s *stratv1.Strategy) *messaging.SecretKeyRef {
	return &messaging.SecretKeyRef{Name: EventLoggerTokenName(s), Key: EventLoggerTokenKey}
}

// owner is the controller reference every child carries: deleting the
// Strategy deletes them.
func owner(s *stratv1.Strategy) *metav1ac.OwnerReferenceApplyConfiguration {
	return metav1ac.OwnerReference().
		WithAPIVersion(stratv1.GroupVersion.String()).WithKind("Strategy").
		WithName(s.Name).WithUID(s.UID).
		WithController(true).WithBlockOwnerDeletion(true)
}
