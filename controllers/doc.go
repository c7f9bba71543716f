// Package controllers holds the StrategyReconciler: it turns a Strategy into
// its event logger (ConfigMap with the catalog, ServiceAccount, Deployment,
// Service) and reports, in the Strategy's status, what runs and what is
// wrong, following kstatus so that kubectl wait and GitOps tools can read it.
package controllers
