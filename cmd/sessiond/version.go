package main

import (
	"runtime"
	"runtime/debug"
)

// version describes this build from the information Go records in the
// binary: the module version, the commit it was built from, and the Go
// release.
func version() string {
	return formatVersion(readBuildInfo(), runtime.Version())
}

// readBuildInfo returns the build information of this binary, or nil.
func readBuildInfo() *debug.BuildInfo {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return nil
	}
	return bi
}

// formatVersion says what bi knows, and "unknown" for what it does not: a
// binary built by go run or go test has version "(devel)" and may have no
// VCS information at all. bi may be nil.
func formatVersion(bi *debug.BuildInfo, goVersion string) string {
	ver, commit, goVersion := buildParts(bi, goVersion)
	return "sessiond " + ver + " commit " + commit + " " + goVersion
}

// buildParts returns the version, the commit (with -dirty for a modified
// tree) and the Go release of bi, "unknown" for what it does not know.
func buildParts(bi *debug.BuildInfo, goVersion string) (ver, commit, goVer string) {
	modified := false
	if bi != nil {
		ver = bi.Main.Version
		if bi.GoVersion != "" {
			goVersion = bi.GoVersion
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				commit = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
	}
	if ver == "" {
		ver = "unknown"
	}
	if commit == "" {
		commit = "unknown"
	} else if modified {
		commit += "-dirty"
	}
	return ver, commit, goVersion
}
