package main

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestBucketsAreContiguous(t *testing.T) {
	next := int64(0)
	for i := range numBuckets {
		low, width := bucketRange(i)
		if low != next {
			t.Fatalf("bucket %d starts at %d, want %d", i, low, next)
		}
		if got := bucketOf(low); got != i {
			t.Fatalf("bucketOf(%d) = %d, want %d", low, got, i)
		}
		if low+width-1 > 0 { // the last bucket overflows int64
			if got := bucketOf(low + width - 1); got != i {
				t.Fatalf("bucketOf(%d) = %d, want %d", low+width-1, got, i)
			}
		}
		next = low + width
	}
}

func TestQuantilesWithinRelativeError(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var h histogram
	vals := make([]int64, 100_000)
	for i := range vals {
		// Log-uniform from 1 us to 1 s, like latencies.
		vals[i] = int64(float64(int64(1000)<<r.IntN(20)) * (1 + r.Float64()))
		h.Record(time.Duration(vals[i]))
	}
	slices.Sort(vals)
	for _, q := range []float64{0.01, 0.5, 0.9, 0.99, 0.999} {
		want := vals[int(q*float64(len(vals)))-1]
		got := int64(h.Quantile(q))
		if diff := float64(got-want) / float64(want); diff > 1.0/128 || diff < -1.0/128 {
			t.Errorf("q%v = %d, want %d within 1/128", q, got, want)
		}
	}
	if h.Max() != time.Duration(vals[len(vals)-1]) || h.Min() != time.Duration(vals[0]) {
		t.Errorf("min, max = %v, %v; want %v, %v", h.Min(), h.Max(), vals[0], vals[len(vals)-1])
	}
	if h.Quantile(1) != h.Max() {
		t.Errorf("q1 = %v, want max %v", h.Quantile(1), h.Max())
	}
}

func TestMerge(t *testing.T) {
	var a, b, all histogram
	for i := range 1000 {
		d := time.Duration(i) * time.Microsecond
		all.Record(d)
		if i%2 == 0 {
			a.Record(d)
		} else {
			b.Record(d)
		}
	}
	a.Merge(&b)
	if a != all {
		t.Fatalf("merged histogram differs: n %d vs %d, p50 %v vs %v", a.n, all.n, a.Quantile(.5), all.Quantile(.5))
	}
	var empty histogram
	a.Merge(&empty)
	if a != all {
		t.Fatal("merging an empty histogram changed it")
	}
}

func TestEmptyAndNegative(t *testing.T) {
	var h histogram
	if h.Quantile(0.5) != 0 || h.Mean() != 0 {
		t.Fatal("empty histogram has values")
	}
	h.Record(-5)
	if h.Max() != 0 || h.Count() != 1 {
		t.Fatalf("negative value: max %v count %d", h.Max(), h.Count())
	}
}
