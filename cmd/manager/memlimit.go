package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
)

// cgroupMemoryFiles are where a container's memory limit is read from:
// cgroup v2's memory.max, then v1's memory.limit_in_bytes.
var cgroupMemoryFiles = []string{"memory.max", "memory/memory.limit_in_bytes"}

// containerMemoryLimit is the memory limit of the cgroup under root
// (/sys/fs/cgroup in a container), in bytes; 0 when there is none.
func containerMemoryLimit(root string) (int64, error) {
	for _, name := range cgroupMemoryFiles {
		b, err := os.ReadFile(filepath.Join(root, name))
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return 0, err
		}
		v := strings.TrimSpace(string(b))
		if v == "max" {
			return 0, nil
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s: %q is not a number of bytes", name, v)
		}
		// cgroup v1 says "no limit" with a huge number.
		if n <= 0 || n >= 1<<62 {
			return 0, nil
		}
		return n, nil
	}
	return 0, nil
}

// setMemoryLimit sets the Go runtime's soft memory limit to ratio of the
// container's memory limit, unless GOMEMLIMIT sets one or ratio is 0: the
// garbage collector then works harder as the heap nears the limit, rather
// than let garbage grow the heap to twice what is live (Go's default) and
// the manager be killed out of memory with much of its heap garbage. It
// returns the limit set, 0 when none.
func setMemoryLimit(root string, ratio float64) (int64, error) {
	if ratio == 0 || os.Getenv("GOMEMLIMIT") != "" {
		return 0, nil
	}
	if ratio < 0 || ratio > 1 {
		return 0, fmt.Errorf("--memory-limit-ratio %g: want a fraction from 0 to 1", ratio)
	}
	limit, err := containerMemoryLimit(root)
	if err != nil || limit == 0 {
		return 0, err
	}
	soft := int64(float64(limit) * ratio)
	debug.SetMemoryLimit(soft)
	return soft, nil
}
