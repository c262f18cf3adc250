package main

// fdReserve is the least number of file descriptors left to everything but
// event streams: other clients' connections, the stores, the log.
const fdReserve = 256

// streamsWithin bounds the instance's stream cap by the process's limit of
// open files (0 when unknown). Each open stream holds a connection, so a
// descriptor; a cap above the limit would let streams take every
// descriptor and new clients time out, which is what the cap is there to
// prevent. Streams get the limit less a reserve of a quarter of it and at
// least fdReserve, so at most three quarters of it (544 of 800), and half
// a limit too small for that reserve (512 or less). It reports whether it
// lowered the cap.
func streamsWithin(configured int, fdLimit uint64) (int, bool) {
	if fdLimit == 0 {
		return configured, false
	}
	reserve := max(fdLimit/4, fdReserve)
	bound := fdLimit / 2
	if fdLimit > 2*reserve {
		bound = fdLimit - reserve
	}
	if uint64(configured) <= bound {
		return configured, false
	}
	return int(max(bound, 1)), true
}
