package redis_test

import (
	"context"
	"log"
	"os"
	"time"

	"github.com/sessiond/sessiond/redis"
)

// A store on a Redis Cluster (a seed list) with a start-up check that
// refuses an unsafe configuration and logs warnings.
func ExampleNew() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	store, err := redis.New(ctx, redis.Options{
		URL:     "redis://redis-1:6379,redis-2:6379,redis-3:6379",
		Strict:  os.Getenv("SESSIOND_REDIS_STRICT") == "true",
		Timeout: 100 * time.Millisecond,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
	warnings, err := store.Check(ctx)
	for _, w := range warnings {
		log.Print("redis: ", w)
	}
	if err != nil {
		log.Fatal(err) // or only log it, with SESSIOND_REDIS_CHECKS=warn
	}
	limiter := redis.NewLimiter(store) // throttles shared by every instance
	broker := redis.NewBroker(store)   // session events across instances
	_, _ = limiter, broker
}
