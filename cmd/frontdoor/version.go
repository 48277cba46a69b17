package main

import (
	"fmt"
	"regexp"
	"runtime"
	"runtime/debug"
)

// version and commit are set at build time:
//
//	go build -ldflags "-X main.version=v0.1.0 -X main.commit=$(git rev-parse --short HEAD)" ./cmd/frontdoor
var (
	version = "dev"
	commit  = ""
)

func versionString() string {
	bi, _ := debug.ReadBuildInfo()
	v, c := describeBuild(version, commit, bi)
	return fmt.Sprintf("frontdoor %s (commit %s, %s %s/%s)", v, c, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// pseudoVersion is a Go pseudo-version such as v0.0.0-20261204142008-160493185588+dirty.
var pseudoVersion = regexp.MustCompile(`^v\d+\.\d+\.\d+-(.+\.)?(0\.)?\d{14}-[0-9a-f]{12}(\+dirty)?$`)

// describeBuild fills in what ldflags left unset from what the Go toolchain recorded: the module
// version of a `go install …@vX`, and for a plain `go build` in a git checkout the VCS stamp
// (vcs.revision, shortened as git does, with "-dirty" when vcs.modified says the tree had
// uncommitted changes), so any binary can be traced to its source.
func describeBuild(version, commit string, bi *debug.BuildInfo) (v, c string) {
	v, c = version, commit
	if bi != nil {
		// go install github.com/frontdoorhq/frontdoor/cmd/frontdoor@vX. A plain build in a checkout
		// gets a pseudo-version made of the commit, which the commit field already says.
		if m := bi.Main.Version; v == "dev" && m != "" && m != "(devel)" && !pseudoVersion.MatchString(m) {
			v = m
		}
		if c == "" {
			var rev string
			modified := false
			for _, s := range bi.Settings {
				switch s.Key {
				case "vcs.revision":
					rev = s.Value
				case "vcs.modified":
					modified = s.Value == "true"
				}
			}
			if len(rev) > 12 {
				rev = rev[:12]
			}
			if rev != "" && modified {
				rev += "-dirty"
			}
			c = rev
		}
	}
	if c == "" {
		c = "unknown"
	}
	return v, c
}
