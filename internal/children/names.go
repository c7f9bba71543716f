package children

import (
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"

	stratv1 "github.com/stratops/stratops/api/v1"
)

// Label and annotation keys the operator puts on what it creates.
const (
	LabelName      = "app.kubernetes.io/name"
	LabelInstance  = "app.kubernetes.io/instance"
	LabelComponent = "app.kubernetes.io/component"
	LabelManagedBy = "app.kubernetes.io/managed-by"
	LabelPartOf    = "app.kubernetes.io/part-of"
	LabelStrategy  = "stratops.dev/strategy"

	// AnnotationConfigHash on a pod template changes whenever the catalog
	// or a referenced Secret changes, so that the pods roll.
	AnnotationConfigHash = "stratops.dev/config-hash"
	// AnnotationStrategyGeneration on the logger Deployment is the
	// Strategy generation it was rolled out for.
	AnnotationStrategyGeneration = "stratops.dev/strategy-generation"

	// ManagerName is the operator's name: the managed-by label and its
	// field manager.
	ManagerName = "stratops"

	ComponentEventLogger = "event-logger"
	ComponentEngine      = "engine"
	ComponentCatalog     = "catalog"

	// EventLoggerPortName names the logger's HTTP port.
	EventLoggerPortName = "http"
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
func CatalogName(s *stratv1.Strategy) string     { return s.Name + "-catalog" }
func EngineName(s *stratv1.Strategy) string      { return s.Name + "-engine" }

// owner is the controller reference every child carries: deleting the
// Strategy deletes them.
func owner(s *stratv1.Strategy) *metav1ac.OwnerReferenceApplyConfiguration {
	return metav1ac.OwnerReference().
		WithAPIVersion(stratv1.GroupVersion.String()).WithKind("Strategy").
		WithName(s.Name).WithUID(s.UID).
		WithController(true).WithBlockOwnerDeletion(true)
}
