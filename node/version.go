package node

import "runtime/debug"

// stamp is the release version that `make dist` gives the linker
// (-ldflags "-X roundtable/node.stamp=v1.2.0"). Nothing assigns it at run
// time.
var stamp string

// Version is the binary's version, shown by `roundtable --version`, in
// /v1/health and in backups: the release version stamped by `make dist`,
// else what the build information holds (the module version and VCS
// revision, "(devel)" for a plain go build without VCS information).
func Version() string {
	if stamp != "" {
		return stamp
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			return bi.Main.Version + " " + s.Value[:12]
		}
	}
	return bi.Main.Version
}
