package redis_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/sessiond/sessiond"
	"github.com/sessiond/sessiond/redis"
	"github.com/sessiond/sessiond/redis/redistest"
)

func TestPublishManyDeliversInOrder(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	a := redis.NewBroker(newStore(t, redis.Options{URL: srv.URL()}))
	b := redis.NewBroker(newStore(t, redis.Options{URL: srv.URL()}))
	user := randomID()
	events, unsubscribe, err := b.Subscribe(ctx, user)
	if err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	defer unsubscribe()
	var sent []sessiond.Event
	for i := range 5 {
		sent = append(sent, sessiond.Event{Type: sessiond.EventRevoked, UserID: user, SessionID: fmt.Sprint("s", i), Reason: sessiond.ReasonRevokedOthers})
	}
	if err := a.PublishMany(ctx, sent); err != nil {
		t.Fatalf("PublishMany: %v", err)
	}
	for i, want := range sent {
		select {
		case got := <-events:
			if got.Type != want.Type || got.UserID != user || got.SessionID != want.SessionID || got.Reason != want.Reason {
				t.Fatalf("event %d: got %+v, want %+v", i, got, want)
			}
		case <-time.After(2 * time.Second):
			t.Fatalf("event %d did not arrive", i)
		}
	}
}

func TestPublishManyDeliversLocallyWhenRedisIsDown(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	br := redis.NewBroker(newStore(t, redis.Options{URL: srv.URL(), Timeout: 200 * time.Millisecond}))
	user := randomID()
	events, unsubscribe, err := br.Subscribe(ctx, user)
	if err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	defer unsubscribe()
	srv.Kill()
	sent := []sessiond.Event{
		{Type: sessiond.EventRevoked, UserID: user, SessionID: "s1", Reason: sessiond.ReasonRevokedOthers},
		{Type: sessiond.EventRevoked, UserID: user, SessionID: "s2", Reason: sessiond.ReasonRevokedOthers},
	}
	if err := br.PublishMany(ctx, sent); err == nil {
		t.Fatal("PublishMany with Redis down: got nil error")
	}
	for i, want := range sent {
		select {
		case got := <-events:
			if got.SessionID != want.SessionID {
				t.Fatalf("event %d: got %+v, want %+v", i, got, want)
			}
		case <-time.After(2 * time.Second):
			t.Fatalf("event %d was not delivered locally", i)
		}
	}
}
