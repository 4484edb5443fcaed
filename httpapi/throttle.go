package httpapi

import (
	"crypto/sha256"
	"math"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
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
	// ClientFailures is how many failed token or revocation requests may
	// name one client id from one address per TokenWindow; AddressFailures is
	// how many one address may make, whatever the client ids. Beyond either
	// the caller is refused with 429 (0: no limit). An IPv6 address counts by
	// its /64. Client ids are public, so failures never count against a client
	// id alone (see failureThrottle).
	ClientFailures  int
	AddressFailures int
	TokenWindow     time.Duration
	// TrustedProxies are the reverse proxies in front of walletd. A request
	// from one of them counts against the address its X-Forwarded-For names:
	// the right-most one that is not itself a trusted proxy, as addresses to
	// the left of it are the caller's to write.
	TrustedProxies []netip.Prefix
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

// failureThrottle counts failed token and revocation requests in fixed windows:
// per client id and address together (ClientFailures) and per address
// (AddressFailures). A caller over either limit is refused until that window
// ends. Guessing secrets then costs the window, while a partner that mistyped
// its secret waits at most that long.
//
// There is no count per client id alone: client ids are not secret, so such a
// count would let anyone keep a partner from getting or refreshing tokens, and
// secrets are 256-bit, so it would add nothing against guessing. Someone
// failing with a partner's client id from elsewhere blocks only themselves.
//
// Memory stays bounded whatever callers send: keys have a fixed size (the
// client id enters as a hash), each count holds at most maxThrottleKeys keys,
// and a full count takes no new keys until a sweep, at most once a window,
// drops ended windows. Counting per pair and per address apart keeps a flood of
// client ids from one address from crowding the addresses out.
type failureThrottle struct {
	window  time.Duration
	proxies []netip.Prefix // see Limits.TrustedProxies
	mu      sync.Mutex
	pairs   failureCount[pairKey]
	addrs   failureCount[addressKey]
}

// addressKey is a caller's address in 16 bytes: an IPv4 address as it is, an
// IPv6 address cut to its /64 (the block one subscriber usually holds, so
// walking through it buys no fresh counts).
type addressKey [16]byte

// clientKey is a client id as a throttle key: the first 16 bytes of its
// SHA-256, so a long id costs no more memory than a short one.
type clientKey [16]byte

type pairKey struct {
	addr   addressKey
	client clientKey
}

// caller is whom a request's failures count against.
type caller struct {
	addr      addressKey
	client    clientKey
	hasClient bool // the request named a client id
}

// maxThrottleKeys bounds the keys of each count (about 10 MB for both).
const maxThrottleKeys = 100_000

// failureCount counts failures per key in fixed windows.
type failureCount[K comparable] struct {
	limit   int // 0: not counted
	maxKeys int
	m       map[K]failures
	swept   time.Time // the last sweep of ended windows
	sweeps  int       // how many sweeps ran (for the tests)
}

type failures struct {
	count int
	since time.Time
}

func newFailureThrottle(l Limits) *failureThrottle {
	if l.ClientFailures <= 0 && l.AddressFailures <= 0 {
		return nil
	}
	w := l.TokenWindow
	if w <= 0 {
		w = time.Minute
	}
	return &failureThrottle{
		window:  w,
		proxies: l.TrustedProxies,
		pairs:   newFailureCount[pairKey](l.ClientFailures),
		addrs:   newFailureCount[addressKey](l.AddressFailures),
	}
}

func newFailureCount[K comparable](limit int) failureCount[K] {
	c := failureCount[K]{limit: max(0, limit), maxKeys: maxThrottleKeys}
	if c.limit > 0 {
		c.m = map[K]failures{}
	}
	return c
}

// callerOf is whom a request with this client id ("" when none) counts against.
func (f *failureThrottle) callerOf(r *http.Request, clientID string) caller {
	c := caller{addr: keyOf(f.clientAddr(r))}
	if clientID != "" && f.pairs.limit > 0 {
		sum := sha256.Sum256([]byte(clientID))
		c.client, c.hasClient = clientKey(sum[:len(c.client)]), true
	}
	return c
}

func (c caller) pair() pairKey { return pairKey{addr: c.addr, client: c.client} }

// blocked says whether the caller is over a limit, and for how long.
func (f *failureThrottle) blocked(now time.Time, c caller) (bool, time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	wait := f.addrs.wait(c.addr, now, f.window)
	if c.hasClient {
		wait = max(wait, f.pairs.wait(c.pair(), now, f.window))
	}
	return wait > 0, wait
}

// fail records a failed request of the caller.
func (f *failureThrottle) fail(now time.Time, c caller) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.addrs.add(c.addr, now, f.window)
	if c.hasClient {
		f.pairs.add(c.pair(), now, f.window)
	}
}

