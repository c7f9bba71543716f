// Package install tests what a platform team installs and watches
// stratops with: the Helm chart, the alert rules' metric names, the
// Grafana dashboard and the Argo CD health check. Its tests read the files
// under config/ and charts/ and run them against real tools (helm,
// kustomize, kube-apiserver, gopher-lua, the binaries' own metrics).
package install
