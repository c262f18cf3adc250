package redis

// SetAfterPageScan makes ListPage call f between its scan of the sessions'
// times and its read of the page, so that a test can end sessions there.
func SetAfterPageScan(s *Store, f func()) { s.afterPageScan = f }
