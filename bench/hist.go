package main

import (
	"math"
	"math/bits"
	"time"
)

// histogram records durations in a log-linear layout, as HDR histograms
// do: values below subCount nanoseconds have a bucket each, and every
// power-of-two range above is cut into subCount equal buckets. A recorded
// value is therefore known to within 1/128 (0.8%) of itself,
// whatever its magnitude, in a fixed 57 KiB with no allocation per value.
// The zero value is empty and ready to use; it is not safe for concurrent
// use (give each goroutine its own and merge them).
type histogram struct {
	counts   [numBuckets]uint64
	n        uint64
	sum      float64
	min, max int64
}

const (
	subBits    = 7
	subCount   = 1 << subBits                     // 128
	numBuckets = (63-subBits)*subCount + subCount // up to math.MaxInt64
)

// bucketOf returns the bucket of v (v >= 0).
func bucketOf(v int64) int {
	if v < subCount {
		return int(v)
	}
	shift := bits.Len64(uint64(v)) - 1 - subBits
	return (shift+1)*subCount + int(v>>shift) - subCount
}

// bucketRange returns the smallest value of bucket i and the bucket's width.
func bucketRange(i int) (low, width int64) {
	if i < subCount {
		return int64(i), 1
	}
	shift := i/subCount - 1
	m := int64(i%subCount + subCount)
	return m << shift, 1 << shift
}

// Record adds one duration; negative ones count as 0.
func (h *histogram) Record(d time.Duration) {
	v := max(int64(d), 0)
	h.counts[bucketOf(v)]++
	if h.n == 0 || v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
	h.n++
	h.sum += float64(v)
}

// Merge adds every value of o.
func (h *histogram) Merge(o *histogram) {
	if o.n == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	h.max = max(h.max, o.max)
	h.n += o.n
	h.sum += o.sum
}

// Count is how many values were recorded.
func (h *histogram) Count() uint64 { return h.n }

// Max is the largest value recorded, exactly.
func (h *histogram) Max() time.Duration { return time.Duration(h.max) }

// Min is the smallest value recorded, exactly.
func (h *histogram) Min() time.Duration { return time.Duration(h.min) }

// Mean is the mean of the values recorded.
func (h *histogram) Mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return time.Duration(h.sum / float64(h.n))
}

// Quantile returns the value below or at which a fraction q of the
// values lie (q in [0, 1]): the middle of the bucket that holds the value
// of that rank, clamped to the exact minimum and maximum.
func (h *histogram) Quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	rank = min(max(rank, 1), h.n)
	if rank == h.n {
		return time.Duration(h.max)
	}
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			low, width := bucketRange(i)
			v := low + (width-1)/2
			return time.Duration(min(max(v, h.min), h.max))
		}
	}
	return time.Duration(h.max)
}

// CountOver is how many values were recorded above d, to the histogram's
// precision: the values of the buckets above the one that holds d.
func (h *histogram) CountOver(d time.Duration) uint64 {
	if h.n == 0 || int64(d) >= h.max {
		return 0
	}
	var n uint64
	for _, c := range h.counts[bucketOf(max(int64(d), 0))+1:] {
		n += c
	}
	return n
}
