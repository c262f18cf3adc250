package main

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/sessiond/sessiond"
	"github.com/sessiond/sessiond/webhook"
)

// endedBody is a session.ended webhook as docs/design.md describes it.
const endedBody = `{"type":"session.ended","timestamp":"2026-12-07T21:00:00.123Z","data":{"user_id":"u1",` +
	`"session":{"id":"s1","device":"Chrome on Windows","device_class":"desktop","name":"","ip_address":"203.0.113.7","location":"","claims":{}},` +
	`"reason":"admin","by":"admin"}}`

func TestParseEvent(t *testing.T) {
	key, stamp, err := parseEvent([]byte(endedBody))
	if err != nil {
		t.Fatal(err)
	}
	if want := eventKey("session.ended", "s1"); key != want {
		t.Errorf("key %q, want %q", key, want)
	}
	if want := time.Date(2026, 12, 7, 21, 0, 0, 123e6, time.UTC); !stamp.Equal(want) {
		t.Errorf("timestamp %v, want %v", stamp, want)
	}
	for _, bad := range []string{
		`not json`,
		`{"type":"login.throttled","timestamp":"2026-12-07T21:00:00.123Z","data":{"user_id":"u1","client_ip":"203.0.113.7"}}`,
		`{"type":"session.created","timestamp":"yesterday","data":{"session":{"id":"s1"}}}`,
	} {
		if _, _, err := parseEvent([]byte(bad)); err == nil {
			t.Errorf("parseEvent(%s): no error", bad)
		}
	}
}

func TestMatchLatencies(t *testing.T) {
	t0 := time.Now()
	ms := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }
	answered := map[string]time.Time{"late": ms(10), "early": ms(10), "lost": ms(0)}
	got := map[string]receipt{
		"late":  {at: ms(12), stamp: ms(9)},
		"early": {at: ms(8), stamp: ms(5)},
		"extra": {at: ms(20), stamp: ms(20)}, // an event of no act: ignored
	}
	var fromAnswer, fromStamp histogram
	early, missing := matchLatencies(answered, got, &fromAnswer, &fromStamp)
	if early != 1 || missing != 1 {
		t.Errorf("early %d, missing %d; want 1, 1", early, missing)
	}
	if fromAnswer.Count() != 2 || fromAnswer.Min() != 0 || fromAnswer.Max() != 2*time.Millisecond {
		t.Errorf("after the answer: %d values from %v to %v, want 2 from 0 to 2ms", fromAnswer.Count(), fromAnswer.Min(), fromAnswer.Max())
	}
	if fromStamp.Min() != 3*time.Millisecond || fromStamp.Max() != 3*time.Millisecond {
		t.Errorf("after the timestamp: %v to %v, want 3ms", fromStamp.Min(), fromStamp.Max())
	}
}

func TestCountOver(t *testing.T) {
	var h histogram
	if n := h.CountOver(0); n != 0 {
		t.Errorf("empty: %d", n)
	}
	for _, d := range []time.Duration{time.Millisecond, 40 * time.Millisecond, 60 * time.Millisecond, time.Second} {
		h.Record(d)
	}
	for _, c := range []struct {
		over time.Duration
		want uint64
	}{{0, 4}, {50 * time.Millisecond, 2}, {900 * time.Millisecond, 1}, {time.Second, 0}, {time.Hour, 0}} {
		if n := h.CountOver(c.over); n != c.want {
			t.Errorf("CountOver(%v) = %d, want %d", c.over, n, c.want)
		}
	}
}

// The receiver takes what sessiond's own sender sends, over HTTP, and
// refuses a delivery signed with another secret.
func TestReceiverVerifies(t *testing.T) {
	secret := webhook.NewSecret()
	recv, err := startReceiver(secret)
	if err != nil {
		t.Fatal(err)
	}
	defer recv.Stop()
	msg := sessiond.OutboxMessage{ID: "msg_1", Queue: sessiond.QueueWebhook, Body: []byte(endedBody), CreatedAt: time.Now()}
	ep, err := webhook.New(recv.URL, secret)
	if err != nil {
		t.Fatal(err)
	}
	if err := ep.Send(context.Background(), "u1", msg); err != nil {
		t.Fatalf("send: %v", err)
	}
	key := eventKey("session.ended", "s1")
	if err := recv.wait(5*time.Second, key, recv.received([]string{key})); err != nil {
		t.Fatal(err)
	}
	other, err := webhook.New(recv.URL, webhook.NewSecret())
	if err != nil {
		t.Fatal(err)
	}
	if err := other.Send(context.Background(), "u1", msg); err == nil {
		t.Error("a delivery signed with another secret was accepted")
	}
	if err := ep.Send(context.Background(), "u1", msg); err != nil { // sent again: a duplicate
		t.Fatalf("send again: %v", err)
	}
	recv.mu.Lock()
	defer recv.mu.Unlock()
	if recv.deliveries != 3 || recv.refused != 1 || recv.dups != 1 || len(recv.got) != 1 {
		t.Errorf("deliveries %d, refused %d, duplicates %d, events %d; want 3, 1, 1, 1", recv.deliveries, recv.refused, recv.dups, len(recv.got))
	}
}

func TestParseStatCPU(t *testing.T) {
	// A command name may hold spaces and parentheses: the fields count
	// from the last ')'. utime 250 and stime 31 ticks.
	stat := "4242 (sess (iond) x) S 1 4242 4242 0 -1 4194560 1234 0 0 0 250 31 0 0 20 0 9 0 123456 1000000 500 18446744073709551615\n"
	d, err := parseStatCPU([]byte(stat))
	if err != nil {
		t.Fatal(err)
	}
	if want := 281 * clockTick; d != want {
		t.Errorf("got %v, want %v", d, want)
	}
	if _, err := parseStatCPU([]byte("4242 (x) S 1 2")); err == nil {
		t.Error("a short line was read")
	}
	self, err := procCPU(os.Getpid())
	if err != nil || self < 0 {
		t.Errorf("this process: %v, %v", self, err)
	}
}
