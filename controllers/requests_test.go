package controllers

import (
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// managerRequests counts the requests the manager sends the API server,
// by namespace, as "VERB resource[/subresource]": what a Strategy costs is
// what was sent in its namespace. Watches are not counted (they are not
// per Strategy).
var managerRequests = &requestCounter{byNamespace: map[string]map[string]int{}}

type requestCounter struct {
	mu          sync.Mutex
	byNamespace map[string]map[string]int
}

func (c *requestCounter) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripperFunc(func(req *http.Request) (*http.Response, error) {
		if ns, what, ok := describeRequest(req); ok {
			c.mu.Lock()
			m := c.byNamespace[ns]
			if m == nil {
				m = map[string]int{}
				c.byNamespace[ns] = m
			}
			m[what]++
			c.mu.Unlock()
		}
		return rt.RoundTrip(req)
	})
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// describeRequest names a namespaced request: its namespace and "VERB
// resource[/subresource]" (APPLY for a server-side apply patch).
func describeRequest(req *http.Request) (ns, what string, ok bool) {
	if req.URL.Query().Get("watch") == "true" {
		return "", "", false
	}
	parts := strings.Split(strings.Trim(req.URL.Path, "/"), "/")
	i := -1
	for j, p := range parts {
		if p == "namespaces" && j+1 < len(parts) {
			i = j
		}
	}
	if i < 0 || i+2 >= len(parts) {
		return "", "", false
	}
	ns, rest := parts[i+1], parts[i+2:]
	resource := rest[0]
	if len(rest) == 3 {
		resource += "/" + rest[2]
	}
	verb := req.Method
	if req.Method == http.MethodPatch && req.Header.Get("Content-Type") == "application/apply-patch+yaml" {
		verb = "APPLY"
	}
	if req.Method == http.MethodGet && len(rest) == 1 {
		verb = "LIST"
	}
	return ns, verb + " " + resource, true
}

// in is what the manager sent in a namespace: the counts by kind of
// request, and their total.
func (c *requestCounter) in(ns string) (map[string]int, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	out, total := map[string]int{}, 0
	for k, v := range c.byNamespace[ns] {
		out[k] = v
		total += v
	}
	return out, total
}

// summary is counts as one sorted line, for messages.
func summary(counts map[string]int) string {
	var parts []string
	for k, v := range counts {
		parts = append(parts, k+"="+strconv.Itoa(v))
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}
