// Package version says which build of stratops a binary is: the release
// (VERSION, stamped at build time), the commit and the Go version, for
// every binary's --version, the manager's first log line and its
// stratops_build_info metric.
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Version is the release, stamped at build time from the VERSION file
// (-ldflags "-X github.com/stratops/stratops/internal/version.Version=...");
// "dev" in a build that was not stamped.
var Version = "dev"

// Revision is the commit, stamped at build time where the build has no
// version control information of its own (an image build); otherwise it
// is read from the build info.
var Revision = ""

// Commit is the commit the binary was built from ("-dirty" when the tree
// had changes), "unknown" when the build does not say.
func Commit() string {
	if Revision != "" {
		return Revision
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	rev, dirty := "", false
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return "unknown"
	}
	if dirty {
		rev += "-dirty"
	}
	return rev
}

// GoVersion is the Go release the binary was built with.
func GoVersion() string { return runtime.Version() }

// String is what --version prints for a binary.
func String(binary string) string {
	return fmt.Sprintf("%s %s (commit %s, %s)", binary, Version, Commit(), GoVersion())
}
