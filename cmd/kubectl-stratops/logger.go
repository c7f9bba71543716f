package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/transport/spdy"
	"sigs.k8s.io/controller-runtime/pkg/client"

	stratv1 "github.com/stratops/stratops/api/v1"
	"github.com/stratops/stratops/internal/children"
	"github.com/stratops/stratops/pkg/messaging"
)

// loggerAPI is a Strategy's event logger's API, with its token.
type loggerAPI struct {
	base  string
	token string
	http  *http.Client
	stop  func()
}

// entry is one event of the history, as the logger's API writes it.
type entry struct {
	ID            string          `json:"id"`
	Channel       string          `json:"channel"`
	LoggedAt      time.Time       `json:"logged_at"`
	Timestamp     string          `json:"timestamp"`
	Component     string          `json:"component"`
	Event         string          `json:"event"`
	Shape         string          `json:"shape"`
	Nonconforming string          `json:"nonconforming,omitempty"`
	Message       json.RawMessage `json:"message"`
}

// stateResponse is GET /state/{key}.
type stateResponse struct {
	Key        string          `json:"key"`
	TTLSeconds int64           `json:"ttlSeconds"`
	Value      json.RawMessage `json:"value"`
	Next       string          `json:"next,omitempty"`
}

// logger reaches the Strategy's event logger: at loggerURL when given
// (make run, envtest: no kubelet), else by a port-forward through the API
// server to the leading logger pod. Either way with the token from the
// Secret <name>-eventlogger-token. What the user may not do is said by
// name: get that Secret, create pods/portforward.
func (p *plugin) logger(ctx context.Context, s *stratv1.Strategy, loggerURL string) (*loggerAPI, error) {
	secret := &corev1.Secret{}
	name := children.EventLoggerTokenName(s)
	if err := p.c.Get(ctx, client.ObjectKey{Namespace: s.Namespace, Name: name}, secret); err != nil {
		if apierrors.IsForbidden(err) {
			return nil, fmt.Errorf("you may not get secrets/%s in namespace %s: reading the event logger's API needs its token (and create pods/portforward)", name, s.Namespace)
		}
		return nil, fmt.Errorf("the event logger's token: %w", err)
	}
	api := &loggerAPI{token: string(secret.Data[children.EventLoggerTokenKey]), http: &http.Client{Timeout: 10 * time.Second}, stop: func() {}}
	if loggerURL != "" {
		api.base = strings.TrimRight(loggerURL, "/")
		return api, nil
	}
	pod, err := p.loggerPod(ctx, s)
	if err != nil {
		return nil, err
	}
	if err := p.mayPortForward(ctx, s.Namespace, pod); err != nil {
		return nil, err
	}
	local, stop, err := p.portForward(s.Namespace, pod, messaging.EventLoggerPort)
	if err != nil {
		return nil, err
	}
	api.base, api.stop = fmt.Sprintf("http://127.0.0.1:%d", local), stop
	return api, nil
}

// loggerPod is the leading logger pod (status.eventLogger.leader), or a
// running one.
func (p *plugin) loggerPod(ctx context.Context, s *stratv1.Strategy) (string, error) {
	if l := s.Status.EventLogger; l != nil && l.Leader != "" {
		err := p.c.Get(ctx, client.ObjectKey{Namespace: s.Namespace, Name: l.Leader}, &corev1.Pod{})
		if apierrors.IsNotFound(err) {
			return "", fmt.Errorf("the leading event logger %s is not a pod here (use --logger-url where there is no kubelet)", l.Leader)
		}
		return l.Leader, forbidden(err, "get", "pods", l.Leader, s.Namespace)
	}
	pods := &corev1.PodList{}
	if err := p.c.List(ctx, pods, client.InNamespace(s.Namespace), client.MatchingLabels{
		children.LabelStrategy: s.Name, children.LabelComponent: children.ComponentEventLogger}); err != nil {
		return "", forbidden(err, "list", "pods", "", s.Namespace)
	}
	for _, pod := range pods.Items {
		if pod.Status.Phase == corev1.PodRunning && pod.DeletionTimestamp == nil {
			return pod.Name, nil
		}
	}
	return "", fmt.Errorf("strategy %s has no running event logger pod (use --logger-url where there is no kubelet)", s.Name)
}

