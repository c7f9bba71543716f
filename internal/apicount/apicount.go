// Package apicount counts the requests a client sends the API server, by
// namespace, as "VERB resource[/subresource]" (APPLY for a server-side
// apply, LIST for a collection read): what a Strategy costs is what was
// sent in its namespace. Watches are not counted (they are not per
// Strategy). Tests wrap the manager's rest.Config with it.
package apicount

import (
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// Counter counts requests; the zero value is ready.
type Counter struct {
	mu          sync.Mutex
	byNamespace map[string]map[string]int
}

// Wrap is a rest.Config WrapTransport: it counts every namespaced request
// that goes through rt.
func (c *Counter) Wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripper(func(req *http.Request) (*http.Response, error) {
		if ns, what, ok := Describe(req); ok {
			c.mu.Lock()
			if c.byNamespace == nil {
				c.byNamespace = map[string]map[string]int{}
			}
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

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// Describe names a namespaced request that is not a watch: its namespace
// and "VERB resource[/subresource]".
func Describe(req *http.Request) (ns, what string, ok bool) {
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

// In is what was sent in a namespace so far, by kind of request, and the
// total.
func (c *Counter) In(ns string) (map[string]int, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	out, total := map[string]int{}, 0
	for k, v := range c.byNamespace[ns] {
		out[k] = v
		total += v
	}
	return out, total
}

// Take is In, and starts the namespace's count again.
func (c *Counter) Take(ns string) (map[string]int, int) {
	out, total := c.In(ns)
	c.mu.Lock()
	delete(c.byNamespace, ns)
	c.mu.Unlock()
	return out, total
}

// Summary is counts as one sorted line, for messages.
func Summary(counts map[string]int) string {
	parts := make([]string, 0, len(counts))
	for k, v := range counts {
		parts = append(parts, k+"="+strconv.Itoa(v))
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}
