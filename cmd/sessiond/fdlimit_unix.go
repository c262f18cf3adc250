//go:build unix

package main

import "syscall"

// openFileLimit returns the process's soft limit of open files (which the
// Go runtime raises to the hard limit at start), or 0 when unknown.
func openFileLimit() uint64 {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 0
	}
	return uint64(l.Cur)
}
