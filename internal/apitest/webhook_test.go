package apitest

import (
	"net/http"
	"strings"
	"testing"
)

func TestValidateWebhook(t *testing.T) {
	v := NewValidator(t)
	h := http.Header{"Webhook-Id": {"msg_AAAAAAAAAAAAAAAAAAAAAA"}, "Webhook-Timestamp": {"1700000000"}, "Webhook-Signature": {"v1,AAAA"}}
	const ok = `{"type":"login.throttled","timestamp":"2026-01-01T00:00:00.000Z","data":{"user_id":"u","client_ip":"192.0.2.1"}}`
	if err := v.ValidateWebhook(h, []byte(ok)); err != nil {
		t.Errorf("a valid login.throttled: %v", err)
	}
	for _, c := range []struct{ name, body, want string }{
		{"missing field", `{"type":"login.throttled","timestamp":"2026-01-01T00:00:00.000Z","data":{"user_id":"u"}}`, "client_ip"},
		{"extra field", `{"type":"login.throttled","timestamp":"2026-01-01T00:00:00.000Z","data":{"user_id":"u","client_ip":"192.0.2.1","token":"x"}}`, "token"},
		{"unknown type", `{"type":"session.deleted","timestamp":"2026-01-01T00:00:00.000Z","data":{}}`, "not in the document"},
	} {
		if err := v.ValidateWebhook(h, []byte(c.body)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an error naming %q", c.name, err, c.want)
		}
	}
	if err := v.ValidateWebhook(http.Header{}, []byte(ok)); err == nil || !strings.Contains(err.Error(), "webhook-id") {
		t.Errorf("no headers: got %v, want webhook-id missing", err)
	}
}
