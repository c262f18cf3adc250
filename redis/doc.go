// Package redis keeps sessiond's sessions in Redis, single node or Redis
// Cluster, through github.com/redis/rueidis.
//
// # Keys
//
// Every key of one user shares the hash tag {u:<encoded user id>}, so each
// multi-key step is one atomic Lua script on one Cluster slot:
//
//	sd:{u:<user>}:s:<session>  hash of one session (see codec.go for the
//	                           one-letter fields); PEXPIREAT its expiry
//	sd:{u:<user>}:idx          sorted set of session ids scored by expiry
//	                           (unix seconds, rounded up); it expires with
//	                           its greatest member
//	sd:{u:<user>}:events       sharded pub/sub channel (Broker)
//	sd:rl:{<key>}              one sliding-window counter (Limiter)
//	sd:rl:{<group>}:<rest>     one counter of a key "<group>|<rest>", in its group's slot
//	sd:ho:{<code hash>}        hash of one handoff code's record (user, session,
//	                           expiry, used); PEXPIREAT its expiry. Its own slot:
//	                           whoever redeems a code knows no user id
//	sd:{u:<user>}:act, :seen, :q:<queue>, :qm:<queue>, :ql:<queue>
//	                           security activity: history, seen devices and
//	                           countries, and each queue's order, messages and
//	                           lease (activity.go)
//	sd:due:{<queue>}           sorted set of the users due in a queue, and
//	sd:due:{<queue>}:unmark    the removals of their marks under way; one slot
//	                           per queue
//
// Ids are percent-encoded: every byte outside A-Z a-z 0-9 - . _ ~ becomes
// %XX, so `{`, `}`, `:` and non-ASCII cannot break the layout and base64url
// ids stay as they are. Nothing scans the keyspace: List, ListPage, the cap
// and revoke-all walk the user's index inside scripts and drop members whose
// session has expired. No script touches more than sessiond.StoreChunk
// (1,000) sessions, so Redis serves other clients between the chunks of a
// large user: a user with up to 1,000 sessions takes one script call, one
// at the hard maximum of 10,000 about ten, each atomic, the whole not.
// Every key carries an expiry, so DeleteExpired has nothing to do.
//
// # Validation and the client-side cache
//
// Get, the per-request check, reads the session hash with HMGET through
// Redis server-assisted client-side caching (RESP3 CLIENT TRACKING, OPTIN):
// a hot session costs no round trip, and any change to it anywhere makes
// Redis push an invalidation to every instance that holds a copy. Three
// things keep that cache from accepting a revoked session:
//
//   - Redis acknowledges a delete before other connections have read their
//     invalidation. The instance that revokes records the session as
//     revoked before it answers and refuses it from then on; sessions it
//     created, rotated or renamed it reads from Redis for a few seconds, so
//     it never sees an older generation. The record ages out once the
//     invalidation has surely arrived (or the connection was found dead).
//     Other instances accept a revoked session for as long as their
//     invalidation takes, normally well under a millisecond.
//   - Copies live on the connection that read them, and rueidis drops a
//     connection's whole cache when the connection closes, whether Redis
//     closed it, it was killed (CLIENT KILL) or it failed its keep-alive
//     ping (Dialer.KeepAlive 1s, ConnWriteTimeout 2s): invalidations
//     lost with a connection cannot leave stale copies behind (fail closed).
//   - Options.Strict reads Redis on every Get, for deployments that need
//     next-request revocation on every instance.
//
// # Replicas
//
// Redis replicates asynchronously, so a failover can lose what the old
// master last acknowledged. With Options.ReplicaAcks = N, revocations,
// refresh rotations and handoff takes run with WAIT N on the connection
// that wrote them (acks.go) and fail, wrapping sessiond.ErrNotAcknowledged
// (an ErrUnavailable) with what they changed, unless N replicas confirm in
// time: a revocation that succeeded survives a failover. Sync, the
// readiness probe and ActivityStore.Record wait for the replicas the same
// way.
//
// Every call has a deadline (Options.Timeout, 100ms by default); an
// unanswered call, a refused connection or a reply such as CLUSTERDOWN or
// LOADING is an error wrapping sessiond.ErrUnavailable, never ErrNotFound.
//
// # Memory
//
// A session hash keeps the device id and IP address as bytes when that
// loses nothing, omits empty fields, packs its four times (unix ms, 6
// bytes each), device class and IP address into one binary field, and
// stays listpack-encoded (below hash-max-listpack-value, 64 bytes per
// value); the index scores sessions by their expiry in whole seconds.
// docs/benchmarks.md reports what a session costs in Redis memory
// (BenchmarkMemory) and where it goes.
package redis