// mayPortForward asks the API server whether the user may forward to the
// pod, so that a refusal names the right.
func (p *plugin) mayPortForward(ctx context.Context, ns, pod string) error {
	review := &authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{
		ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: ns, Verb: "create", Resource: "pods", Subresource: "portforward", Name: pod}}}
	if err := p.c.Create(ctx, review); err != nil {
		return fmt.Errorf("asking the API server for your rights: %w", err)
	}
	if !review.Status.Allowed {
		return fmt.Errorf("you may not create pods/portforward on %s in namespace %s: reading the event logger's API goes through a port-forward", pod, ns)
	}
	return nil
}

// portForward forwards a free local port to the pod's port through the
// API server, as kubectl port-forward does.
func (p *plugin) portForward(ns, pod string, port int) (int, func(), error) {
	transport, upgrader, err := spdy.RoundTripperFor(p.cfg)
	if err != nil {
		return 0, nil, err
	}
	server, err := url.Parse(p.cfg.Host)
	if err != nil {
		return 0, nil, err
	}
	server.Path = strings.TrimRight(server.Path, "/") + fmt.Sprintf("/api/v1/namespaces/%s/pods/%s/portforward", ns, pod)
	dialer := spdy.NewDialer(upgrader, &http.Client{Transport: transport}, http.MethodPost, server)
	stopCh, readyCh := make(chan struct{}), make(chan struct{})
	var errOut strings.Builder
	fw, err := portforward.NewOnAddresses(dialer, []string{"127.0.0.1"}, []string{fmt.Sprintf("0:%d", port)}, stopCh, readyCh, io.Discard, &errOut)
	if err != nil {
		return 0, nil, err
	}
	failed := make(chan error, 1)
	go func() { failed <- fw.ForwardPorts() }()
	select {
	case <-readyCh:
	case err := <-failed:
		return 0, nil, fmt.Errorf("port-forward to %s: %v %s", pod, err, errOut.String())
	case <-time.After(30 * time.Second):
		close(stopCh)
		return 0, nil, fmt.Errorf("port-forward to %s: not ready within 30s", pod)
	}
	ports, err := fw.GetPorts()
	if err != nil || len(ports) == 0 {
		close(stopCh)
		return 0, nil, fmt.Errorf("port-forward to %s: %v", pod, err)
	}
	return int(ports[0].Local), func() { close(stopCh) }, nil
}

// get reads a path of the API into v; the status is returned too.
func (l *loggerAPI) get(ctx context.Context, path string, v any) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, l.base+path, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+l.token)
	resp, err := l.http.Do(req)
	if err != nil {
		return 0, fmt.Errorf("the event logger: %w", err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return resp.StatusCode, err
	}
	if resp.StatusCode != http.StatusOK {
		var e struct{ Error string }
		_ = json.Unmarshal(body, &e)
		return resp.StatusCode, fmt.Errorf("the event logger answered %d: %s", resp.StatusCode, strings.TrimSpace(e.Error+" "+string(body[:min(len(body), 200)])))
	}
	return resp.StatusCode, json.Unmarshal(body, v)
}

// page reads a page of the history: the newest count entries before the
// cursor, oldest first, and the cursor of the page before it.
func (l *loggerAPI) page(ctx context.Context, count int, before string) ([]entry, string, error) {
	path := fmt.Sprintf("/state/%s?count=%d", messaging.KeyEventsHistory, count)
	if before != "" {
		path += "&before=" + url.QueryEscape(before)
	}
	var r stateResponse
	code, err := l.get(ctx, path, &r)
	if code == http.StatusNotFound {
		return nil, "", nil // the history is empty
	}
	if err != nil {
		return nil, "", err
	}
	var entries []entry
	if err := json.Unmarshal(r.Value, &entries); err != nil {
		return nil, "", fmt.Errorf("the history page: %w", err)
	}
	return entries, r.Next, nil
}

// errNoLogger says the logger's figures are left out.
var errNoLogger = errors.New("the event logger's API is not reachable")