// wait is how long the key stays over the limit (0: it is not).
func (c *failureCount[K]) wait(k K, now time.Time, window time.Duration) time.Duration {
	if c.limit == 0 {
		return 0
	}
	if e, ok := c.m[k]; ok && now.Sub(e.since) < window && e.count >= c.limit {
		return e.since.Add(window).Sub(now)
	}
	return 0
}

// add counts one failure of the key. A new key finds room only while the count
// is not full; a full count is swept of ended windows at most once a window, so
// a flood of new keys neither grows the map nor scans it on every failure. Its
// keys go uncounted meanwhile; the other count still applies to them.
func (c *failureCount[K]) add(k K, now time.Time, window time.Duration) {
	if c.limit == 0 {
		return
	}
	e, ok := c.m[k]
	if !ok && len(c.m) >= c.maxKeys {
		if now.Sub(c.swept) < window {
			return
		}
		c.sweep(now, window)
		if len(c.m) >= c.maxKeys {
			return
		}
	}
	if !ok || now.Sub(e.since) >= window {
		e = failures{since: now}
	}
	e.count++
	c.m[k] = e
}

// sweep drops the keys whose window has ended.
func (c *failureCount[K]) sweep(now time.Time, window time.Duration) {
	for k, e := range c.m {
		if now.Sub(e.since) >= window {
			delete(c.m, k)
		}
	}
	c.swept = now
	c.sweeps++
}

// parseRemote reads a connection's address (host:port, or a bare address);
// the zero Addr when it is neither (a Unix socket).
func parseRemote(remoteAddr string) netip.Addr {
	if ap, err := netip.ParseAddrPort(remoteAddr); err == nil {
		return ap.Addr().Unmap().WithZone("")
	}
	if a, err := netip.ParseAddr(remoteAddr); err == nil {
		return a.Unmap().WithZone("")
	}
	return netip.Addr{}
}

// keyOf is the count an address falls in: its own, or its /64 for IPv6.
func keyOf(a netip.Addr) addressKey {
	if !a.IsValid() {
		return addressKey{}
	}
	if a.Is6() {
		a = netip.PrefixFrom(a, 64).Masked().Addr()
	}
	return a.As16()
}

// clientAddr is the address a request counts against: its connection's, or,
// when that is a trusted proxy, the right-most address of X-Forwarded-For
// that is not one. A hop that is no address ends the walk at the last
// trusted one: what lies beyond it cannot be trusted.
func (f *failureThrottle) clientAddr(r *http.Request) netip.Addr {
	a := parseRemote(r.RemoteAddr)
	if !f.trusted(a) {
		return a
	}
	var hops []string
	for _, v := range r.Header.Values("X-Forwarded-For") {
		hops = append(hops, strings.Split(v, ",")...)
	}
	for i := len(hops) - 1; i >= 0; i-- {
		h, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			return a
		}
		if h = h.Unmap().WithZone(""); !f.trusted(h) {
			return h
		}
		a = h
	}
	return a
}

func (f *failureThrottle) trusted(a netip.Addr) bool {
	if !a.IsValid() {
		return false
	}
	for _, p := range f.proxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func errRateLimited(d time.Duration) error { return &rateLimited{retryAfter: d} }
