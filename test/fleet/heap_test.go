package fleet

import (
	"bytes"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"sort"
	"strings"
	"testing"

	"github.com/google/pprof/profile"
)

// heapHolders name what holds the heap, by a function on the stack that
// allocated it, first match wins.
var heapHolders = []struct{ what, frame string }{
	{"managed fields in the informer caches", "k8s.io/apimachinery/pkg/apis/meta/v1.(*ManagedFieldsEntry)"},
	{"the rest of the informer caches", "k8s.io/apimachinery/pkg/watch.(*StreamWatcher).receive"},
	{"the rest of the informer caches", "k8s.io/client-go/tools/cache.(*Reflector)"},
	{"Redis checks", "controllers.(*redisChecks)"},
	{"other reconciler state", "github.com/stratops/stratops/controllers."},
	{"Redis clients", "github.com/redis/go-redis"},
}

// heapBreakdown collects the garbage, then reads this process's heap
// profile: the bytes in use and, by heapHolders, what holds them, largest
// first. The profile samples (one allocation in 512 KiB on average), so
// the parts are estimates; their sum is the profile's. With
// STRATOPS_SCALE_HEAP_PROFILE set, the profile is written to that file,
// for go tool pprof.
func heapBreakdown(b *testing.B) (inUse int64, parts string) {
	b.Helper()
	runtime.GC()
	var buf bytes.Buffer
	if err := pprof.Lookup("heap").WriteTo(&buf, 0); err != nil {
		b.Fatal(err)
	}
	if f := os.Getenv("STRATOPS_SCALE_HEAP_PROFILE"); f != "" {
		if err := os.WriteFile(f, buf.Bytes(), 0o600); err != nil {
			b.Fatal(err)
		}
	}
	p, err := profile.Parse(&buf)
	if err != nil {
		b.Fatal(err)
	}
	idx := -1
	for i, st := range p.SampleType {
		if st.Type == "inuse_space" {
			idx = i
		}
	}
	if idx < 0 {
		b.Fatal("the heap profile has no inuse_space")
	}
	by := map[string]int64{}
	for _, s := range p.Sample {
		v := s.Value[idx]
		inUse += v
		by[holderOf(s)] += v
	}
	var names []string
	for n := range by {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool { return by[names[i]] > by[names[j]] })
	var out []string
	for _, n := range names {
		out = append(out, fmt.Sprintf("%s %d MiB", n, by[n]>>20))
	}
	return inUse, strings.Join(out, ", ")
}

func holderOf(s *profile.Sample) string {
	for _, h := range heapHolders {
		for _, loc := range s.Location {
			for _, l := range loc.Line {
				if l.Function != nil && strings.Contains(l.Function.Name, h.frame) {
					return h.what
				}
			}
		}
	}
	return "other"
}
