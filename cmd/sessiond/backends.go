package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/sessiond/sessiond/postgres"
	"github.com/sessiond/sessiond/redis"
)

// openPostgres moves users to PostgreSQL, applying its migrations first;
// sessions stay where they are (SQLite, or Redis when configured).
func openPostgres(ctx context.Context, c *config, st *stores, log *slog.Logger) error {
	us, err := postgres.Open(ctx, c.DatabaseURL)
	if err != nil {
		// Open's errors never carry the URL's password.
		return fmt.Errorf("SESSIOND_DATABASE_URL: %w", err)
	}
	st.close = append(st.close, func() error { us.Close(); return nil })
	st.users = us
	log.Info("users in PostgreSQL")
	return nil
}

// openRedis moves sessions, throttles, events and security activity to
// Redis, after checking that Redis will neither lose revocations nor evict
// sessions.
func openRedis(ctx context.Context, c *config, st *stores, log *slog.Logger) error {
	rs, err := redis.New(ctx, redis.Options{URL: c.RedisURL, Strict: c.RedisStrict, Timeout: c.RedisTimeout, ReplicaAcks: c.RedisReplicaAcks})
	if err != nil {
		return fmt.Errorf("SESSIOND_REDIS_URL: %w", err)
	}
	st.close = append(st.close, func() error { rs.Close(); return nil })
	warnings, err := rs.Check(ctx)
	for _, w := range warnings {
		log.Warn("redis configuration", "warning", w)
	}
	var unsafe *redis.CheckError
	switch {
	case errors.As(err, &unsafe) && c.RedisChecks == "warn":
		for _, p := range unsafe.Problems {
			log.Warn("redis configuration is unsafe for sessions (SESSIOND_REDIS_CHECKS=warn)", "problem", p)
		}
	case err != nil:
		return fmt.Errorf("redis: %w (set SESSIOND_REDIS_CHECKS=warn to start anyway)", err)
	}
	st.sessions = rs
	st.limiter = redis.NewLimiter(rs)
	st.activity = rs
	st.broker = redis.NewBroker(rs)
	st.sweep = false
	return nil
}
