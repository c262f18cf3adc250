package redis

// SetAfterPageScan makes ListPage call f between its scan of the sessions'
// times and its read of the page, so that a test can end sessions there.
func SetAfterPageScan(s *Store, f func()) { s.afterPageScan = f }

// PendingHooks are called by Pending of an empty queue of a marked user
// between its steps, so that a test can record messages there, or end the
// call there as a crash would (by cancelling its context).
type PendingHooks struct {
	AfterEmptyRead, AfterIntent, AfterSecondRead func()
}

// SetPendingHooks sets (or with the zero PendingHooks clears) s's hooks.
func SetPendingHooks(s *Store, h PendingHooks) {
	s.afterEmptyRead, s.afterIntent, s.afterSecondRead = h.AfterEmptyRead, h.AfterIntent, h.AfterSecondRead
}
