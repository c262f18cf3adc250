package prometheus

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sessiond/sessiond"
)

// outboxQueues are the values of the queue label.
var outboxQueues = []string{sessiond.QueueWebhook, sessiond.QueueMail}

// outbox holds the delivery series of webhooks and e-mails.
type outbox struct {
	delivered, retried, dropped *prometheus.CounterVec
	age                         *prometheus.HistogramVec
}

func newOutbox() *outbox {
	o := &outbox{
		delivered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sessiond_outbox_delivered_total", Help: "Webhooks and e-mails delivered, by queue (webhook, mail).",
		}, []string{"queue"}),
		retried: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sessiond_outbox_retries_total", Help: "Failed deliveries that wait for a retry, by queue.",
		}, []string{"queue"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sessiond_outbox_dropped_total", Help: "Messages given up after retrying for 24 h, by queue.",
		}, []string{"queue"}),
		age: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "sessiond_outbox_delivery_latency_seconds",
			Help:    "Time from the change that recorded a message to its delivery, by queue.",
			Buckets: []float64{1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 250e-3, 500e-3, 1, 2.5, 5, 30, 120, 600, 3600, 86400},
		}, []string{"queue"}),
	}
	for _, q := range outboxQueues {
		o.delivered.WithLabelValues(q)
		o.retried.WithLabelValues(q)
		o.dropped.WithLabelValues(q)
	}
	return o
}

// Delivered implements sessiond.Observer.
func (m *Metrics) Delivered(queue string, age time.Duration) {
	m.outbox.delivered.WithLabelValues(queue).Inc()
	m.outbox.age.WithLabelValues(queue).Observe(age.Seconds())
}

// Retried implements sessiond.Observer.
func (m *Metrics) Retried(queue string) { m.outbox.retried.WithLabelValues(queue).Inc() }

// Dropped implements sessiond.Observer.
func (m *Metrics) Dropped(queue string) { m.outbox.dropped.WithLabelValues(queue).Inc() }

// QueueStatsFunc returns the depth of a queue and the age of its oldest
// message, as sessiond.Manager.QueueStats does.
type QueueStatsFunc func(ctx context.Context, queue string) (depth int, oldest time.Duration, err error)

// WatchOutbox exports the depth of each outbox queue and the age of its
// oldest message, read from f when scraped (within 2 s; a failed read
// leaves the queue's series out of that scrape).
func (m *Metrics) WatchOutbox(f QueueStatsFunc) {
	m.reg.MustRegister(&outboxCollector{stats: f})
}

var (
	depthDesc = prometheus.NewDesc("sessiond_outbox_depth",
		"Messages waiting for delivery, by queue (on Redis, counted over the first 1,000 users due).", []string{"queue"}, nil)
	oldestDesc = prometheus.NewDesc("sessiond_outbox_oldest_age_seconds",
		"Age of the oldest message waiting for delivery, by queue (0 when none).", []string{"queue"}, nil)
)

type outboxCollector struct{ stats QueueStatsFunc }

func (c *outboxCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- depthDesc
	ch <- oldestDesc
}

func (c *outboxCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for _, q := range outboxQueues {
		depth, oldest, err := c.stats(ctx, q)
		if err != nil {
			continue
		}
		ch <- prometheus.MustNewConstMetric(depthDesc, prometheus.GaugeValue, float64(depth), q)
		ch <- prometheus.MustNewConstMetric(oldestDesc, prometheus.GaugeValue, oldest.Seconds(), q)
	}
}
