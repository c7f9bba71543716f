package localrun

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/stratops/stratops/internal/eventlogger/settings"
	"github.com/stratops/stratops/pkg/messaging"
)

// Kubelet runs event logger Deployments as local processes.
type Kubelet struct {
	// Client reads Deployments, ConfigMaps and Secrets and writes
	// Deployment status.
	Client client.Client
	// Binary is the event logger binary.
	Binary string
	// Dir holds each process's catalog file and logs.
	Dir string
	// Namespace limits it to one namespace. default: all of them.
	Namespace string
	Log       logr.Logger

	mu    sync.Mutex
	procs map[types.NamespacedName]*proc
}

type proc struct {
	cmd        *exec.Cmd
	port       int
	generation int64
	exited     chan struct{}
}

// Processes lists the running processes: Deployment, pid and HTTP port.
func (k *Kubelet) Processes() map[string][2]int {
	k.mu.Lock()
	defer k.mu.Unlock()
	out := map[string][2]int{}
	for key, p := range k.procs {
		out[key.String()] = [2]int{p.cmd.Process.Pid, p.port}
	}
	return out
}

// Run syncs every second until ctx ends, then stops every process.
func (k *Kubelet) Run(ctx context.Context) {
	k.mu.Lock()
	k.procs = map[types.NamespacedName]*proc{}
	k.mu.Unlock()
	defer k.stopAll()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		if err := k.sync(ctx); err != nil && ctx.Err() == nil {
			k.Log.Error(err, "Local kubelet sync failed")
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (k *Kubelet) sync(ctx context.Context) error {
	var list appsv1.DeploymentList
	if err := k.Client.List(ctx, &list, client.InNamespace(k.Namespace), client.MatchingLabels{
		"app.kubernetes.io/managed-by": "stratops", "app.kubernetes.io/component": "event-logger",
	}); err != nil {
		return err
	}
	seen := map[types.NamespacedName]bool{}
	for i := range list.Items {
		d := &list.Items[i]
		key := types.NamespacedName{Namespace: d.Namespace, Name: d.Name}
		seen[key] = true
		want := d.Spec.Replicas == nil || *d.Spec.Replicas > 0
		k.mu.Lock()
		p := k.procs[key]
		k.mu.Unlock()
		if p != nil && (!want || p.generation != d.Generation || p.hasExited()) {
			k.stop(key)
			p = nil
		}
		if want && p == nil {
			var err error
			if p, err = k.start(ctx, d); err != nil {
				k.Log.Error(err, "Starting the event logger", "deployment", key.String())
			}
		}
		if err := k.report(ctx, d, p); err != nil {
			return err
		}
	}
	k.mu.Lock()
	var gone []types.NamespacedName
	for key := range k.procs {
		if !seen[key] {
			gone = append(gone, key)
		}
	}
	k.mu.Unlock()
	for _, key := range gone {
		k.Log.Info("Deployment gone: stopping its event logger", "deployment", key.String())
		k.stop(key)
	}
	return nil
}

// start runs the Deployment's container as a process: its environment with
// Secret references resolved, its catalog ConfigMap written to a file.
func (k *Kubelet) start(ctx context.Context, d *appsv1.Deployment) (*proc, error) {
	c := d.Spec.Template.Spec.Containers[0]
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	env := []string{"PATH=" + os.Getenv("PATH")}
	base := filepath.Join(k.Dir, d.Namespace+"_"+d.Name)
	for _, e := range c.Env {
		v := e.Value
		if e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.name" {
			v = d.Name + "-local" // the pod's name, as the lease names it
		}
		if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
			var s corev1.Secret
			ref := e.ValueFrom.SecretKeyRef
			if err := k.Client.Get(ctx, types.NamespacedName{Namespace: d.Namespace, Name: ref.Name}, &s); err != nil {
				return nil, fmt.Errorf("secret %s: %w", ref.Name, err)
			}
			v = string(s.Data[ref.Key])
		}
		switch e.Name {
		case settings.EnvHTTPAddr, settings.EnvHealthAddr:
			continue // set below, on a free port
		case messaging.EnvCatalogFile:
			path, err := k.writeCatalog(ctx, d)
			if err != nil {
				return nil, err
			}
			v = path
		case settings.EnvSpoolDir:
			// The pod's emptyDir: a directory of this Deployment's own
			// under the run's state, never the path in the container.
			v = base + ".spool"
		}
		env = append(env, e.Name+"="+v)
	}
	// One port serves the API and health: the process reports ready there.
	env = append(env, settings.EnvHTTPAddr+"=127.0.0.1:"+strconv.Itoa(port), settings.EnvHealthAddr+"=")
	stdout, err := os.Create(base + ".events.log")
	if err != nil {
		return nil, err
	}
	stderr, err := os.Create(base + ".log")
	if err != nil {
		_ = stdout.Close()
		return nil, err
	}
	cmd := exec.Command(k.Binary)
	cmd.Env, cmd.Stdout, cmd.Stderr = env, stdout, stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		_ = stdout.Close()
		_ = stderr.Close()
		return nil, err
	}
	p := &proc{cmd: cmd, port: port, generation: d.Generation, exited: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		_ = stdout.Close()
		_ = stderr.Close()
		close(p.exited)
	}()
	k.mu.Lock()
	k.procs[types.NamespacedName{Namespace: d.Namespace, Name: d.Name}] = p
	k.mu.Unlock()
	k.Log.Info("Started event logger process", "deployment", d.Namespace+"/"+d.Name, "pid", cmd.Process.Pid, "http", port, "log", base+".log")
	return p, nil
}

