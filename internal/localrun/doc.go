// Package localrun is what `make run` needs to show stratops at work on a
// machine without a cluster: a stand-in for the kubelet that runs each
// Strategy's event logger as a local process, with the configuration its
// Deployment carries, and reports the Deployment available only while that
// process answers /readyz. It is used only by cmd/stratops-local, against
// the local control plane that command starts itself; it is never active
// against a real cluster.
package localrun
