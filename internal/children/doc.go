// Package children builds what a Strategy owns, as server-side apply
// configurations: the catalog ConfigMap, the event logger's ServiceAccount,
// Service and Deployment, and the engine's Deployment or Job, with the pod
// wiring of the messaging contract, labels and the restricted security
// contexts. It is pure: a Strategy in, apply configurations out, tested
// without an API server. The controller applies them.
package children
