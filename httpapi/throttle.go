package httpapi

import (
	"math"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Limits are the abuse limits of the HTTP edge.
type Limits struct {
	// PartnerRate is the requests per second each partner may make (0: no limit),
	// with bursts of PartnerBurst.
	PartnerRate  float64
	PartnerBurst int
	// ClientFailures and AddressFailures are how many failed token or
	// revocation requests a client id, or an address, may make per TokenWindow
	// before it is refused with 429 (0: no limit).
	ClientFailures  int
	AddressFailures int
	TokenWindow     time.Duration
}

// rateLimited answers 429 with the protocol's body and a Retry-After.
type rateLimited struct{ retryAfter time.Duration }

func (e *rateLimited) Error() string { return "rate limited" }

func retryAfterSeconds(d time.Duration) string {
	return strconv.Itoa(max(1, int(math.Ceil(d.Seconds()))))
}

// partnerLimiter keeps one token bucket per partner. Partners are few and
// known, so the map stays small.
type partnerLimiter struct {
	rate  rate.Limit
	burst int
	mu    sync.Mutex
	m     map[string]*rate.Limiter
}

func newPartnerLimiter(l Limits) *partnerLimiter {
	if l.PartnerRate <= 0 {
		return nil
	}
	burst := l.PartnerBurst
	if burst <= 0 {
		burst = max(1, int(2*l.PartnerRate))
	}
	return &partnerLimiter{rate: rate.Limit(l.PartnerRate), burst: burst, m: map[string]*rate.Limiter{}}
}

// allow takes one request of the partner; when none is left it says how long to wait.
func (p *partnerLimiter) allow(partner string, now time.Time) (bool, time.Duration) {
	p.mu.Lock()
	lim, ok := p.m[partner]
	if !ok {
		lim = rate.NewLimiter(p.rate, p.burst)
		p.m[partner] = lim
	}
	p.mu.Unlock()
	r := lim.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

// failureThrottle counts failed authentications per key (client id, address)
// in a fixed window; a key over the limit is refused until its window ends.
// Guessing secrets then costs the window, while a partner that mistyped its
// secret waits at most that long.
type failureThrottle struct {
	limits map[string]int // by key prefix: "client:", "addr:"
	window time.Duration
	mu     sync.Mutex
	m      map[string]*failures
}

type failures struct {
	count int
	since time.Time
}

// maxThrottleKeys bounds memory under a flood of distinct keys; old windows are
// dropped first.
const maxThrottleKeys = 100_000

func newFailureThrottle(l Limits) *failureThrottle {
	limits := map[string]int{}
	if l.ClientFailures > 0 {
		limits[clientKey] = l.ClientFailures
	}
	if l.AddressFailures > 0 {
		limits[addrKey] = l.AddressFailures
	}
	if len(limits) == 0 {
		return nil
	}
	w := l.TokenWindow
	if w <= 0 {
		w = time.Minute
	}
	return &failureThrottle{limits: limits, window: w, m: map[string]*failures{}}
}

// Key prefixes of the failure throttle.
const (
	clientKey = "client:"
	addrKey   = "addr:"
)

// limitOf returns the limit for a key by its prefix (0: not limited).
func (f *failureThrottle) limitOf(key string) int {
	for prefix, n := range f.limits {
		if len(key) > len(prefix) && key[:len(prefix)] == prefix {
			return n
		}
	}
	return 0
}

// blocked says whether any of the keys is over its limit, and for how long.
func (f *failureThrottle) blocked(now time.Time, keys ...string) (bool, time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var wait time.Duration
	for _, k := range keys {
		limit := f.limitOf(k)
		if limit == 0 {
			continue
		}
		if e, ok := f.m[k]; ok && now.Sub(e.since) < f.window && e.count >= limit {
			wait = max(wait, e.since.Add(f.window).Sub(now))
		}
	}
	return wait > 0, wait
}

// fail records a failed attempt for each key.
func (f *failureThrottle) fail(now time.Time, keys ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.m) >= maxThrottleKeys {
		for k, e := range f.m {
			if now.Sub(e.since) >= f.window {
				delete(f.m, k)
			}
		}
	}
	for _, k := range keys {
		if f.limitOf(k) == 0 {
			continue
		}
		e, ok := f.m[k]
		if !ok || now.Sub(e.since) >= f.window {
			e = &failures{since: now}
			f.m[k] = e
		}
		e.count++
	}
}

// clientAddress is the caller's IP address (the port varies per connection).
func clientAddress(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func errRateLimited(d time.Duration) error { return &rateLimited{retryAfter: d} }
