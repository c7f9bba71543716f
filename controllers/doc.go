// Package controllers holds the StrategyReconciler: it turns a Strategy
// into its children (the catalog ConfigMap, the event logger's
// ServiceAccount, Service and Deployment, the engine's Deployment or Job),
// written by server-side apply from the builders of package children, and
// reports, in the Strategy's status, what runs and what is wrong, following
// kstatus so that kubectl wait and GitOps tools can read it. The decisions
// (the Redis verdict, the summary) are package lifecycle's; this package
// does the I/O around them. Setup wires it into a manager.
package controllers