func (k *Kubelet) writeCatalog(ctx context.Context, d *appsv1.Deployment) (string, error) {
	for _, v := range d.Spec.Template.Spec.Volumes {
		if v.ConfigMap == nil {
			continue
		}
		var cm corev1.ConfigMap
		if err := k.Client.Get(ctx, types.NamespacedName{Namespace: d.Namespace, Name: v.ConfigMap.Name}, &cm); err != nil {
			return "", fmt.Errorf("catalog ConfigMap %s: %w", v.ConfigMap.Name, err)
		}
		path := filepath.Join(k.Dir, d.Namespace+"_"+d.Name+"."+messaging.CatalogFileName)
		return path, os.WriteFile(path, []byte(cm.Data[messaging.CatalogFileName]), 0o600)
	}
	return "", fmt.Errorf("deployment %s mounts no catalog", d.Name)
}

func (p *proc) hasExited() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

// report writes the Deployment's status as a kubelet and deployment
// controller would: available only while the process answers /readyz.
func (k *Kubelet) report(ctx context.Context, d *appsv1.Deployment, p *proc) error {
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	var ready int32
	if p != nil && ready200(p.port) {
		ready = want
	}
	running := int32(0)
	if p != nil {
		running = want
	}
	st := appsv1.DeploymentStatus{
		ObservedGeneration: d.Generation, Replicas: running, UpdatedReplicas: running,
		ReadyReplicas: ready, AvailableReplicas: ready, UnavailableReplicas: running - ready,
	}
	if d.Status.ObservedGeneration == st.ObservedGeneration && d.Status.Replicas == st.Replicas &&
		d.Status.AvailableReplicas == st.AvailableReplicas && d.Status.ReadyReplicas == st.ReadyReplicas &&
		d.Status.UpdatedReplicas == st.UpdatedReplicas {
		return nil
	}
	d.Status = st
	return client.IgnoreNotFound(k.Client.Status().Update(ctx, d))
}

func ready200(port int) bool {
	c := http.Client{Timeout: 500 * time.Millisecond}
	resp, err := c.Get("http://127.0.0.1:" + strconv.Itoa(port) + "/readyz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func (k *Kubelet) stop(key types.NamespacedName) {
	k.mu.Lock()
	p := k.procs[key]
	delete(k.procs, key)
	k.mu.Unlock()
	if p == nil {
		return
	}
	Stop(p.cmd.Process, p.exited, 15*time.Second)
}

// Stop ends a process the way the kubelet does: SIGTERM, then SIGKILL
// after grace; it returns once exited is closed (by whoever waits on the
// process).
func Stop(p *os.Process, exited <-chan struct{}, grace time.Duration) {
	_ = p.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(grace):
		_ = p.Kill()
		<-exited
	}
}

func (k *Kubelet) stopAll() {
	k.mu.Lock()
	keys := make([]types.NamespacedName, 0, len(k.procs))
	for key := range k.procs {
		keys = append(keys, key)
	}
	k.mu.Unlock()
	var wg sync.WaitGroup
	for _, key := range keys {
		wg.Go(func() { k.stop(key) })
	}
	wg.Wait()
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
