package main

import (
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"testing"
)

// TestSetMemoryLimit_FollowsTheContainersLimit: the soft memory limit is
// the ratio of the cgroup's limit (v2, then v1), none without a limit or
// with GOMEMLIMIT set, and a ratio out of range is refused.
func TestSetMemoryLimit_FollowsTheContainersLimit(t *testing.T) {
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))
	write := func(t *testing.T, name, content string) string {
		root := t.TempDir()
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return root
	}
	for _, c := range []struct {
		name, file, content string
		want                int64
	}{
		{"cgroup v2", "memory.max", "268435456\n", 241591910},
		{"cgroup v2 without a limit", "memory.max", "max\n", 0},
		{"cgroup v1", "memory/memory.limit_in_bytes", "268435456\n", 241591910},
		{"cgroup v1 without a limit", "memory/memory.limit_in_bytes", "9223372036854771712\n", 0},
		{"no cgroup", "other", "", 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			debug.SetMemoryLimit(math.MaxInt64)
			got, err := setMemoryLimit(write(t, c.file, c.content), 0.9)
			if err != nil || got != c.want {
				t.Fatalf("setMemoryLimit = %d, %v; want %d", got, err, c.want)
			}
			want := c.want
			if want == 0 {
				want = math.MaxInt64
			}
			if now := debug.SetMemoryLimit(-1); now != want {
				t.Errorf("the runtime's limit is %d; want %d", now, want)
			}
		})
	}
	root := write(t, "memory.max", "268435456")
	if _, err := setMemoryLimit(root, 1.5); err == nil {
		t.Error("a ratio of 1.5 was taken")
	}
	if got, _ := setMemoryLimit(root, 0); got != 0 {
		t.Errorf("ratio 0 set %d", got)
	}
	if _, err := setMemoryLimit(write(t, "memory.max", "lots"), 0.9); err == nil {
		t.Error("a memory.max that is not a number was taken")
	}
	t.Setenv("GOMEMLIMIT", "100MiB")
	if got, _ := setMemoryLimit(root, 0.9); got != 0 {
		t.Errorf("with GOMEMLIMIT set, %d was set", got)
	}
}
