package sessiond

// The parts of a Manager are its own business; these accessors, compiled
// for tests only, let the package's tests look at the stores behind a
// Manager and wrap them.

func (m *Manager) SessionsForTest() SessionStore     { return m.sessions }
func (m *Manager) SetSessionsForTest(s SessionStore) { m.sessions = s }
func (m *Manager) UsersForTest() UserStore           { return m.users }
func (m *Manager) SetUsersForTest(u UserStore)       { m.users = u }
func (m *Manager) LimiterForTest() Limiter           { return m.limiter }
func (m *Manager) SetLimiterForTest(l Limiter)       { m.limiter = l }
func (m *Manager) RefreshTokensForTest() *RefreshTokens {
	return m.refresh
}

// SetDeliveryUserDoneForTest runs h as a delivery worker ends a user's turn,
// before the user is free for another.
func (m *Manager) SetDeliveryUserDoneForTest(h func(queue, userID string)) { m.delivery.userDone = h }
