package controllers

import (
	stratv1 "github.com/stratops/stratops/api/v1"
)

// Label and annotation keys the operator puts on what it creates.
const (
	labelName      = "app.kubernetes.io/name"
	labelInstance  = "app.kubernetes.io/instance"
	labelComponent = "app.kubernetes.io/component"
	labelManagedBy = "app.kubernetes.io/managed-by"
	labelPartOf    = "app.kubernetes.io/part-of"
	labelStrategy  = "stratops.dev/strategy"

	// annotationConfigHash on a pod template changes whenever the catalog
	// or a referenced Secret changes, so that the pods roll.
	annotationConfigHash = "stratops.dev/config-hash"
	// annotationStrategyGeneration on the logger Deployment is the Strategy
	// generation it was rolled out for.
	annotationStrategyGeneration = "stratops.dev/strategy-generation"

	managerName         = "stratops"
	componentEventLog   = "event-logger"
	componentEngine     = "engine"
	componentCatalog    = "catalog"
	eventLoggerSuffix   = "-eventlogger"
	catalogSuffix       = "-catalog"
	engineSuffix        = "-engine"
	eventLoggerPortName = "http"
)

// selectorLabels select one component of one Strategy. They go into
// immutable Deployment selectors: never change them.
func selectorLabels(s *stratv1.Strategy, component string) map[string]string {
	return map[string]string{
		labelName:      managerName,
		labelInstance:  s.Name,
		labelComponent: component,
	}
}

// objectLabels are the standard labels of a child object.
func objectLabels(s *stratv1.Strategy, component string) map[string]string {
	l := selectorLabels(s, component)
	l[labelManagedBy] = managerName
	l[labelPartOf] = managerName
	l[labelStrategy] = s.Name
	return l
}

func eventLoggerName(s *stratv1.Strategy) string { return s.Name + eventLoggerSuffix }
func catalogName(s *stratv1.Strategy) string     { return s.Name + catalogSuffix }
func engineName(s *stratv1.Strategy) string      { return s.Name + engineSuffix }
