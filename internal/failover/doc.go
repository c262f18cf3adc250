// Package failover holds sessiond's Redis Cluster failover tests: two
// sessiond HTTP servers over one six-node cluster (three masters, three
// replicas) started by redistest, whose masters the tests kill. They live
// in a package of their own because they take tens of seconds, so that
// `go test ./...` runs them beside the other packages' tests.
package failover
